"""Campaigns: creation from a template, and the status changes that launch, pause and end them."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import fresh, workspace_of
from webapp.errors import Conflict, InvalidTransition, NotFound
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignInstance
from webapp.models.enums import EnrollmentStatus as S
from webapp.models.enums import InstanceStatus as I
from webapp.schemas.instances import InstanceIn
from webapp.services import lifecycle
from webapp.services.instances import change_instance_status, create_instance

ALLOWED = {
    I.DRAFT: [I.ACTIVE, I.COMPLETED],
    I.ACTIVE: [I.PAUSED, I.COMPLETED],
    I.PAUSED: [I.ACTIVE, I.COMPLETED],
    I.COMPLETED: [],
}
REFUSED = [(source, target) for source, allowed in ALLOWED.items() for target in I if target not in allowed]


def instance_count(workspace_id) -> int:
    return _db.session.scalar(
        sa.select(sa.func.count()).select_from(CampaignInstance).where(CampaignInstance.workspace_id == workspace_id)
    )


def test_a_campaign_starts_as_a_draft_of_an_active_template_with_its_own_settings(db):
    template = builders.TemplateFactory()

    created = create_instance(
        workspace_of(template), InstanceIn(template_id=template.id, name="Q4 CFOs", settings={"daily_cap": 30})
    )

    stored = fresh(CampaignInstance, created.id)
    assert (stored.status, stored.name, stored.template_id) == (I.DRAFT, "Q4 CFOs", template.id)
    assert stored.settings == {"daily_cap": 30}
    assert stored.started_at is None


def test_an_inactive_template_cannot_start_a_campaign(db):
    template = builders.TemplateFactory(is_active=False)

    with pytest.raises(Conflict, match="inactive"):
        create_instance(workspace_of(template), InstanceIn(template_id=template.id, name="x"))

    _db.session.rollback()
    assert instance_count(template.workspace_id) == 0


def test_another_workspaces_template_is_not_found(db):
    theirs = builders.TemplateFactory()
    mine = builders.WorkspaceFactory()

    with pytest.raises(NotFound):
        create_instance(mine, InstanceIn(template_id=theirs.id, name="x"))

    _db.session.rollback()
    assert instance_count(mine.id) == instance_count(theirs.workspace_id) == 0


def test_launching_makes_enrolled_contacts_active_and_due_after_the_first_steps_delay(db, now):
    draft = builders.campaign(status=I.DRAFT, steps=2, delays=(2, 5))
    waiting = [builders.EnrollmentFactory(instance=draft) for _ in range(2)]

    change_instance_status(workspace_of(draft), draft.id, I.ACTIVE)

    launched = fresh(CampaignInstance, draft.id)
    assert (launched.status, launched.started_at) == (I.ACTIVE, now)
    for enrollment in waiting:
        row = fresh(CampaignEnrollment, enrollment.id)
        assert (row.status, row.next_action_at, row.current_step) == (S.ACTIVE, now + timedelta(days=2), 0)


def test_the_launch_waits_for_the_first_active_step_and_leaves_paused_enrollments_paused(db, now):
    draft = builders.campaign(status=I.DRAFT, steps=0)
    builders.StepFactory(template_id=draft.template_id, position=1, delay_days=1, is_active=False)
    builders.StepFactory(template_id=draft.template_id, position=2, delay_days=0, delay_hours=3)
    enrolled = builders.EnrollmentFactory(instance=draft)
    paused = builders.EnrollmentFactory(instance=draft, status=S.PAUSED)

    change_instance_status(workspace_of(draft), draft.id, I.ACTIVE)

    assert fresh(CampaignEnrollment, enrolled.id).next_action_at == now + timedelta(hours=3)
    row = fresh(CampaignEnrollment, paused.id)
    assert (row.status, row.next_action_at) == (S.PAUSED, None)


@pytest.mark.parametrize("inactive_steps", [0, 2], ids=["no steps", "only inactive steps"])
def test_launching_without_an_active_step_is_a_conflict_and_changes_nothing(db, inactive_steps):
    draft = builders.campaign(status=I.DRAFT, steps=0)
    for position in range(1, inactive_steps + 1):
        builders.StepFactory(template_id=draft.template_id, position=position, is_active=False)
    enrollment = builders.EnrollmentFactory(instance=draft)

    with pytest.raises(Conflict, match="no active steps"):
        change_instance_status(workspace_of(draft), draft.id, I.ACTIVE)

    _db.session.rollback()
    stored = fresh(CampaignInstance, draft.id)
    assert (stored.status, stored.started_at) == (I.DRAFT, None)
    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.next_action_at) == (S.ENROLLED, None)


@pytest.mark.parametrize(("source", "target"), REFUSED)
def test_every_invalid_status_change_is_refused_naming_the_allowed_ones(db, source, target):
    instance = builders.campaign(status=source)

    with pytest.raises(InvalidTransition) as refused:
        change_instance_status(workspace_of(instance), instance.id, target)

    names = ", ".join(ALLOWED[source]) or "none (the campaign is completed)"
    assert refused.value.message == f"Cannot change a {source} campaign to {target}. Allowed: {names}."
    assert refused.value.details == [{"field": "status", "allowed": ALLOWED[source]}]
    _db.session.rollback()
    assert fresh(CampaignInstance, instance.id).status == source


def test_pausing_and_resuming_keeps_the_enrollments_schedule(db, now, time_machine):
    running = builders.campaign(delays=(3,))
    enrollment = builders.EnrollmentFactory(instance=running, next_action_at=now + timedelta(days=1))
    workspace = workspace_of(running)

    change_instance_status(workspace, running.id, I.PAUSED)
    assert fresh(CampaignInstance, running.id).paused_at == now

    time_machine.move_to(now + timedelta(days=2), tick=False)
    change_instance_status(workspace, running.id, I.ACTIVE)

    resumed = fresh(CampaignInstance, running.id)
    assert (resumed.status, resumed.paused_at, resumed.started_at) == (I.ACTIVE, None, running.started_at)
    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.next_action_at) == (S.ACTIVE, now + timedelta(days=1))


@pytest.mark.parametrize("source", [I.DRAFT, I.ACTIVE, I.PAUSED])
def test_completing_ends_the_live_enrollments_and_leaves_the_final_ones_alone(db, now, source):
    instance = builders.campaign(status=source)
    live = [builders.EnrollmentFactory(instance=instance, status=status) for status in lifecycle.LIVE]
    final = [
        builders.EnrollmentFactory(instance=instance, status=status, status_reason="earlier", next_action_at=None)
        for status in sorted(lifecycle.FINAL)
    ]

    change_instance_status(workspace_of(instance), instance.id, I.COMPLETED)

    stored = fresh(CampaignInstance, instance.id)
    assert (stored.status, stored.completed_at) == (I.COMPLETED, now)
    for enrollment in live:
        row = fresh(CampaignEnrollment, enrollment.id)
        assert (row.status, row.status_reason, row.next_action_at, row.completed_at) == (
            S.COMPLETED,
            "campaign completed",
            None,
            now,
        )
    rows = [fresh(CampaignEnrollment, e.id) for e in final]
    assert [(row.status, row.status_reason) for row in rows] == [(s, "earlier") for s in sorted(lifecycle.FINAL)]


def test_completing_one_campaign_leaves_the_contacts_other_campaigns_running(db):
    workspace = builders.WorkspaceFactory()
    ending, other = builders.campaign(workspace=workspace), builders.campaign(workspace=workspace)
    contact = builders.ContactFactory(workspace_id=workspace.id)
    builders.EnrollmentFactory(instance=ending, contact=contact)
    elsewhere = builders.EnrollmentFactory(instance=other, contact=contact)

    change_instance_status(workspace_of(ending), ending.id, I.COMPLETED)

    assert fresh(CampaignEnrollment, elsewhere.id).status == S.ACTIVE


@pytest.mark.parametrize(
    ("source", "target", "transition"), [(I.DRAFT, I.ACTIVE, "launch"), (I.ACTIVE, I.COMPLETED, "end")]
)
def test_the_actor_is_passed_to_the_lifecycle(db, monkeypatch, source, target, transition):
    instance = builders.campaign(status=source)
    builders.EnrollmentFactory(instance=instance)
    calls = []
    real_change = lifecycle.change

    def spy(name, **kwargs):
        calls.append((name, kwargs["actor"]))
        return real_change(name, **kwargs)

    monkeypatch.setattr(lifecycle, "change", spy)

    change_instance_status(workspace_of(instance), instance.id, target, actor=lifecycle.Actor.API)

    assert calls == [(transition, lifecycle.Actor.API)]


def test_an_actor_the_lifecycle_refuses_cannot_complete_a_campaign(db):
    instance = builders.campaign()
    builders.EnrollmentFactory(instance=instance)

    with pytest.raises(ValueError, match="worker may not end"):
        change_instance_status(workspace_of(instance), instance.id, I.COMPLETED, actor=lifecycle.Actor.WORKER)


def test_another_workspaces_campaign_is_not_found(db):
    theirs = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=theirs)

    with pytest.raises(NotFound):
        change_instance_status(builders.WorkspaceFactory(), theirs.id, I.COMPLETED)

    _db.session.rollback()
    assert fresh(CampaignInstance, theirs.id).status == I.ACTIVE
    assert fresh(CampaignEnrollment, enrollment.id).status == S.ACTIVE

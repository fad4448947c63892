"""Tasks: finishing one moves its enrollment on; overdue ones are skipped when the campaign says so."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import fresh, workspace_of
from webapp.errors import Conflict, NotFound
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignEvent, Task, Workspace, utcnow
from webapp.models.enums import Channel, InstanceStatus, StepAction
from webapp.models.enums import EnrollmentStatus as S
from webapp.schemas.events import EventIn
from webapp.services import lifecycle
from webapp.services.contacts import set_contact_status
from webapp.services.enrollments import change_enrollment_status
from webapp.services.events import ingest_events
from webapp.services.instances import change_instance_status
from webapp.services.sending.claim import claim_due_work
from webapp.services.tasks import finish_task, list_tasks, skip_overdue_tasks

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def waiting_task(
    *,
    then_email_after_days: int | None = 2,
    due_at: datetime = NOW,
    body: str = "Hi {{ first_name }}",
    template_settings: dict | None = None,
    settings: dict | None = None,
    workspace: Workspace | None = None,
    first_name: str | None = "Ada",
) -> Task:
    """An open LinkedIn task at step 1 of an active campaign, its enrollment waiting for it; a
    step 2 email follows `then_email_after_days` days later (none when None)."""
    campaign = builders.campaign(steps=0, template_settings=template_settings, settings=settings, workspace=workspace)
    step = builders.StepFactory(
        template_id=campaign.template_id, position=1, channel=Channel.LINKEDIN, action=StepAction.MESSAGE, body=body
    )
    if then_email_after_days is not None:
        builders.StepFactory(template_id=campaign.template_id, position=2, delay_days=then_email_after_days)
    contact = builders.ContactFactory(workspace_id=campaign.workspace_id, first_name=first_name)
    enrollment = builders.EnrollmentFactory(instance=campaign, contact=contact, next_action_at=None)
    return builders.TaskFactory(enrollment=enrollment, step=step, due_at=due_at)


def events_of(task: Task) -> list[tuple]:
    return _db.session.execute(
        sa.select(
            CampaignEvent.type,
            CampaignEvent.provider,
            CampaignEvent.provider_event_id,
            CampaignEvent.step_id,
            CampaignEvent.channel,
            CampaignEvent.occurred_at,
            CampaignEvent.meta,
        ).where(CampaignEvent.enrollment_id == task.enrollment_id)
    ).all()


@pytest.mark.parametrize(("done", "status"), [(True, "done"), (False, "skipped")])
def test_a_finished_task_moves_the_enrollment_to_its_next_step_after_the_delay(db, done, status):
    task = waiting_task(then_email_after_days=2)

    finish_task(workspace_of(task), task.id, done=done, now=NOW)

    stored = fresh(Task, task.id)
    assert (stored.status, stored.completed_at) == (status, NOW)
    row = fresh(CampaignEnrollment, task.enrollment_id)
    assert (row.status, row.current_step, row.next_action_at) == (S.ACTIVE, 1, NOW + timedelta(days=2))


@pytest.mark.parametrize("done", [True, False])
def test_finishing_the_last_step_completes_the_enrollment(db, done):
    task = waiting_task(then_email_after_days=None)

    finish_task(workspace_of(task), task.id, done=done, now=NOW)

    row = fresh(CampaignEnrollment, task.enrollment_id)
    assert (row.status, row.status_reason, row.current_step) == (S.COMPLETED, "all steps done", 1)
    assert (row.next_action_at, row.completed_at) == (None, NOW)


@pytest.mark.parametrize(
    ("done", "reason", "kind", "metadata"),
    [
        (True, None, "task_completed", {}),
        (False, "no LinkedIn profile", "task_skipped", {"reason": "no LinkedIn profile"}),
    ],
)
def test_finishing_a_task_records_an_event_on_its_step(db, done, reason, kind, metadata):
    task = waiting_task()

    finish_task(workspace_of(task), task.id, done=done, reason=reason, now=NOW)

    assert events_of(task) == [(kind, "drumbeat", f"{kind}:{task.id}", task.step_id, "linkedin", NOW, metadata)]


@pytest.mark.parametrize("done", [True, False])
def test_a_finished_task_cannot_be_finished_again(db, done):
    task = waiting_task()
    workspace = workspace_of(task)
    finish_task(workspace, task.id, done=done, now=NOW)
    moved_on = fresh(CampaignEnrollment, task.enrollment_id).next_action_at

    with pytest.raises(Conflict, match=f"Task is already {'done' if done else 'skipped'}"):
        finish_task(workspace, task.id, done=True, now=NOW + timedelta(hours=1))

    _db.session.rollback()
    assert fresh(CampaignEnrollment, task.enrollment_id).next_action_at == moved_on
    assert len(events_of(task)) == 1


@pytest.mark.parametrize("task_id", ["theirs", "unknown"])
def test_another_workspaces_task_is_not_found(db, task_id):
    task = waiting_task()
    wanted = task.id if task_id == "theirs" else uuid.uuid4()

    with pytest.raises(NotFound):
        finish_task(builders.WorkspaceFactory(), wanted, done=True, now=NOW)

    _db.session.rollback()
    assert fresh(Task, task.id).status == "open"
    assert fresh(CampaignEnrollment, task.enrollment_id).current_step == 0


@pytest.mark.parametrize("final", [S.REPLIED, S.UNSUBSCRIBED, S.REMOVED])
def test_a_task_finished_after_the_enrollment_stopped_does_not_move_it(db, final):
    task = waiting_task()
    enrollment = fresh(CampaignEnrollment, task.enrollment_id)
    enrollment.status = final
    _db.session.commit()

    finish_task(workspace_of(task), task.id, done=True, now=NOW)

    assert fresh(Task, task.id).status == "done"
    row = fresh(CampaignEnrollment, task.enrollment_id)
    assert (row.status, row.current_step, row.next_action_at) == (final, 0, None)


def test_a_task_done_while_its_enrollment_is_paused_counts_once_it_resumes(db):
    task = waiting_task(then_email_after_days=0)
    workspace = workspace_of(task)
    change_enrollment_status(workspace, task.enrollment_id, S.PAUSED)
    finish_task(workspace, task.id, done=True)
    change_enrollment_status(workspace, task.enrollment_id, S.ACTIVE)

    claimed = claim_due_work(utcnow() + timedelta(minutes=1))

    assert len(claimed.deliveries) == 1, "the step 2 email goes out"


@pytest.mark.parametrize(
    ("template_settings", "campaign_settings", "overdue_hours", "skipped"),
    [
        ({"task_auto_skip_hours": 24}, {}, 25, True),
        ({"task_auto_skip_hours": 24}, {}, 24, True),
        ({"task_auto_skip_hours": 24}, {}, 23, False),
        ({}, {}, 24 * 90, False),
        ({"task_auto_skip_hours": 24}, {"task_auto_skip_hours": 48}, 30, False),
        ({"task_auto_skip_hours": 48}, {"task_auto_skip_hours": 24}, 30, True),
        ({}, {"task_auto_skip_hours": 1}, 1, True),
    ],
)
def test_overdue_tasks_are_skipped_after_the_campaigns_task_auto_skip_hours(
    db, template_settings, campaign_settings, overdue_hours, skipped
):
    task = waiting_task(
        due_at=NOW - timedelta(hours=overdue_hours), template_settings=template_settings, settings=campaign_settings
    )

    assert skip_overdue_tasks(NOW) == int(skipped)

    stored = fresh(Task, task.id)
    row = fresh(CampaignEnrollment, task.enrollment_id)
    if skipped:
        assert (stored.status, stored.completed_at) == ("skipped", NOW)
        assert (row.current_step, row.next_action_at) == (1, NOW + timedelta(days=2))
        assert [meta for *_, meta in events_of(task)] == [{"reason": "auto-skipped: overdue"}]
    else:
        assert (stored.status, row.current_step, events_of(task)) == ("open", 0, [])


def test_auto_skip_leaves_finished_tasks_and_other_campaigns_alone(db):
    skipping = waiting_task(due_at=NOW - timedelta(days=3), settings={"task_auto_skip_hours": 24})
    keeping = waiting_task(due_at=NOW - timedelta(days=3), workspace=workspace_of(skipping))
    done = waiting_task(due_at=NOW - timedelta(days=3), settings={"task_auto_skip_hours": 24})
    finish_task(workspace_of(done), done.id, done=True, now=NOW - timedelta(days=1))

    assert skip_overdue_tasks(NOW) == 1

    assert [fresh(Task, t.id).status for t in (skipping, keeping, done)] == ["skipped", "open", "done"]


def test_a_listed_task_carries_its_message_with_the_contacts_fields_filled_in(db):
    task = waiting_task(body="Hi {{ first_name }}, how is {{ company }}?")

    rows, total = list_tasks(workspace_of(task), now=NOW)

    enrollment = fresh(CampaignEnrollment, task.enrollment_id)
    assert total == 1
    ((listed, contact, step, campaign, message),) = rows
    assert (listed.id, contact.id, step.id, campaign.id) == (
        task.id,
        enrollment.contact_id,
        task.step_id,
        enrollment.instance_id,
    )
    assert message == "Hi Ada, how is Initech?"


def test_a_field_without_a_value_stays_visible_in_the_message(db):
    task = waiting_task(first_name=None)

    ((*_, message),), _ = list_tasks(workspace_of(task), now=NOW)

    assert message == "Hi {{ first_name }}"


def unsubscribe_contact(task: Task) -> None:
    enrollment = fresh(CampaignEnrollment, task.enrollment_id)
    set_contact_status(workspace_of(task), enrollment.contact_id, status="unsubscribed", reason="asked")


def record_reply(task: Task) -> None:
    reply = EventIn(provider_event_id="r1", type="replied", enrollment_id=task.enrollment_id)
    ingest_events(workspace_of(task), [reply])


def complete_campaign(task: Task) -> None:
    enrollment = fresh(CampaignEnrollment, task.enrollment_id)
    change_instance_status(workspace_of(task), enrollment.instance_id, InstanceStatus.COMPLETED)


@pytest.mark.parametrize("stop", [unsubscribe_contact, record_reply, complete_campaign])
def test_the_to_do_list_leaves_out_tasks_of_enrollments_that_stopped(db, stop):
    task = waiting_task()

    stop(task)

    assert fresh(CampaignEnrollment, task.enrollment_id).status in lifecycle.FINAL
    assert list_tasks(workspace_of(task), now=NOW) == ([], 0)


def test_the_list_shows_the_workspaces_open_tasks_by_due_time(db):
    later = waiting_task(due_at=NOW + timedelta(days=2))
    workspace = workspace_of(later)
    overdue = waiting_task(due_at=NOW - timedelta(hours=1), workspace=workspace)
    today = waiting_task(due_at=NOW + timedelta(hours=3), workspace=workspace)
    finished = waiting_task(due_at=NOW - timedelta(days=1), workspace=workspace)
    finish_task(workspace, finished.id, done=True, now=NOW)
    waiting_task()

    def listed(**filters) -> list[uuid.UUID]:
        rows, total = list_tasks(workspace, now=NOW, **filters)
        assert total == len(rows)
        return [task.id for task, *_ in rows]

    assert listed() == [overdue.id, today.id, later.id]
    assert listed(due="overdue") == [overdue.id]
    assert listed(due="today") == [overdue.id, today.id]
    assert listed(due="upcoming") == [later.id]
    assert listed(status="done") == [finished.id]
    assert listed(status="all") == [finished.id, overdue.id, today.id, later.id]

"""The enrollment state machine: who may do what from which status, and guarded changes."""

import pytest
import sqlalchemy as sa

from tests import builders
from webapp.errors import InvalidTransition
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment
from webapp.models.enums import EnrollmentStatus as S
from webapp.models.enums import InstanceStatus
from webapp.services import lifecycle
from webapp.services.lifecycle import Actor as A

LIVE = {S.ENROLLED, S.ACTIVE, S.PAUSED}
EVERYONE = set(A)

# transition: (from, to, who may trigger it)
EXPECTED = {
    "launch": ({S.ENROLLED}, (S.ACTIVE,), {A.PERSON, A.API, A.WORKER}),
    "pause": ({S.ENROLLED, S.ACTIVE}, (S.PAUSED,), {A.PERSON, A.API, A.WORKER}),
    "resume": ({S.PAUSED}, (S.ACTIVE, S.ENROLLED), {A.PERSON, A.API}),
    "advance": ({S.ACTIVE}, (S.ACTIVE,), {A.PERSON, A.API, A.WORKER}),
    "complete": ({S.ACTIVE}, (S.COMPLETED,), {A.PERSON, A.API, A.WORKER}),
    "end": (LIVE, (S.COMPLETED,), {A.PERSON, A.API}),
    "reply": (LIVE, (S.REPLIED,), {A.PERSON, A.API, A.EVENT}),
    "bounce": (LIVE, (S.BOUNCED,), EVERYONE),
    "unsubscribe": (LIVE, (S.UNSUBSCRIBED,), {A.PERSON, A.API, A.EVENT, A.IMPORTER}),
    "fail": ({S.ACTIVE}, (S.FAILED,), {A.WORKER}),
    "retry": ({S.FAILED}, (S.ACTIVE,), {A.PERSON, A.API}),
    "remove": (LIVE, (S.REMOVED,), {A.PERSON, A.API}),
}


def test_the_machine_is_the_documented_one():
    actual = {t.name: (set(t.sources), t.targets, set(t.actors)) for t in lifecycle.TRANSITIONS.values()}
    assert actual == EXPECTED
    assert {S.COMPLETED, S.REPLIED, S.BOUNCED, S.UNSUBSCRIBED, S.FAILED, S.REMOVED} == lifecycle.FINAL
    # Nothing leaves a final status, but a person sending a failed step again.
    leaving = {t.name for t in lifecycle.TRANSITIONS.values() if t.sources & lifecycle.FINAL}
    assert leaving == {"retry"}


@pytest.mark.parametrize(
    ("name", "actor"), [(n, a) for n, (_, _, who) in EXPECTED.items() for a in sorted(set(A) - who)]
)
def test_an_actor_outside_a_transitions_list_is_refused(name, actor):
    with pytest.raises(ValueError, match="may not"):
        lifecycle.transition(name, actor)


@pytest.mark.parametrize(
    ("status", "buttons"),
    [
        (S.ENROLLED, ["pause", "reply", "remove"]),
        (S.ACTIVE, ["pause", "reply", "remove"]),
        (S.PAUSED, ["resume", "reply", "remove"]),
        *[(status, []) for status in sorted(lifecycle.FINAL)],
    ],
)
def test_the_dashboard_offers_what_a_person_may_do(status, buttons):
    assert [t.name for t in lifecycle.actions(status, A.PERSON)] == buttons
    # Of those, an event (a reply read in a mailbox, a webhook) may only say the contact replied.
    assert [t.name for t in lifecycle.actions(status, A.EVENT)] == [b for b in buttons if b == "reply"]


def test_a_new_enrollment_waits_for_the_launch_of_a_draft():
    assert lifecycle.initial_status(InstanceStatus.DRAFT) == S.ENROLLED
    assert lifecycle.initial_status(InstanceStatus.ACTIVE) == S.ACTIVE
    assert lifecycle.initial_status(InstanceStatus.PAUSED) == S.ACTIVE


def status_of(enrollment_id):
    return _db.session.scalar(sa.select(CampaignEnrollment.status).where(CampaignEnrollment.id == enrollment_id))


def test_a_change_touches_only_enrollments_in_its_source_statuses(db):
    campaign = builders.campaign()
    active = builders.EnrollmentFactory(instance=campaign)
    paused = builders.EnrollmentFactory(instance=campaign, status=S.PAUSED)
    replied = builders.EnrollmentFactory(instance=campaign, status=S.REPLIED)

    changed = lifecycle.change("remove", actor=A.API, ids=[active.id, paused.id, replied.id], reason="gone")
    _db.session.commit()

    assert set(changed) == {active.id, paused.id}
    assert [status_of(e.id) for e in (active, paused, replied)] == [S.REMOVED, S.REMOVED, S.REPLIED]
    row = _db.session.get(CampaignEnrollment, active.id, populate_existing=True)
    assert (row.status_reason, row.next_action_at) == ("gone", None) and row.completed_at is not None


def test_a_stale_object_cannot_overwrite_a_change_made_meanwhile(app, db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    stale = _db.session.get(CampaignEnrollment, enrollment.id)  # read as active
    with app.app_context():  # another request, with its own session, records a reply first
        lifecycle.change("reply", actor=A.EVENT, ids=[enrollment.id], reason="replied (event)")
        _db.session.commit()

    with pytest.raises(InvalidTransition, match="Cannot pause a replied enrollment"):
        lifecycle.change_one(stale, "pause", actor=A.PERSON, reason=lifecycle.Reason.PAUSED)
    _db.session.commit()

    assert status_of(enrollment.id) == S.REPLIED
    assert stale.status == S.REPLIED  # refreshed with what is stored


def test_a_change_one_names_the_statuses_it_is_allowed_from(db):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), status=S.COMPLETED)

    with pytest.raises(InvalidTransition) as refused:
        lifecycle.change_one(enrollment, "resume", actor=A.API, reason=lifecycle.Reason.RESUMED)

    assert refused.value.message == "Cannot resume a completed enrollment. Allowed from: paused."


def test_a_change_of_many_goes_in_chunks(db):
    campaign = builders.campaign()
    ids = [builders.EnrollmentFactory(instance=campaign).id for _ in range(lifecycle.CHUNK + 3)]

    changed = lifecycle.change("pause", actor=A.WORKER, ids=ids + ids[:5], reason="paused for missing data")
    _db.session.commit()

    assert sorted(changed) == sorted(ids)

"""Claiming due work: the policy's decision for each due enrollment, written in one transaction."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests import builders
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, Delivery, Task
from webapp.models.enums import Channel, EnrollmentStatus, StepAction
from webapp.services.sending.claim import claim_due_work

# Tuesday 2026-03-03, 18:00 UTC.
EVENING = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)
OFFICE = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}


def enrollment(enrollment_id) -> CampaignEnrollment:
    return _db.session.get(CampaignEnrollment, enrollment_id, populate_existing=True)


def test_a_send_outside_the_window_waits_for_the_time_the_policy_gives(db):
    campaign = builders.campaign(settings={"send_window": OFFICE})
    waiting = builders.EnrollmentFactory(instance=campaign, next_action_at=EVENING - timedelta(hours=1))

    report = claim_due_work(EVENING)

    assert (report.deliveries, report.deferred) == ([], 1)
    assert enrollment(waiting.id).next_action_at == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def test_a_due_send_is_leased_and_the_cap_counts_it(db):
    campaign = builders.campaign(settings={"daily_cap": 2})
    people = [builders.EnrollmentFactory(instance=campaign, next_action_at=EVENING) for _ in range(3)]

    report = claim_due_work(EVENING)

    assert len(report.deliveries) == 2 and report.deferred == 1
    claimed = _db.session.scalars(sa.select(Delivery)).all()
    assert {d.status for d in claimed} == {"claimed"}
    assert {d.claimed_until for d in claimed} == {EVENING + timedelta(seconds=300)}
    assert [enrollment(e.id).next_action_at for e in people].count(datetime(2026, 3, 4, tzinfo=UTC)) == 1


def test_follow_ups_are_taken_before_new_contacts(db):
    campaign = builders.campaign(steps=2, settings={"daily_cap": 1})
    new = builders.EnrollmentFactory(instance=campaign, next_action_at=EVENING - timedelta(hours=2))
    follow_up = builders.EnrollmentFactory(instance=campaign, current_step=1, next_action_at=EVENING)

    claim_due_work(EVENING)

    assert _db.session.scalar(sa.select(Delivery.enrollment_id)) == follow_up.id
    assert enrollment(new.id).next_action_at == datetime(2026, 3, 4, tzinfo=UTC)


def test_a_linkedin_step_becomes_one_task_and_a_finished_sequence_completes(db):
    campaign = builders.campaign(steps=0)
    builders.StepFactory(
        template_id=campaign.template_id, position=1, channel=Channel.LINKEDIN, action=StepAction.MESSAGE
    )
    task = builders.EnrollmentFactory(instance=campaign, next_action_at=EVENING)
    done = builders.EnrollmentFactory(instance=campaign, current_step=1, next_action_at=EVENING)

    report = claim_due_work(EVENING)

    assert (report.tasks, report.completed, report.deliveries) == (1, 1, [])
    assert _db.session.scalar(sa.select(Task.enrollment_id)) == task.id
    assert enrollment(task.id).next_action_at is None
    assert (enrollment(done.id).status, enrollment(done.id).status_reason) == ("completed", "all steps done")


def test_a_campaign_with_broken_settings_pauses_its_own_enrollments_and_others_still_send(db):
    broken = builders.campaign(settings={"skip_holidays": "XX"})  # saved before calendars were checked
    healthy = builders.campaign()
    stuck = builders.EnrollmentFactory(instance=broken, next_action_at=EVENING)
    builders.EnrollmentFactory(instance=healthy, next_action_at=EVENING)

    report = claim_due_work(EVENING)

    assert len(report.deliveries) == 1 and report.paused == 1
    paused = enrollment(stuck.id)
    assert paused.status == EnrollmentStatus.PAUSED
    assert paused.status_reason.startswith("paused: the campaign's settings are invalid")

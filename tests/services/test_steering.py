"""Steering a live campaign: an edit of its timing re-plans the waiting contacts at once, a draft
launches by itself at its start time, one contact's wait is skipped, a failed send goes again."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests import builders
from webapp.engine import policy
from webapp.engine.mailer import OutboxTransport
from webapp.errors import Conflict, NotFound
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, SequenceStep
from webapp.models.enums import ContactStatus, DeliveryStatus, EnrollmentStatus, InstanceStatus
from webapp.schemas.instances import InstanceUpdateIn
from webapp.services import enrollments, instances, lifecycle
from webapp.services.schedule import preview_schedule
from webapp.services.sending import deliveries
from webapp.worker import Worker

PARIS = ZoneInfo("Europe/Paris")
WINDOW = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00", "timezone": "Europe/Paris"}
FRIDAY_EVENING = datetime(2026, 10, 23, 17, 30, tzinfo=PARIS).astimezone(UTC)
MONDAY_MORNING = datetime(2026, 10, 26, 9, 0, tzinfo=PARIS).astimezone(UTC)


def edit(campaign, *, now, **fields):
    workspace = builders.workspace_of(campaign)
    return instances.update_instance(workspace, campaign.id, InstanceUpdateIn(**fields), now=now)


def waiting_campaign(app, *, contacts: int = 3):
    """A campaign whose send window closed at 17:00 on a Friday: the worker put its contacts off
    to Monday 09:00."""
    campaign = builders.campaign(steps=1, template_settings={"send_window": WINDOW})
    for _ in range(contacts):
        builders.EnrollmentFactory(instance=campaign, next_action_at=FRIDAY_EVENING)
    db.session.commit()
    assert Worker(app, transport=OutboxTransport()).run_once(now=FRIDAY_EVENING).sent == 0
    rows = db.session.execute(sa.select(CampaignEnrollment.next_action_at, CampaignEnrollment.wait_reason)).all()
    assert {(row.next_action_at, row.wait_reason) for row in rows} == {(MONDAY_MORNING, policy.Delay.WINDOW)}
    return campaign


def test_a_wider_window_replans_the_waiting_contacts_at_once(app, db):
    campaign = waiting_campaign(app)
    moment = FRIDAY_EVENING + timedelta(minutes=5)
    edit(campaign, now=moment, settings={"send_window": {**WINDOW, "end": "20:00"}})
    preview = preview_schedule(builders.workspace_of(campaign), campaign.id, limit=10, now=moment)
    assert [item.due_at for item in preview] == [moment] * 3
    assert Worker(app, transport=OutboxTransport()).run_once(now=moment).sent == 3


def test_a_narrower_window_moves_the_waiting_contacts_later(app, db):
    campaign = waiting_campaign(app)
    moment = FRIDAY_EVENING + timedelta(minutes=5)
    edit(campaign, now=moment, settings={"send_window": {**WINDOW, "start": "11:00"}})
    preview = preview_schedule(builders.workspace_of(campaign), campaign.id, limit=10, now=moment)
    monday_eleven = MONDAY_MORNING + timedelta(hours=2)
    assert [item.due_at for item in preview] == [monday_eleven] * 3
    worker = Worker(app, transport=OutboxTransport())
    assert worker.run_once(now=MONDAY_MORNING).sent == 0
    assert worker.run_once(now=monday_eleven).sent == 3


def test_step_delays_and_out_of_office_waits_keep_their_time(app, db):
    campaign = builders.campaign(steps=1, template_settings={"send_window": WINDOW})
    later = FRIDAY_EVENING + timedelta(days=3)
    delayed = builders.EnrollmentFactory(instance=campaign, next_action_at=later)
    away = builders.EnrollmentFactory(instance=campaign, next_action_at=later, wait_reason=policy.Delay.AWAY)
    put_off = builders.EnrollmentFactory(instance=campaign, next_action_at=later, wait_reason=policy.Delay.CAP)
    db.session.commit()
    edit(campaign, now=FRIDAY_EVENING, settings={"daily_cap": 40})
    times = {e.id: e.next_action_at for e in db.session.scalars(sa.select(CampaignEnrollment))}
    assert times == {delayed.id: later, away.id: later, put_off.id: FRIDAY_EVENING}


def test_a_change_that_does_not_move_times_replans_nothing(app, db):
    campaign = waiting_campaign(app)
    edit(campaign, now=FRIDAY_EVENING, name="Renamed", settings={"track_opens": True})
    assert campaign.name == "Renamed"
    assert set(db.session.scalars(sa.select(CampaignEnrollment.next_action_at))) == {MONDAY_MORNING}


def test_settings_merge_key_by_key_and_null_goes_back_to_the_template(app, db):
    campaign = builders.campaign(settings={"daily_cap": 10, "track_opens": True})
    edit(campaign, now=FRIDAY_EVENING, settings={"daily_cap": 20})
    assert campaign.settings == {"daily_cap": 20, "track_opens": True}
    edit(campaign, now=FRIDAY_EVENING, settings={"track_opens": None})
    assert campaign.settings == {"daily_cap": 20}


def test_another_workspaces_mailbox_is_refused_and_nothing_changes(app, db):
    from webapp.models import Mailbox

    campaign = builders.campaign(settings={"daily_cap": 10})
    other = builders.WorkspaceFactory()
    mailbox = Mailbox(
        workspace_id=other.id,
        name="theirs",
        from_email="them@other.test",
        smtp_host="smtp.other.test",
        smtp_port=25,
        smtp_security="none",
    )
    db.session.add(mailbox)
    db.session.commit()
    with pytest.raises(NotFound):
        edit(campaign, now=FRIDAY_EVENING, settings={"mailbox_ids": [str(mailbox.id)], "daily_cap": 5})
    db.session.rollback()
    assert builders.fresh(type(campaign), campaign.id).settings == {"daily_cap": 10}


def test_a_completed_campaign_cannot_be_edited(app, db):
    campaign = builders.campaign(status=InstanceStatus.COMPLETED)
    with pytest.raises(Conflict, match="clone"):
        edit(campaign, now=FRIDAY_EVENING, name="Again")


# Scheduled launch ------------------------------------------------------------------------------


def test_a_draft_launches_by_itself_at_its_start_time(app, db):
    campaign = builders.campaign(status=InstanceStatus.DRAFT)
    builders.EnrollmentFactory(instance=campaign)
    db.session.commit()
    start = FRIDAY_EVENING + timedelta(hours=1)
    edit(campaign, now=FRIDAY_EVENING, start_at=start)
    worker = Worker(app, transport=OutboxTransport())
    assert worker.run_once(now=start - timedelta(seconds=1)).launched == 0
    report = worker.run_once(now=start)
    assert (report.launched, report.sent) == (1, 1)
    launched = builders.fresh(type(campaign), campaign.id)
    assert (launched.status, launched.start_at, launched.started_at) == (InstanceStatus.ACTIVE, None, start)


def test_a_scheduled_launch_can_be_cancelled(app, db):
    campaign = builders.campaign(status=InstanceStatus.DRAFT)
    start = FRIDAY_EVENING + timedelta(hours=1)
    edit(campaign, now=FRIDAY_EVENING, start_at=start)
    edit(campaign, now=FRIDAY_EVENING, start_at=None)
    assert instances.launch_scheduled(start + timedelta(days=1)) == 0
    assert builders.fresh(type(campaign), campaign.id).status == InstanceStatus.DRAFT


def test_a_scheduled_launch_that_cannot_happen_says_why_and_stays_a_draft(app, db):
    campaign = builders.campaign(status=InstanceStatus.DRAFT)
    builders.EnrollmentFactory(instance=campaign)
    db.session.commit()
    start = FRIDAY_EVENING + timedelta(hours=1)
    edit(campaign, now=FRIDAY_EVENING, start_at=start)
    db.session.execute(sa.update(SequenceStep).values(is_active=False))  # its only step, switched off meanwhile
    db.session.commit()
    assert instances.launch_scheduled(start) == 0
    found = builders.fresh(type(campaign), campaign.id)
    assert (found.status, found.start_at) == (InstanceStatus.DRAFT, None)
    assert "no active step" in found.start_error


def test_a_campaign_that_cannot_launch_is_not_scheduled(app, db):
    campaign = builders.campaign(steps=0, status=InstanceStatus.DRAFT)
    with pytest.raises(Conflict, match="cannot launch"):
        edit(campaign, now=FRIDAY_EVENING, start_at=FRIDAY_EVENING + timedelta(hours=1))
    assert builders.fresh(type(campaign), campaign.id).start_at is None


@pytest.mark.parametrize(
    ("status", "start", "message"),
    [
        (InstanceStatus.DRAFT, FRIDAY_EVENING - timedelta(minutes=1), "future"),
        (InstanceStatus.ACTIVE, FRIDAY_EVENING + timedelta(hours=1), "Only a draft"),
    ],
)
def test_only_a_draft_is_scheduled_and_only_for_later(app, db, status, start, message):
    campaign = builders.campaign(status=status)
    with pytest.raises(Conflict, match=message):
        edit(campaign, now=FRIDAY_EVENING, start_at=start)


# One contact ----------------------------------------------------------------------------------


def test_skipping_the_wait_sends_the_next_step_at_the_next_run(app, db, now):
    campaign = builders.campaign(steps=2, delays=(0, 3))
    enrollment = builders.EnrollmentFactory(instance=campaign, next_action_at=now)
    db.session.commit()
    worker = Worker(app, transport=OutboxTransport())
    assert worker.run_once(now=now).sent == 1
    waiting = builders.fresh(CampaignEnrollment, enrollment.id)
    assert waiting.next_action_at == now + timedelta(days=3)
    enrollments.skip_wait(builders.workspace_of(campaign), enrollment.id)
    assert worker.run_once(now=now).sent == 1
    assert builders.fresh(CampaignEnrollment, enrollment.id).current_step == 2


def test_only_an_active_enrollment_waiting_on_a_time_skips_its_wait(app, db, now):
    campaign = builders.campaign()
    paused = builders.EnrollmentFactory(instance=campaign, status=EnrollmentStatus.PAUSED)
    claimed = builders.EnrollmentFactory(instance=campaign, next_action_at=None)
    db.session.commit()
    workspace = builders.workspace_of(campaign)
    with pytest.raises(Conflict, match="paused"):
        enrollments.skip_wait(workspace, paused.id)
    with pytest.raises(Conflict, match="being sent"):
        enrollments.skip_wait(workspace, claimed.id)
    with pytest.raises(NotFound):
        enrollments.skip_wait(builders.WorkspaceFactory(), claimed.id)


def failed_send(app, now):
    """An enrollment whose first step the relay refused for good (as the worker records it)."""
    campaign = builders.campaign(steps=1)
    enrollment = builders.EnrollmentFactory(instance=campaign, next_action_at=None)
    step_id = db.session.scalar(sa.select(SequenceStep.id).where(SequenceStep.template_id == campaign.template_id))
    delivery = Delivery(
        workspace_id=campaign.workspace_id,
        enrollment_id=enrollment.id,
        step_id=step_id,
        status=DeliveryStatus.FAILED,
        attempts=1,
        error="550 5.7.1 refused by policy",
        sender="ada@acme.test",
    )
    db.session.add(delivery)
    lifecycle.change("fail", actor=lifecycle.Actor.WORKER, ids=[enrollment.id], reason="send failed", now=now)
    db.session.commit()
    return campaign, enrollment, delivery


def test_a_failed_delivery_is_sent_again_on_request(app, db, now):
    campaign, enrollment, delivery = failed_send(app, now)
    workspace = builders.workspace_of(campaign)
    assert deliveries.failed_delivery_id(enrollment.id) == delivery.id
    deliveries.retry_failed_delivery(workspace, delivery.id)
    assert builders.fresh(CampaignEnrollment, enrollment.id).status == EnrollmentStatus.ACTIVE
    assert Worker(app, transport=OutboxTransport()).run_once(now=now + timedelta(minutes=1)).sent == 1
    sent = builders.fresh(Delivery, delivery.id)
    assert (sent.status, sent.attempts) == (DeliveryStatus.SENT, 1)
    with pytest.raises(Conflict, match="only a failed delivery"):
        deliveries.retry_failed_delivery(workspace, delivery.id)


def test_a_failed_delivery_to_a_contact_who_left_is_not_sent_again(app, db, now):
    campaign, enrollment, delivery = failed_send(app, now)
    builders.contact_of(enrollment).status = ContactStatus.UNSUBSCRIBED
    db.session.commit()
    with pytest.raises(Conflict, match="unsubscribed"):
        deliveries.retry_failed_delivery(builders.workspace_of(campaign), delivery.id)
    with pytest.raises(NotFound):
        deliveries.retry_failed_delivery(builders.WorkspaceFactory(), delivery.id)
    assert builders.fresh(CampaignEnrollment, enrollment.id).status == EnrollmentStatus.FAILED

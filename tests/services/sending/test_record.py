"""Recording outcomes: each once, guarded by the delivery's status; retries planned by the policy."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests import builders
from webapp.engine import mailer
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignEvent, Contact, Delivery
from webapp.models.enums import EnrollmentStatus
from webapp.services import enrollments
from webapp.services.sending.claim import claim_due_work
from webapp.services.sending.compose import prepare_deliveries
from webapp.services.sending.record import Marker, Outcome, SendResult, finish_sent, record_outcomes

# Wednesday 2026-03-04, 16:59:30 UTC: half a minute before the office window closes.
CLOSING = datetime(2026, 3, 4, 16, 59, 30, tzinfo=UTC)


def enrollment(enrollment_id) -> CampaignEnrollment:
    return _db.session.get(CampaignEnrollment, enrollment_id, populate_existing=True)


def sent(now, campaign_settings=None, *, steps=2, n=1):
    """Claimed and handed over (marked sending), like a worker just before recording."""
    campaign = builders.campaign(steps=steps, delays=(0, 2), settings=campaign_settings or {})
    people = [builders.EnrollmentFactory(instance=campaign, next_action_at=now) for _ in range(n)]
    return campaign, people, builders.in_flight(now)


def test_a_send_is_recorded_once_however_often_it_is_reported(db):
    _, (person,), (item,) = sent(CLOSING)

    first = finish_sent([item], now=CLOSING)
    again = finish_sent([item], now=CLOSING + timedelta(minutes=1))
    _db.session.commit()

    assert (first, again) == ([item.delivery_id], [])
    delivery = _db.session.get(Delivery, item.delivery_id)
    assert (delivery.status, delivery.claimed_until, delivery.message_id) == ("sent", None, item.message_id)
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(CampaignEvent)) == 1
    moved = enrollment(person.id)
    assert (moved.current_step, moved.next_action_at) == (1, CLOSING + timedelta(days=2))


def test_a_reply_recorded_meanwhile_keeps_the_enrollment_where_it_ended(db):
    _, (person,), (item,) = sent(CLOSING)
    _db.session.execute(sa.update(CampaignEnrollment).values(status=EnrollmentStatus.REPLIED))

    finish_sent([item], now=CLOSING)
    _db.session.commit()

    assert (enrollment(person.id).status, enrollment(person.id).current_step) == ("replied", 0)


def test_a_retry_waits_its_backoff_then_the_send_window(db, app):
    office = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}
    _, (person,), (item,) = sent(CLOSING, {"send_window": office})

    record_outcomes([SendResult(item, Outcome.RETRY, mailer.TransientSendError(451, "later"))], now=CLOSING)

    delivery = _db.session.get(Delivery, item.delivery_id)
    tomorrow = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    assert (delivery.status, delivery.retry_at) == ("retry", tomorrow)
    assert enrollment(person.id).next_action_at == tomorrow


def test_the_last_allowed_failure_fails_the_enrollment(db, app):
    app.config["WORKER_MAX_ATTEMPTS"] = 1
    _, (person,), (item,) = sent(CLOSING)

    record_outcomes([SendResult(item, Outcome.RETRY, mailer.TransientSendError(451, "later"))], now=CLOSING)

    assert _db.session.get(Delivery, item.delivery_id).status == "failed"
    failed = enrollment(person.id)
    assert failed.status == "failed" and failed.status_reason.startswith("send failed: gave up after 1 attempts")


def test_missing_data_pauses_the_enrollment_and_the_step_goes_out_once_fixed(db, owner):
    campaign = builders.campaign(workspace=owner.workspace, steps=0)
    builders.StepFactory(template_id=campaign.template_id, position=1, subject="For {{ company }}", body="Hi")
    person = builders.EnrollmentFactory(instance=campaign, next_action_at=CLOSING)
    _db.session.execute(sa.update(Contact).values(company=None))
    claimed = claim_due_work(CLOSING)
    (item,) = prepare_deliveries(claimed.deliveries, claimed.drafts)
    assert item.problem.startswith("paused for missing data")

    record_outcomes([SendResult(item, Outcome.UNSENDABLE, item.problem)], now=CLOSING)

    paused = enrollment(person.id)
    assert paused.status == "paused" and "company" in paused.status_reason
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
    _db.session.execute(sa.update(Contact).values(company="Initech"))
    enrollments.change_enrollment_status(owner.workspace, person.id, "active")
    assert len(claim_due_work(datetime.now(UTC) + timedelta(minutes=1)).deliveries) == 1


def test_a_mark_needs_the_claim_s_own_lease(db):
    campaign = builders.campaign()
    builders.EnrollmentFactory(instance=campaign, next_action_at=CLOSING)
    claimed = claim_due_work(CLOSING)
    (item,) = prepare_deliveries(claimed.deliveries, claimed.drafts)
    # The lease ran out and another worker claimed the step again: this worker must not send it.
    _db.session.execute(sa.update(Delivery).values(claimed_until=CLOSING + timedelta(hours=2)))
    _db.session.commit()
    marker = Marker()
    try:
        assert marker.step(None, item, CLOSING) is False
    finally:
        marker.close()
    assert _db.session.scalar(sa.select(Delivery.status)) == "claimed"

"""Leases that run out, and unknown deliveries a person resolves."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from webapp.errors import Conflict, NotFound
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignEvent, Delivery, Workspace
from webapp.services.sending import deliveries
from webapp.services.sending.claim import claim_due_work
from webapp.services.sending.record import Marker, Outcome, SendResult

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
AFTER_THE_LEASE = NOW + timedelta(minutes=6)


def statuses() -> list[str]:
    return sorted(_db.session.scalars(sa.select(Delivery.status)))


def test_an_expired_claim_never_tried_goes_back_to_the_queue(db):
    campaign = builders.campaign()
    person = builders.EnrollmentFactory(instance=campaign, next_action_at=NOW)
    claim_due_work(NOW)

    assert deliveries.reap_expired_claims(NOW + timedelta(minutes=4)).released == 0  # the lease holds
    reaped = deliveries.reap_expired_claims(AFTER_THE_LEASE)

    assert (reaped.released, reaped.unknown) == (1, 0)
    assert statuses() == []
    due = _db.session.get(CampaignEnrollment, person.id, populate_existing=True).next_action_at
    assert due == AFTER_THE_LEASE


def test_an_expired_message_in_flight_becomes_unknown_and_a_stored_send_is_followed_through(db):
    campaign = builders.campaign(steps=2, delays=(0, 3))
    for _ in range(2):
        builders.EnrollmentFactory(instance=campaign, next_action_at=NOW)
    first, second = builders.in_flight(NOW)
    # The worker stored the first message's `sent` before it died in the second's SMTP transaction.
    marker = Marker()
    marker.step(SendResult(first, Outcome.SENT), None, NOW)
    marker.close()

    reaped = deliveries.reap_expired_claims(AFTER_THE_LEASE)

    assert (reaped.unknown, reaped.finished, reaped.released) == (1, 1, 0)
    assert statuses() == ["sent", "unknown"]
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(CampaignEvent)) == 1
    moved = _db.session.get(CampaignEnrollment, first.enrollment_id, populate_existing=True)
    assert (moved.current_step, moved.next_action_at) == (1, AFTER_THE_LEASE + timedelta(days=3))
    assert second.delivery_id == _db.session.scalar(sa.select(Delivery.id).where(Delivery.status == "unknown"))


def test_resolving_a_campaign_touches_only_its_own_unknown_deliveries(db):
    campaign = builders.campaign()
    other = builders.campaign()
    for instance in (campaign, campaign, other):
        builders.EnrollmentFactory(instance=instance, next_action_at=NOW)
    builders.in_flight(NOW)
    deliveries.reap_expired_claims(AFTER_THE_LEASE)
    workspace = _db.session.get(Workspace, campaign.workspace_id)

    assert deliveries.resolve_unknown_deliveries(workspace, campaign.id, sent=False) == 2
    assert statuses() == ["retry", "retry", "unknown"]
    with pytest.raises(NotFound):
        deliveries.resolve_unknown_deliveries(workspace, other.id, sent=True)  # another workspace's
    (left,) = _db.session.scalars(sa.select(Delivery).where(Delivery.status == "unknown"))
    with pytest.raises(NotFound):
        deliveries.resolve_unknown_delivery(workspace, left.id, sent=True)
    retried = _db.session.scalars(sa.select(Delivery).where(Delivery.status == "retry")).first()
    with pytest.raises(Conflict, match="is retry"):
        deliveries.resolve_unknown_delivery(workspace, retried.id, sent=True)

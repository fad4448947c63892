"""Opens, clicks and unsubscribes that arrive through our own links."""

import hashlib
import uuid
from datetime import datetime

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact, Delivery, Workspace, utcnow
from webapp.models.enums import DeliveryStatus, EventType
from webapp.services.events import record_event

PROVIDER = "drumbeat"


def _sent_delivery(delivery_id: uuid.UUID) -> tuple[Delivery, CampaignEnrollment, Workspace] | None:
    row = db.session.execute(
        sa.select(Delivery, CampaignEnrollment, Workspace)
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(Workspace, Workspace.id == Delivery.workspace_id)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENT)
    ).one_or_none()
    return tuple(row) if row else None


def record_open(delivery_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Count an open of a sent message (at most one event per message and hour)."""
    now = now or utcnow()
    found = _sent_delivery(delivery_id)
    if found is None:
        return False
    delivery, enrollment, workspace = found
    stored = record_event(
        workspace,
        enrollment=enrollment,
        type=EventType.OPENED,
        provider=PROVIDER,
        provider_event_id=f"open:{delivery.id}:{now:%Y%m%d%H}",
        step_id=delivery.step_id,
        occurred_at=now,
    )
    db.session.commit()
    return stored


def record_click(delivery_id: uuid.UUID, url: str, *, now: datetime | None = None) -> bool:
    """Count a click on a tracked link (at most one event per message, link and hour)."""
    now = now or utcnow()
    found = _sent_delivery(delivery_id)
    if found is None:
        return False
    delivery, enrollment, workspace = found
    link = hashlib.sha256(url.encode()).hexdigest()[:16]
    stored = record_event(
        workspace,
        enrollment=enrollment,
        type=EventType.CLICKED,
        provider=PROVIDER,
        provider_event_id=f"click:{delivery.id}:{link}:{now:%Y%m%d%H}",
        step_id=delivery.step_id,
        occurred_at=now,
        metadata={"url": url[:2000]},
    )
    db.session.commit()
    return stored


def find_unsubscribe_target(workspace_id: uuid.UUID, enrollment_id: uuid.UUID) -> tuple | None:
    """(workspace, enrollment, contact email) for an unsubscribe link, or None."""
    row = db.session.execute(
        sa.select(Workspace, CampaignEnrollment, Contact.email)
        .join(CampaignEnrollment, CampaignEnrollment.workspace_id == Workspace.id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(Workspace.id == workspace_id, CampaignEnrollment.id == enrollment_id)
    ).one_or_none()
    return tuple(row) if row else None


def unsubscribe(workspace_id: uuid.UUID, enrollment_id: uuid.UUID, *, source: str, now: datetime | None = None) -> bool:
    """Unsubscribe the enrollment's contact from every campaign of the workspace. Idempotent.

    Returns False when the link points at nothing (deleted contact or workspace).
    """
    found = find_unsubscribe_target(workspace_id, enrollment_id)
    if found is None:
        return False
    workspace, enrollment, _email = found
    record_event(
        workspace,
        enrollment=enrollment,
        type=EventType.UNSUBSCRIBED,
        provider=PROVIDER,
        provider_event_id=f"unsubscribe:{enrollment.id}",
        occurred_at=now or utcnow(),
        metadata={"source": source},
    )
    db.session.commit()
    return True

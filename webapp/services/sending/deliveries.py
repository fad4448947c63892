"""The ledger's loose ends: leases that ran out, claims handed back, and `unknown` deliveries
that a person resolves, one at a time or a whole campaign's at once."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from webapp.errors import Conflict, NotFound
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Contact, Delivery, SequenceStep, Workspace, utcnow
from webapp.models.enums import ContactStatus, DeliveryStatus, EnrollmentStatus, InstanceStatus
from webapp.services import lifecycle
from webapp.services.bulk import one_of
from webapp.services.lookups import get_owned, paginate
from webapp.services.sending.record import finish_sent

LOST_IN_FLIGHT = "the worker stopped during the send: it may or may not have gone out"


@dataclass
class Reaped:
    released: int = 0  # never tried: back in the queue
    unknown: int = 0  # tried, outcome unknown
    finished: int = 0  # sent, now recorded


def reap_expired_claims(now: datetime) -> Reaped:
    """Settle deliveries whose worker let the lease run out (it stopped, or lost the database):
    a claim never tried goes back to the queue; a message in its SMTP transaction becomes
    `unknown` (it may have left: a person decides, it is never resent blindly); a send whose
    outcome was stored but not yet followed through gets its event and moves its enrollment on."""
    table = Delivery.__table__
    reaped = Reaped()
    reaped.unknown = (
        db.session.execute(
            sa.update(table)
            .where(table.c.status == DeliveryStatus.SENDING, table.c.claimed_until < now)
            .values(status=DeliveryStatus.UNKNOWN, claimed_until=None, error=LOST_IN_FLIGHT, updated_at=now)
        ).rowcount
        or 0
    )
    expired = db.session.scalars(
        sa.select(table.c.id).where(table.c.status == DeliveryStatus.CLAIMED, table.c.claimed_until < now)
    ).all()
    reaped.released = _release(expired, now, expired=True)
    unfinished = _sent_items(sa.and_(Delivery.status == DeliveryStatus.SENT, Delivery.claimed_until < now))
    reaped.finished = len(finish_sent(unfinished, now=now))
    db.session.commit()
    return reaped


def release_claims(delivery_ids: list[uuid.UUID], now: datetime, *, never_sent: bool = False) -> int:
    """Give back claims that were never tried (a worker stopping or pausing): the steps are due
    again. With `never_sent`, the worker that claimed them knows they were not sent even if their
    mark as `sending` reached the database (it lost the connection before hearing back)."""
    released = _release(delivery_ids, now, never_sent=never_sent)
    db.session.commit()
    return released


def _release(delivery_ids: list[uuid.UUID], now: datetime, *, never_sent: bool = False, expired: bool = False) -> int:
    """Hand claims back: a first attempt's row is deleted, a retry's goes back to `retry` (the
    attempt not counted), and the enrollment is due at `now`. Guarded statements: a claim that
    left `claimed` meanwhile (its worker marked it `sending`) is not touched; with `expired`,
    only claims whose lease ended before `now`."""
    if not delivery_ids:
        return 0
    table = Delivery.__table__
    statuses = (DeliveryStatus.CLAIMED, DeliveryStatus.SENDING) if never_sent else (DeliveryStatus.CLAIMED,)
    guard = [table.c.status.in_(statuses)] + ([table.c.claimed_until < now] if expired else [])
    enrollment_ids: list[uuid.UUID] = []
    for start in range(0, len(delivery_ids), 500):
        chunk = one_of(table.c.id, delivery_ids[start : start + 500])
        enrollment_ids += db.session.scalars(
            sa.delete(table).where(chunk, table.c.attempts <= 1, *guard).returning(table.c.enrollment_id)
        )
        enrollment_ids += db.session.scalars(
            sa.update(table)
            .where(chunk, table.c.attempts > 1, *guard)
            .values(status=DeliveryStatus.RETRY, claimed_until=None, attempts=table.c.attempts - 1, updated_at=now)
            .returning(table.c.enrollment_id)
        )
    _due_again(enrollment_ids, now)
    return len(enrollment_ids)


def _due_again(enrollment_ids: list[uuid.UUID], now: datetime) -> None:
    """Make waiting active enrollments due at `now` (a claim given back, a send to retry)."""
    if enrollment_ids:
        db.session.execute(
            sa.update(CampaignEnrollment)
            .where(
                one_of(CampaignEnrollment.id, enrollment_ids),
                CampaignEnrollment.status == EnrollmentStatus.ACTIVE,
                CampaignEnrollment.next_action_at.is_(None),
            )
            .values(next_action_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )


def _sent_items(condition) -> list[sa.Row]:
    """Deliveries matching `condition` with what `finish_sent` needs, locked on PostgreSQL."""
    return db.session.execute(
        sa.select(
            Delivery.id.label("delivery_id"),
            Delivery.workspace_id,
            Delivery.enrollment_id,
            Delivery.step_id,
            Delivery.message_id,
            CampaignInstance.template_id,
            SequenceStep.position.label("step_position"),
        )
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        .where(condition)
        .with_for_update(of=Delivery, skip_locked=True)
    ).all()


def list_deliveries(
    workspace: Workspace,
    *,
    status: str | None = DeliveryStatus.UNKNOWN,
    instance_id: uuid.UUID | None = None,
    page: int = 1,
    limit: int = 20,
) -> tuple[list[Delivery], int]:
    query = sa.select(Delivery).where(Delivery.workspace_id == workspace.id)
    if status:
        query = query.where(Delivery.status == status)
    if instance_id:
        query = query.join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id).where(
            CampaignEnrollment.instance_id == instance_id
        )
    return paginate(query.order_by(Delivery.updated_at.desc(), Delivery.id), page=page, limit=limit)


def unknown_deliveries(workspace: Workspace, instance_id: uuid.UUID, *, limit: int) -> tuple[list[Delivery], int, int]:
    """The workspace's latest `limit` unknown deliveries, how many it has, and how many of them
    belong to the campaign `instance_id` (two queries)."""
    unknown = sa.select(Delivery).where(
        Delivery.workspace_id == workspace.id, Delivery.status == DeliveryStatus.UNKNOWN
    )
    latest = list(db.session.scalars(unknown.order_by(Delivery.updated_at.desc(), Delivery.id).limit(limit)))
    in_campaign = CampaignEnrollment.instance_id == instance_id
    total, here = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(in_campaign))
        .select_from(Delivery)
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .where(Delivery.workspace_id == workspace.id, Delivery.status == DeliveryStatus.UNKNOWN)
    ).one()
    return latest, total, here


def resolve_unknown_delivery(
    workspace: Workspace, delivery_id: uuid.UUID, *, sent: bool, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> Delivery:
    """A person says what happened to an `unknown` delivery: it was sent (the enrollment moves
    on), or it was not (it goes out again). NotFound for another workspace's delivery, Conflict
    for one that is not unknown."""
    delivery = db.session.scalar(
        sa.select(Delivery).where(Delivery.id == delivery_id, Delivery.workspace_id == workspace.id)
    )
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found.")
    if delivery.status != DeliveryStatus.UNKNOWN or not _resolve(Delivery.id == delivery_id, sent=sent, actor=actor):
        db.session.rollback()
        status = db.session.scalar(sa.select(Delivery.status).where(Delivery.id == delivery_id))
        raise Conflict(f"Delivery is {status}; only unknown deliveries can be resolved.")
    db.session.commit()
    return db.session.get(Delivery, delivery_id, populate_existing=True)


def resolve_unknown_deliveries(
    workspace: Workspace, instance_id: uuid.UUID, *, sent: bool, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> int:
    """Resolve every `unknown` delivery of a campaign at once (after a crash, say, checked
    against the relay's log): all sent, or all not sent. Returns how many."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    in_campaign = Delivery.enrollment_id.in_(
        sa.select(CampaignEnrollment.id).where(CampaignEnrollment.instance_id == instance.id)
    )
    resolved = _resolve(sa.and_(Delivery.workspace_id == workspace.id, in_campaign), sent=sent, actor=actor)
    db.session.commit()
    return resolved


def failed_delivery_id(enrollment_id: uuid.UUID) -> uuid.UUID | None:
    """The failed delivery that ended an enrollment (its latest), if any."""
    return db.session.scalar(
        sa.select(Delivery.id)
        .where(Delivery.enrollment_id == enrollment_id, Delivery.status == DeliveryStatus.FAILED)
        .order_by(Delivery.updated_at.desc())
        .limit(1)
    )


def retry_failed_delivery(
    workspace: Workspace, delivery_id: uuid.UUID, *, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> Delivery:
    """A person sends a failed delivery again: its enrollment is active again and the step goes
    out at the worker's next run (within the send window, caps and gaps), as a first attempt
    with a full series of retries. Conflict when the delivery did not fail, when its enrollment
    ended for another reason meanwhile, when the campaign is completed, or when the contact may
    no longer be written to (unsubscribed, bounced, suppressed)."""
    delivery = get_owned(Delivery, workspace, delivery_id, lock=True)
    if delivery.status != DeliveryStatus.FAILED:
        raise Conflict(f"Delivery is {delivery.status}; only a failed delivery can be retried.")
    enrollment = db.session.get(CampaignEnrollment, delivery.enrollment_id)
    instance_status, contact_status = db.session.execute(
        sa.select(CampaignInstance.status, Contact.status)
        .join(CampaignEnrollment, CampaignEnrollment.instance_id == CampaignInstance.id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(CampaignEnrollment.id == enrollment.id)
    ).one()
    if instance_status == InstanceStatus.COMPLETED:
        raise Conflict("The campaign is completed: nothing more is sent from it.")
    if contact_status != ContactStatus.SUBSCRIBED:
        raise Conflict(f"The contact is {contact_status}: Drumbeat does not write to them again.")
    now = utcnow()
    lifecycle.change_one(
        enrollment, "retry", actor=actor, reason=None, now=now, next_action_at=now, wait_reason=None, completed_at=None
    )
    delivery.status, delivery.retry_at, delivery.claimed_until = DeliveryStatus.RETRY, now, None
    delivery.attempts, delivery.updated_at = 0, now  # the claim counts this attempt as the first
    delivery.error = f"sent again by a person after: {delivery.error or 'a failure'}"[:2000]
    db.session.commit()
    return delivery


def _resolve(condition, *, sent: bool, actor: lifecycle.Actor) -> int:
    now = utcnow()
    unknown = sa.and_(condition, Delivery.status == DeliveryStatus.UNKNOWN)
    note = f"resolved by a person as {'sent' if sent else 'not sent'}"
    if sent:
        ids = finish_sent(_sent_items(unknown), now=now, actor=actor)
        if ids:
            db.session.execute(sa.update(Delivery).where(one_of(Delivery.id, ids)).values(error=note))
        return len(ids)
    rows = db.session.execute(
        sa.update(Delivery)
        .where(unknown)
        .values(status=DeliveryStatus.RETRY, retry_at=now, claimed_until=None, error=note, updated_at=now)
        .returning(Delivery.enrollment_id)
        .execution_options(synchronize_session=False)
    ).all()
    _due_again([row.enrollment_id for row in rows], now)
    return len(rows)

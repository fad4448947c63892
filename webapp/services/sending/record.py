"""Sending and recording: each message is marked `sending` just before its SMTP transaction
(`Marker`), handed to the transport (`send_prepared`), and its outcome (`Outcome`) recorded in
groups (`record_outcomes`): the `sent` event and the enrollment moved on, a retry with backoff,
a failure, or `unknown`."""

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from flask import current_app

from webapp.engine import mailer, policy
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, OutboxMessage, Workspace, utcnow
from webapp.models.enums import ContactStatus, DeliveryStatus, EnrollmentStatus, EventType
from webapp.services import lifecycle
from webapp.services.bulk import one_of
from webapp.services.contacts import suppress_contacts
from webapp.services.events import record_event, store_internal_events
from webapp.services.progress import ActiveSteps, advance
from webapp.services.sending.compose import Prepared

PROVIDER = "drumbeat"
NO_DELIVERY = uuid.UUID(int=0)


class Outcome(StrEnum):
    SENT = "sent"  # the relay accepted it
    RETRY = "retry"  # a temporary refusal or no connection: tried again after a backoff
    FAILED = "failed"  # a permanent refusal
    UNKNOWN = "unknown"  # the connection broke after the message was handed over
    UNSENDABLE = "unsendable"  # it could not be built (missing data): never handed over


@dataclass
class SendResult:
    prepared: Prepared
    outcome: Outcome
    error: Exception | str | None = None
    # A temporary failure that was the relay's, not the message's (the worker paused for it):
    # tried again once the pause ends, the attempt not counted.
    relay_down_until: datetime | None = None

    @property
    def delivery_id(self) -> uuid.UUID:
        return self.prepared.delivery_id


def send_prepared(item: Prepared, transport, *, before_handover: Callable[[], None] | None = None) -> SendResult:
    """Hand one message to the transport and classify what happened. No database access.
    `before_handover` goes to the transport (see `mailer.Transport`); what it raises propagates."""
    if item.problem:
        return SendResult(item, Outcome.UNSENDABLE, item.problem)
    try:
        transport.send(
            item.sender, [item.recipient], item.message, message_id=item.message_id, before_handover=before_handover
        )
    except mailer.TransientSendError as exc:
        return SendResult(item, Outcome.RETRY, exc)
    except mailer.PermanentSendError as exc:
        return SendResult(item, Outcome.FAILED, exc)
    except mailer.AmbiguousSendError as exc:
        return SendResult(item, Outcome.UNKNOWN, exc)
    return SendResult(item, Outcome.SENT)


_deliveries = Delivery.__table__
# One statement per message: the message about to be sent becomes `sending` (if it is still
# claimed under this worker's lease, and the lease has not run out), and the message before it
# leaves `sending`: `sent`, or back to `claimed` when the relay refused it (it was not sent, so
# a crash may hand it back). Written as text: it runs once per message, and SQLAlchemy's cache
# key for the same statement as an expression costs more than the database's work. The status
# checks sit in a CASE so that the plan always finds the two rows by primary key: the status
# index, full of `sending` entries of rows long sent, would be slower.
_MARK_SQL = """
        UPDATE deliveries SET
            status = CASE WHEN id = :next_id THEN 'sending' ELSE :previous_status END,
            message_id = CASE WHEN id = :next_id THEN :message_id ELSE message_id END,
            subject = CASE WHEN id = :next_id THEN :subject ELSE subject END,
            thread_references = CASE WHEN id = :next_id THEN :references ELSE thread_references END,
            sent_at = CASE WHEN id = :previous_id AND :previous_status = 'sent' THEN :now ELSE sent_at END,
            updated_at = :now
        WHERE id IN (:next_id, :previous_id)
            AND CASE WHEN id = :next_id THEN status = 'claimed' AND claimed_until = :lease AND claimed_until > :now
                ELSE status = 'sending' END
        RETURNING id
        """
_MARK = (
    sa.text(_MARK_SQL)
    .bindparams(
        sa.bindparam("next_id", type_=_deliveries.c.id.type),
        sa.bindparam("previous_id", type_=_deliveries.c.id.type),
        sa.bindparam("previous_status", type_=sa.String),
        sa.bindparam("message_id", type_=sa.String),
        sa.bindparam("subject", type_=sa.String),
        sa.bindparam("references", type_=sa.String),
        sa.bindparam("lease", type_=_deliveries.c.claimed_until.type),
        sa.bindparam("now", type_=_deliveries.c.updated_at.type),
    )
    .columns(id=_deliveries.c.id.type)
)
# The same statement for psycopg's own cursor: on PostgreSQL the marker skips SQLAlchemy's
# per-execution work (a third of a mark's time, on the worker's busiest thread).
_MARK_PSYCOPG = re.sub(r":(\w+)", r"%(\1)s", _MARK_SQL)


class Marker:
    """Marks each message `sending` just before its SMTP transaction, in the statement that
    stores the outcome of the message before it, on a connection of its own that commits at
    once. So a worker has at most one message `sending` without its outcome on record, and a
    worker that cannot reach the database sends nothing more. Marks are ordinary (flushed)
    commits: an asynchronous commit would save a tenth of the worker's time, but a crash of the
    database server could then forget a mark of a message that went out, and send it again."""

    def __init__(self):
        self._connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._postgresql = self._connection.dialect.name == "postgresql"

    def step(self, previous: SendResult | None, following: Prepared | None, now: datetime) -> bool:
        """Store `previous`'s outcome and mark `following` sending, at `now`. True when `following`
        may be sent: it is still claimed under its lease, and the lease has not run out."""
        previous_id, previous_status = NO_DELIVERY, None
        if previous is not None and previous.outcome in (Outcome.SENT, Outcome.RETRY, Outcome.FAILED):
            previous_id = previous.delivery_id
            previous_status = DeliveryStatus.SENT if previous.outcome == Outcome.SENT else DeliveryStatus.CLAIMED
        if following is None and previous_id == NO_DELIVERY:
            return False
        params = {
            "next_id": following.delivery_id if following else NO_DELIVERY,
            "lease": following.claimed_until if following else now,
            "message_id": following.message_id if following else None,
            "subject": following.subject if following else None,
            "references": following.references if following else None,
            "previous_id": previous_id,
            "previous_status": previous_status,
            "now": now,
        }
        if self._postgresql:
            with self._connection.connection.driver_connection.cursor() as cursor:
                marked = [row[0] for row in cursor.execute(_MARK_PSYCOPG, params)]
        else:
            marked = list(self._connection.execute(_MARK, params).scalars())
        return following is not None and following.delivery_id in marked

    def close(self) -> None:
        self._connection.close()


def record_outcomes(results: list[SendResult], *, store_copy: bool = False, now: datetime | None = None) -> None:
    """Record a group of outcomes in one transaction: sends in bulk (see `finish_sent`), the
    rest one by one. Each is guarded by the delivery's status, so recording a group twice (a
    worker retrying after the database came back) changes nothing the second time."""
    if not results:
        return
    now = now or utcnow()
    finish_sent([r.prepared for r in results if r.outcome == Outcome.SENT], now=now, copies=store_copy)
    for result in results:
        if result.outcome == Outcome.UNSENDABLE:
            _record_unsendable(result.prepared, str(result.error), now)
        elif result.outcome == Outcome.RETRY:
            _record_retry(result, now)
        elif result.outcome == Outcome.FAILED:
            _record_failure(result.prepared, result.error, now)
        elif result.outcome == Outcome.UNKNOWN:
            _record_unknown(result.prepared, str(result.error), now)
    db.session.commit()


def finish_sent(
    items: list, *, now: datetime, copies: bool = False, actor: lifecycle.Actor = lifecycle.Actor.WORKER
) -> list[uuid.UUID]:
    """Record sends: each delivery `sent` (lease cleared), a `sent` event, an outbox copy when
    `copies`, and the enrollment moved on to its next step. `items` have `delivery_id`,
    `workspace_id`, `enrollment_id`, `step_id`, `template_id`, `step_position` and `message_id`
    (a `Prepared`, or a row read back by the reaper or a person's resolution). Only deliveries
    on their way (`sending`, `sent` with a lease, or `unknown`) are recorded, once: returns
    their ids. Flushes; the caller commits."""
    if not items:
        return []
    table = _deliveries
    on_their_way = sa.or_(
        sa.and_(table.c.status == DeliveryStatus.SENT, table.c.claimed_until.is_not(None)),
        table.c.status.in_((DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)),
    )
    # The Message-ID and the time were stored with the `sending` and `sent` marks.
    finished = db.session.execute(
        sa.update(table)
        .where(one_of(table.c.id, [item.delivery_id for item in items]), on_their_way)
        .values(
            status=DeliveryStatus.SENT,
            sent_at=sa.func.coalesce(table.c.sent_at, now),
            claimed_until=None,
            error=None,
            updated_at=now,
        )
        .returning(table.c.id)
        .execution_options(synchronize_session=False)
    )
    done = {row.id for row in finished}
    items = [item for item in items if item.delivery_id in done]
    if not items:
        return []
    if copies:
        db.session.execute(
            sa.insert(OutboxMessage),
            [
                {
                    "id": uuid.uuid4(),
                    "workspace_id": p.workspace_id,
                    "delivery_id": p.delivery_id,
                    "message_id": p.message_id,
                    "from_email": p.sender,
                    "to_email": p.recipient,
                    "subject": p.subject,
                    "raw": p.message.decode("utf-8", "replace"),
                    "created_at": now,
                }
                for p in items
            ],
        )
    store_internal_events(
        [
            {
                "workspace_id": p.workspace_id,
                "enrollment_id": p.enrollment_id,
                "step_id": p.step_id,
                "channel": "email",
                "type": EventType.SENT,
                "provider": PROVIDER,
                "provider_event_id": f"sent:{p.delivery_id}",
                "occurred_at": now,
                "metadata": {"message_id": p.message_id},
            }
            for p in items
        ]
    )
    advance(
        [(p.enrollment_id, p.template_id, p.step_position) for p in items],
        now=now,
        actor=actor,
        steps=ActiveSteps(),
        by_template=True,
    )
    return [item.delivery_id for item in items]


def _claimed(item: Prepared) -> Delivery | None:
    """The delivery, if its outcome is still to be recorded (not already recorded or reaped)."""
    delivery = db.session.get(Delivery, item.delivery_id)
    if delivery is None or delivery.status not in (DeliveryStatus.CLAIMED, DeliveryStatus.SENDING):
        return None
    return delivery


def _record_unsendable(item: Prepared, reason: str, now: datetime) -> None:
    delivery = _claimed(item)
    if delivery is None:
        return
    # Never handed over: no ledger entry, so the step goes out once the data is fixed and the
    # enrollment resumed.
    db.session.delete(delivery)
    lifecycle.change(
        "pause", actor=lifecycle.Actor.WORKER, ids=[item.enrollment_id], reason=reason, now=now, next_action_at=None
    )


def _record_retry(result: SendResult, now: datetime) -> None:
    item, reason = result.prepared, str(result.error)
    delivery = _claimed(item)
    if delivery is None:
        return
    delivery.claimed_until, delivery.updated_at = None, now
    retry_at = None
    if result.relay_down_until is not None:
        delivery.attempts -= 1
        retry_at = _retry_at(item, result.relay_down_until, attempt=1)
    elif delivery.attempts < current_app.config["WORKER_MAX_ATTEMPTS"]:
        retry_at = _retry_at(item, now, attempt=delivery.attempts + 1)
    if retry_at is None:
        delivery.status, delivery.error = DeliveryStatus.FAILED, f"gave up after {delivery.attempts} attempts: {reason}"
        lifecycle.change(
            "fail",
            actor=lifecycle.Actor.WORKER,
            ids=[item.enrollment_id],
            reason=lifecycle.reason_text(lifecycle.Reason.SEND_FAILED, delivery.error),
            now=now,
        )
        return
    delivery.status, delivery.error, delivery.retry_at = DeliveryStatus.RETRY, reason[:2000], retry_at
    db.session.execute(
        sa.update(CampaignEnrollment)
        .where(CampaignEnrollment.id == item.enrollment_id, CampaignEnrollment.status == EnrollmentStatus.ACTIVE)
        .values(next_action_at=retry_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _retry_at(item: Prepared, failed_at: datetime, *, attempt: int) -> datetime | None:
    """When the policy lets attempt number `attempt` go after a failure at `failed_at`; None if never."""
    try:
        return policy.plan(
            failed_at,
            now=failed_at,
            rules=item.settings.rules,
            contact_timezone=item.contact_timezone,
            attempt=attempt,
            jitter=random.random(),
        ).at
    except policy.NoSendTime:
        return None


def _record_failure(item: Prepared, exc, now: datetime) -> None:
    delivery = _claimed(item)
    if delivery is None:
        return
    reason = f"{exc.code} {exc}"[:2000]
    delivery.status, delivery.error, delivery.claimed_until, delivery.updated_at = (
        DeliveryStatus.FAILED,
        reason,
        None,
        now,
    )
    lifecycle.change("fail", actor=lifecycle.Actor.WORKER, ids=[item.enrollment_id], reason=reason, now=now)
    if exc.recipient_refused:
        # A refusal of the recipient (RCPT stage or a 5.1.x code) means the address is dead; a
        # refusal of the sender or the content does not suppress the contact. Suppressed first,
        # so the contact keeps this reason rather than the event's.
        workspace = db.session.get(Workspace, item.workspace_id)
        suppress_contacts(
            workspace,
            [item.contact_id],
            status=ContactStatus.BOUNCED,
            reason=f"hard bounce: {reason}",
            actor=lifecycle.Actor.WORKER,
        )
        record_event(
            workspace,
            enrollment=db.session.get(CampaignEnrollment, item.enrollment_id),
            type=EventType.BOUNCED,
            provider=PROVIDER,
            provider_event_id=f"bounce:{delivery.id}",
            step_id=item.step_id,
            occurred_at=now,
            metadata={"bounce_type": "hard", "smtp_code": exc.code},
            actor=lifecycle.Actor.WORKER,
        )


def _record_unknown(item: Prepared, reason: str, now: datetime) -> None:
    delivery = db.session.get(Delivery, item.delivery_id)
    if delivery is None or delivery.status != DeliveryStatus.SENDING:
        return
    delivery.status, delivery.error, delivery.claimed_until, delivery.updated_at = (
        DeliveryStatus.UNKNOWN,
        reason[:2000],
        None,
        now,
    )

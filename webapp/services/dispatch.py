"""The send dispatcher: claim, then send, then record. Never lock, send, commit.

1. `reap_expired_claims`: a claim whose lease ran out without a result becomes `unknown`
   (the message may or may not have left); it waits for a person, never a blind resend.
2. `claim_due_work`: one short transaction picks due enrollments (`FOR UPDATE SKIP LOCKED`
   on PostgreSQL, so any number of workers can share the table), re-checks the campaign,
   the enrollment and the contact's suppression, applies the send window and the daily
   cap, and writes a `deliveries` row with a lease for each email step (LinkedIn steps get
   a task instead). The unique (enrollment, step) ledger makes a step go out at most once.
3. `send_delivery`: renders and sends one claimed message outside any transaction, then
   records the outcome in a second transaction: sent (with its Message-ID, a `sent` event,
   the enrollment advanced), a retry with backoff (SMTP 4xx, connection errors), a failure
   (SMTP 5xx: the enrollment fails; a bad mailbox also suppresses the contact) or unknown.
"""

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app

from webapp.engine import mailer, render, scheduler, tracking
from webapp.errors import Conflict, NotFound
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    CampaignTemplate,
    Contact,
    Delivery,
    OutboxMessage,
    SequenceStep,
    Task,
    Workspace,
    utcnow,
)
from webapp.models.enums import (
    Channel,
    ContactStatus,
    DeliveryStatus,
    EnrollmentStatus,
    EventType,
    InstanceStatus,
    TaskStatus,
)
from webapp.services.contacts import suppress_contacts
from webapp.services.events import record_event, store_internal_events
from webapp.services.lookups import paginate
from webapp.services.progress import ActiveSteps, advance_enrollment, complete_enrollment
from webapp.services.tasks import finish_task

PROVIDER = "drumbeat"
RETRY_BACKOFF = (60, 300, 900, 3600, 4 * 3600)  # seconds after the 1st, 2nd, ... transient failure


@dataclass
class ClaimReport:
    deliveries: list[uuid.UUID] = field(default_factory=list)
    tasks: int = 0
    completed: int = 0
    deferred: int = 0


SENDER_DEFAULT_KEYS = ("send_window", "timezone", "daily_cap", "from_name", "from_email")


def effective_settings(
    template: CampaignTemplate, instance: CampaignInstance, workspace_settings: dict | None = None
) -> dict:
    """The workspace's sender defaults, overridden by the template's settings, overridden by
    the instance's."""
    defaults = {k: v for k, v in (workspace_settings or {}).items() if k in SENDER_DEFAULT_KEYS and v is not None}
    return {**defaults, **(template.settings or {}), **(instance.settings or {})}


class _WorkspaceSettings:
    """Workspace settings by id, loaded once per batch."""

    def __init__(self):
        self._cache: dict[uuid.UUID, dict] = {}

    def __call__(self, workspace_id: uuid.UUID) -> dict:
        if workspace_id not in self._cache:
            self._cache[workspace_id] = (
                db.session.scalar(sa.select(Workspace.settings).where(Workspace.id == workspace_id)) or {}
            )
        return self._cache[workspace_id]


def sender_of(settings: dict) -> tuple[str, str]:
    """(display name, address) of the mailbox a campaign sends from."""
    name, address = parseaddr(current_app.config["MAIL_FROM"])
    return settings.get("from_name") or name or "", (settings.get("from_email") or address).lower()


def contact_zone(contact: Contact, settings: dict) -> str:
    """The zone a contact's send window is read in: theirs, else the window's, else the campaign's."""
    window = settings.get("send_window") or {}
    zone = scheduler.resolve_timezone(contact.timezone, window.get("timezone"), settings.get("timezone"))
    return zone.key


def reap_expired_claims(now: datetime) -> int:
    """Turn claims whose lease expired into `unknown` deliveries. Returns how many."""
    result = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_until < now)
        .values(status=DeliveryStatus.UNKNOWN, error="lease expired before the outcome was recorded", updated_at=now)
    )
    db.session.commit()
    return result.rowcount or 0


def _due_query(now: datetime, limit: int, *, follow_ups: bool):
    return (
        sa.select(CampaignEnrollment, CampaignInstance, CampaignTemplate, Contact)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(
            CampaignEnrollment.status == EnrollmentStatus.ACTIVE,
            CampaignEnrollment.next_action_at <= now,
            CampaignInstance.status == InstanceStatus.ACTIVE,
            Contact.status == ContactStatus.SUBSCRIBED,
            (CampaignEnrollment.current_step > 0) if follow_ups else (CampaignEnrollment.current_step == 0),
        )
        .order_by(CampaignEnrollment.next_action_at)
        .limit(limit)
        .with_for_update(of=CampaignEnrollment, skip_locked=True)
    )


def _due_rows(now: datetime, limit: int) -> list:
    """Due enrollments, follow-ups first (they go before new contacts when the cap bites)."""
    rows = db.session.execute(_due_query(now, limit, follow_ups=True)).all()
    if len(rows) < limit:
        rows += db.session.execute(_due_query(now, limit - len(rows), follow_ups=False)).all()
    return rows


def sent_since(sender: str, day_start: datetime) -> int:
    """Messages claimed or sent by `sender` since `day_start` (what its daily cap counts)."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(
            Delivery.sender == sender,
            Delivery.created_at >= day_start,
            Delivery.status.in_((DeliveryStatus.CLAIMED, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)),
        )
    )


def _last_send(sender: str) -> datetime | None:
    return db.session.scalar(sa.select(sa.func.max(Delivery.created_at)).where(Delivery.sender == sender))


def claim_due_work(now: datetime, *, limit: int | None = None) -> ClaimReport:
    """Claim the work due at `now` in one committed transaction (see the module docstring)."""
    limit = limit or current_app.config["WORKER_BATCH_SIZE"]
    lease = timedelta(seconds=current_app.config["WORKER_LEASE_SECONDS"])
    report = ClaimReport()
    steps = ActiveSteps()
    used: dict[str, int] = {}
    last_sends: dict[str, datetime | None] = {}
    rng = random.Random()
    rows = _due_rows(now, limit)
    workspace_settings = _WorkspaceSettings()
    existing = _existing_deliveries([row[0].id for row in rows])
    for enrollment, instance, template, contact in rows:
        settings = effective_settings(template, instance, workspace_settings(enrollment.workspace_id))
        step = steps.after(template.id, enrollment.current_step)
        if step is None:
            complete_enrollment(enrollment, now)
            report.completed += 1
            continue
        zone = contact_zone(contact, settings)
        window = settings.get("send_window")
        if step.channel == Channel.LINKEDIN:
            _create_task(enrollment, step, due_at=enrollment.next_action_at, now=now)
            report.tasks += 1
            continue
        send_at = scheduler.next_send_time(now, window=window, tz=zone, holidays_country=settings.get("skip_holidays"))
        if send_at > now:
            enrollment.next_action_at = send_at
            report.deferred += 1
            continue
        _, sender = sender_of(settings)
        gap = settings.get("min_gap_seconds")
        if gap:
            last_sends.setdefault(sender, _last_send(sender))
            earliest = last_sends[sender] + timedelta(seconds=gap) if last_sends[sender] else now
            if earliest > now:
                enrollment.next_action_at = earliest + timedelta(seconds=rng.uniform(0, gap / 2))
                report.deferred += 1
                continue
            last_sends[sender] = now
        cap = settings.get("daily_cap")
        if cap:
            day_start = scheduler.local_day_start(now, zone)
            used.setdefault(sender, sent_since(sender, day_start))
            if used[sender] >= cap:
                enrollment.next_action_at = scheduler.next_send_time(
                    scheduler.local_day_start(now + timedelta(days=1), zone),
                    window=window,
                    tz=zone,
                    holidays_country=settings.get("skip_holidays"),
                )
                report.deferred += 1
                continue
            used[sender] += 1
        delivery = _claim_delivery(
            enrollment, step, existing.get((enrollment.id, step.id)), sender=sender, now=now, lease=lease
        )
        if delivery is not None:
            report.deliveries.append(delivery.id)
    db.session.commit()
    return report


def _create_task(enrollment: CampaignEnrollment, step: SequenceStep, *, due_at: datetime, now: datetime) -> None:
    exists = db.session.scalar(sa.select(Task.id).where(Task.enrollment_id == enrollment.id, Task.step_id == step.id))
    if exists is None:
        db.session.add(
            Task(
                workspace_id=enrollment.workspace_id,
                enrollment_id=enrollment.id,
                step_id=step.id,
                type=step.action,
                due_at=due_at or now,
            )
        )
    enrollment.next_action_at = None  # the enrollment waits for the task
    enrollment.status_reason = f"waiting for LinkedIn task (step {step.position})"
    enrollment.updated_at = now


def _existing_deliveries(enrollment_ids: list[uuid.UUID]) -> dict[tuple, Delivery]:
    if not enrollment_ids:
        return {}
    query = sa.select(Delivery).where(Delivery.enrollment_id.in_(enrollment_ids))
    return {(d.enrollment_id, d.step_id): d for d in db.session.scalars(query)}


def _claim_delivery(
    enrollment, step, delivery: Delivery | None, *, sender: str, now: datetime, lease: timedelta
) -> Delivery | None:
    """Write the claim, or reuse a delivery waiting for a retry. None when the step already has
    a send on record (it then never goes out a second time)."""
    enrollment.next_action_at = None  # not picked again while claimed
    enrollment.updated_at = now
    if delivery is None:
        delivery = Delivery(
            id=uuid.uuid4(),
            workspace_id=enrollment.workspace_id,
            enrollment_id=enrollment.id,
            step_id=step.id,
            sender=sender,
            status=DeliveryStatus.CLAIMED,
            claimed_until=now + lease,
            attempts=1,
            created_at=now,
            updated_at=now,
        )
        db.session.add(delivery)
        return delivery
    if delivery.status == DeliveryStatus.RETRY:
        delivery.status, delivery.claimed_until = DeliveryStatus.CLAIMED, now + lease
        delivery.attempts += 1
        delivery.retry_at = None
        return delivery
    if delivery.status == DeliveryStatus.SENT:
        advance_enrollment(enrollment, step, now)
    else:
        enrollment.status_reason = f"step {step.position} delivery is {delivery.status}; resolve it to continue"
    return None


@dataclass
class Prepared:
    """A claimed delivery, rendered and built, ready for the transport."""

    delivery_id: uuid.UUID
    workspace_id: uuid.UUID
    enrollment_id: uuid.UUID
    instance_id: uuid.UUID
    template_id: uuid.UUID
    step_id: uuid.UUID
    step_position: int
    contact_id: uuid.UUID
    recipient: str
    sender: str = ""
    subject: str = ""
    message: bytes = b""
    message_id: str = ""
    problem: str | None = None


@dataclass
class Outcome:
    prepared: Prepared
    status: str  # sent | retry | failed | unknown | unsendable
    error: Exception | str | None = None

    @property
    def delivery_id(self) -> uuid.UUID:
        return self.prepared.delivery_id


def render_context(contact: Contact, *, sender_name: str, unsubscribe_url: str) -> dict:
    """The variables a template may use: contact fields, `custom` fields and a few extras."""
    full_name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or None
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "company": contact.company,
        "title": contact.title,
        "linkedin_url": contact.linkedin_url,
        "timezone": contact.timezone,
        "full_name": full_name,
        "sender_name": sender_name,
        "unsubscribe_url": unsubscribe_url,
        "custom": dict(contact.custom_fields or {}),
    }


def public_url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def unsubscribe_url(workspace_id: uuid.UUID, enrollment_id: uuid.UUID) -> str:
    token = tracking.make_token(
        "unsubscribe", {"w": str(workspace_id), "e": str(enrollment_id)}, current_app.config["SECRET_KEY"]
    )
    return public_url(f"/u/{token}")


def provider_headers(delivery_id: uuid.UUID) -> dict[str, str]:
    """Headers that make the providers' webhooks name our delivery (see webapp/webhooks)."""
    tag = json.dumps({"drumbeat_delivery_id": str(delivery_id)}, separators=(",", ":"))
    return {
        "X-Drumbeat-Delivery-Id": str(delivery_id),
        "X-SMTPAPI": json.dumps({"unique_args": {"drumbeat_delivery_id": str(delivery_id)}}, separators=(",", ":")),
        "X-Mailgun-Variables": tag,
        "X-PM-Metadata-drumbeat_delivery_id": str(delivery_id),
    }


def compose(
    delivery: Delivery,
    enrollment: CampaignEnrollment,
    contact: Contact,
    step: SequenceStep,
    instance: CampaignInstance,
    template: CampaignTemplate,
    workspace_settings: dict | None = None,
) -> tuple[bytes, str, str, str]:
    """Render and build one message: (bytes, Message-ID, from address, subject).

    Raises render.UnresolvedVariable when a variable has no value and no default.
    """
    settings = effective_settings(template, instance, workspace_settings)
    sender_name, sender = sender_of(settings)
    unsubscribe = unsubscribe_url(delivery.workspace_id, enrollment.id)
    rendered = render.render_message(
        step.subject or "",
        step.body or "",
        render_context(contact, sender_name=sender_name, unsubscribe_url=unsubscribe),
    )
    html = rendered.html
    secret = current_app.config["SECRET_KEY"]
    if settings.get("track_clicks"):
        html = tracking.rewrite_links(
            html,
            lambda url: public_url("/t/c/" + tracking.make_token("click", {"d": str(delivery.id), "u": url}, secret)),
            keep={unsubscribe},
        )
    if settings.get("track_opens"):
        html += tracking.pixel_html(public_url("/t/o/" + tracking.make_token("open", {"d": str(delivery.id)}, secret)))
    domain = sender.rpartition("@")[2] or "drumbeat.invalid"
    message_id = mailer.make_message_id(delivery.id, domain)
    message = mailer.build_message(
        from_addr=(sender_name, sender),
        to_addr=contact.email,
        subject=rendered.subject,
        text=rendered.text,
        html=html,
        message_id=message_id,
        unsubscribe_url=unsubscribe,
        headers=provider_headers(delivery.id),
    )
    return message, message_id, sender, rendered.subject


def prepare_deliveries(delivery_ids: list[uuid.UUID]) -> list[Prepared]:
    """Load and build the claimed deliveries in one query; ends the read transaction, so no
    transaction stays open during the SMTP conversation."""
    rows = db.session.execute(
        sa.select(Delivery, CampaignEnrollment, Contact, SequenceStep, CampaignInstance, CampaignTemplate)
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.CLAIMED)
    ).all()
    by_id = {row[0].id: row for row in rows}
    workspace_settings = _WorkspaceSettings()
    prepared = []
    for delivery_id in delivery_ids:
        if delivery_id not in by_id:
            continue
        delivery, enrollment, contact, step, instance, template = by_id[delivery_id]
        item = Prepared(
            delivery.id,
            delivery.workspace_id,
            enrollment.id,
            instance.id,
            template.id,
            step.id,
            step.position,
            contact.id,
            contact.email,
        )
        try:
            item.message, item.message_id, item.sender, item.subject = compose(
                delivery, enrollment, contact, step, instance, template, workspace_settings(delivery.workspace_id)
            )
        except render.UnresolvedVariable as exc:
            item.problem = f"unresolved variables: {', '.join(sorted(exc.names))}"
        except (render.TemplateError, mailer.MessageError) as exc:
            item.problem = f"cannot build the message: {exc}"
        prepared.append(item)
    db.session.rollback()
    return prepared


def send_prepared(item: Prepared, transport) -> Outcome:
    """Hand one message to the transport and classify what happened. No database access."""
    if item.problem:
        return Outcome(item, "unsendable", item.problem)
    try:
        transport.send(item.sender, [item.recipient], item.message, message_id=item.message_id)
    except mailer.TransientSendError as exc:
        return Outcome(item, DeliveryStatus.RETRY, exc)
    except mailer.PermanentSendError as exc:
        return Outcome(item, DeliveryStatus.FAILED, exc)
    except mailer.AmbiguousSendError as exc:
        return Outcome(item, DeliveryStatus.UNKNOWN, exc)
    return Outcome(item, DeliveryStatus.SENT)


def send_delivery(delivery_id: uuid.UUID, transport, *, now: datetime | None = None) -> Outcome | None:
    """Send one claimed delivery and record what happened (see the module docstring)."""
    prepared = prepare_deliveries([delivery_id])
    if not prepared:
        return None
    outcome = send_prepared(prepared[0], transport)
    record_outcomes([outcome], transport=transport, now=now)
    return outcome


def record_outcomes(outcomes: list[Outcome], *, transport=None, now: datetime | None = None) -> None:
    """Record a batch of send outcomes in one transaction: sends in bulk (deliveries, `sent`
    events and rollups, outbox copies, enrollments advanced); failures one by one."""
    if not outcomes:
        return
    now = now or utcnow()
    sent = [o.prepared for o in outcomes if o.status == DeliveryStatus.SENT]
    if sent:
        _record_sent_batch(sent, now, store_copy=getattr(transport, "stores_messages", False))
    for outcome in outcomes:
        if outcome.status == "unsendable":
            _record_unsendable(outcome.prepared, str(outcome.error), now)
        elif outcome.status == DeliveryStatus.RETRY:
            _record_retry(outcome.prepared, str(outcome.error), now)
        elif outcome.status == DeliveryStatus.FAILED:
            _record_failure(outcome.prepared, outcome.error, now)
        elif outcome.status == DeliveryStatus.UNKNOWN:
            _record_unknown(outcome.prepared, str(outcome.error), now)
    db.session.commit()


def _record_sent_batch(sent: list[Prepared], now: datetime, *, store_copy: bool) -> None:
    connection = db.session.connection()
    deliveries = Delivery.__table__
    connection.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("d_id"), deliveries.c.status == DeliveryStatus.CLAIMED)
        .values(
            status=DeliveryStatus.SENT,
            message_id=sa.bindparam("d_message_id"),
            sent_at=now,
            claimed_until=None,
            error=None,
            updated_at=now,
        ),
        [{"d_id": p.delivery_id, "d_message_id": p.message_id} for p in sent],
    )
    if store_copy:
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
                for p in sent
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
            for p in sent
        ]
    )
    steps = ActiveSteps()
    enrollments = CampaignEnrollment.__table__
    updates = []
    for p in sent:
        following = steps.after(p.template_id, p.step_position)
        done = following is None
        updates.append(
            {
                "e_id": p.enrollment_id,
                "e_step": p.step_position,
                "e_status": EnrollmentStatus.COMPLETED if done else EnrollmentStatus.ACTIVE,
                "e_reason": "all steps done" if done else None,
                "e_next": None if done else scheduler.next_due(now, following),
                "e_completed": now if done else None,
            }
        )
    # Only enrollments still active move on: a reply recorded meanwhile keeps its final state.
    connection.execute(
        sa.update(enrollments)
        .where(enrollments.c.id == sa.bindparam("e_id"), enrollments.c.status == EnrollmentStatus.ACTIVE)
        .values(
            current_step=sa.bindparam("e_step"),
            status=sa.bindparam("e_status"),
            status_reason=sa.bindparam("e_reason"),
            next_action_at=sa.bindparam("e_next"),
            completed_at=sa.bindparam("e_completed"),
            updated_at=now,
        ),
        updates,
    )


def _objects(item: Prepared) -> tuple[Delivery, CampaignEnrollment]:
    return db.session.get(Delivery, item.delivery_id), db.session.get(CampaignEnrollment, item.enrollment_id)


def _record_unsendable(item: Prepared, reason: str, now: datetime) -> None:
    delivery, enrollment = _objects(item)
    delivery.status, delivery.error, delivery.claimed_until, delivery.updated_at = (
        DeliveryStatus.FAILED,
        reason,
        None,
        now,
    )
    # Paused, not failed: fix the contact's data or the template, then resume.
    enrollment.status, enrollment.status_reason = EnrollmentStatus.PAUSED, reason[:255]
    enrollment.next_action_at, enrollment.updated_at = None, now


def _record_retry(item: Prepared, reason: str, now: datetime) -> None:
    delivery, enrollment = _objects(item)
    if delivery.attempts >= current_app.config["WORKER_MAX_ATTEMPTS"]:
        delivery.status, delivery.error = DeliveryStatus.FAILED, f"gave up after {delivery.attempts} attempts: {reason}"
        enrollment.status, enrollment.status_reason = EnrollmentStatus.FAILED, delivery.error[:255]
        enrollment.next_action_at, enrollment.completed_at = None, now
    else:
        delay = RETRY_BACKOFF[min(delivery.attempts, len(RETRY_BACKOFF)) - 1]
        delivery.status, delivery.error = DeliveryStatus.RETRY, reason[:2000]
        delivery.retry_at = now + timedelta(seconds=delay * random.uniform(1.0, 1.25))
        if enrollment.status == EnrollmentStatus.ACTIVE:
            enrollment.next_action_at = delivery.retry_at
    delivery.claimed_until, delivery.updated_at, enrollment.updated_at = None, now, now


def _record_failure(item: Prepared, exc, now: datetime) -> None:
    delivery, enrollment = _objects(item)
    reason = f"{exc.code} {exc}"[:2000]
    delivery.status, delivery.error, delivery.claimed_until, delivery.updated_at = (
        DeliveryStatus.FAILED,
        reason,
        None,
        now,
    )
    enrollment.status, enrollment.status_reason = EnrollmentStatus.FAILED, reason[:255]
    enrollment.next_action_at, enrollment.completed_at, enrollment.updated_at = None, now, now
    if _is_hard_bounce(exc):
        workspace = db.session.get(Workspace, item.workspace_id)
        record_event(
            workspace,
            enrollment=enrollment,
            type=EventType.BOUNCED,
            provider=PROVIDER,
            provider_event_id=f"bounce:{delivery.id}",
            step_id=item.step_id,
            occurred_at=now,
            metadata={"bounce_type": "hard", "smtp_code": exc.code},
        )
        suppress_contacts(workspace, [item.contact_id], status=ContactStatus.BOUNCED, reason=f"hard bounce: {reason}")


def _is_hard_bounce(exc) -> bool:
    """A refusal of the recipient (RCPT stage or a 5.1.x code) means the address is dead; a
    refusal of the sender or the content does not suppress the contact."""
    return exc.recipient_refused


def _record_unknown(item: Prepared, reason: str, now: datetime) -> None:
    delivery, _ = _objects(item)
    delivery.status, delivery.error, delivery.claimed_until, delivery.updated_at = (
        DeliveryStatus.UNKNOWN,
        reason[:2000],
        None,
        now,
    )


def release_claims(delivery_ids: list[uuid.UUID], now: datetime) -> int:
    """Give back claims that were never attempted (a worker stopping): the steps are due again."""
    if not delivery_ids:
        return 0
    claims = list(
        db.session.scalars(
            sa.select(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.CLAIMED)
        )
    )
    for delivery in claims:
        enrollment = db.session.get(CampaignEnrollment, delivery.enrollment_id)
        enrollment.next_action_at = now
        if delivery.attempts <= 1:
            db.session.delete(delivery)
        else:
            delivery.status, delivery.claimed_until, delivery.attempts = (
                DeliveryStatus.RETRY,
                None,
                delivery.attempts - 1,
            )
    db.session.commit()
    return len(claims)


def list_deliveries(
    workspace: Workspace, *, status: str | None = DeliveryStatus.UNKNOWN, page: int = 1, limit: int = 20
) -> tuple[list[Delivery], int]:
    query = sa.select(Delivery).where(Delivery.workspace_id == workspace.id)
    if status:
        query = query.where(Delivery.status == status)
    return paginate(query.order_by(Delivery.updated_at.desc(), Delivery.id), page=page, limit=limit)


def resolve_unknown_delivery(workspace: Workspace, delivery_id: uuid.UUID, *, sent: bool) -> Delivery:
    """A person says what happened to an `unknown` delivery: it was sent (the enrollment moves
    on), or it was not (it is sent again)."""
    delivery = db.session.scalar(
        sa.select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.workspace_id == workspace.id)
        .with_for_update(of=Delivery)
    )
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found.")
    if delivery.status != DeliveryStatus.UNKNOWN:
        raise Conflict(f"Delivery is {delivery.status}; only unknown deliveries can be resolved.")
    now = utcnow()
    enrollment = db.session.get(CampaignEnrollment, delivery.enrollment_id)
    step = db.session.get(SequenceStep, delivery.step_id)
    if sent:
        delivery.status, delivery.sent_at = DeliveryStatus.SENT, delivery.sent_at or now
        if enrollment.status == EnrollmentStatus.ACTIVE:
            advance_enrollment(enrollment, step, now)
    else:
        delivery.status, delivery.retry_at = DeliveryStatus.RETRY, now
        if enrollment.status == EnrollmentStatus.ACTIVE:
            enrollment.next_action_at = now
    delivery.error = f"resolved by a person as {'sent' if sent else 'not sent'}"
    delivery.updated_at = now
    db.session.commit()
    return delivery


def skip_overdue_tasks(now: datetime) -> int:
    """Auto-skip open tasks older than their campaign's `task_auto_skip_hours` setting."""
    rows = db.session.execute(
        sa.select(Task, CampaignInstance, CampaignTemplate)
        .join(CampaignEnrollment, CampaignEnrollment.id == Task.enrollment_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
        .where(Task.status == TaskStatus.OPEN, Task.due_at < now)
    ).all()
    skipped = 0
    for task, instance, template in rows:
        hours = effective_settings(template, instance).get("task_auto_skip_hours")
        if hours and task.due_at + timedelta(hours=hours) <= now:
            workspace = db.session.get(Workspace, task.workspace_id)
            finish_task(workspace, task.id, done=False, reason="auto-skipped: overdue", now=now)
            skipped += 1
    db.session.rollback()
    return skipped

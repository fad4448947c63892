"""The send dispatcher: claim, then send, then record. Never lock, send, commit.

1. `reap_expired_claims`: a claim whose lease ran out without a result becomes `unknown`
   (the message may or may not have left); it waits for a person, never a blind resend.
2. `claim_due_work`: one short transaction picks due enrollments (`FOR UPDATE SKIP LOCKED`
   on PostgreSQL, so any number of workers can share the table), re-checks the campaign,
   the enrollment and the contact's suppression, applies the send window and the daily
   cap, and writes a `deliveries` row with a lease for each email step (LinkedIn steps get
   a task instead). The unique (enrollment, step) ledger makes a step go out at most once.
   New claims are one multi-row INSERT and one UPDATE for the whole batch, and the claim
   hands what it read (a `Draft` per delivery) to `prepare_deliveries`.
3. `send_delivery` (the worker: `prepare_deliveries`, `send_prepared`, `record_outcomes`):
   renders and sends claimed messages outside any transaction, then records the outcomes in
   another: sent (with its Message-ID, a `sent` event, the enrollment advanced: one UPDATE
   per table for the whole group on PostgreSQL), a retry with backoff (SMTP 4xx, connection
   errors), a failure (SMTP 5xx: the enrollment fails; a bad mailbox also suppresses the
   contact) or unknown.
"""

import functools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

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
from webapp.services.bulk import dialect_name, one_of
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
    # What composing each new claim needs, read by the claim itself (see `prepare_deliveries`).
    drafts: dict[uuid.UUID, "Draft"] = field(default_factory=dict, repr=False)


SENDER_DEFAULT_KEYS = ("send_window", "timezone", "daily_cap", "from_name", "from_email")


def effective_settings(
    template: CampaignTemplate, instance: CampaignInstance, workspace_settings: dict | None = None
) -> dict:
    """The workspace's sender defaults, overridden by the template's settings, overridden by
    the instance's."""
    return _merged_settings(workspace_settings, template.settings, instance.settings)


def _merged_settings(workspace_settings: dict | None, template_settings: dict | None, instance_settings: dict | None):
    defaults = {k: v for k, v in (workspace_settings or {}).items() if k in SENDER_DEFAULT_KEYS and v is not None}
    return {**defaults, **(template_settings or {}), **(instance_settings or {})}


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


class _CampaignSettings:
    """Effective settings by instance, loaded once per batch (one query per instance)."""

    def __init__(self):
        self._workspaces = _WorkspaceSettings()
        self._cache: dict[uuid.UUID, dict] = {}

    def __call__(self, instance_id: uuid.UUID, workspace_id: uuid.UUID) -> dict:
        if instance_id not in self._cache:
            template_settings, instance_settings = db.session.execute(
                sa.select(CampaignTemplate.settings, CampaignInstance.settings)
                .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
                .where(CampaignInstance.id == instance_id)
            ).one()
            self._cache[instance_id] = _merged_settings(
                self._workspaces(workspace_id), template_settings, instance_settings
            )
        return self._cache[instance_id]


def sender_of(settings: dict) -> tuple[str, str]:
    """(display name, address) of the mailbox a campaign sends from."""
    name, address = _mail_from(current_app.config["MAIL_FROM"])
    return settings.get("from_name") or name or "", (settings.get("from_email") or address).lower()


@functools.lru_cache(maxsize=8)
def _mail_from(value: str) -> tuple[str, str]:
    return parseaddr(value)


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


# What the claim reads of each due enrollment: plain columns (no ORM objects to build), with the
# contact's fields for composing its message; the few enrollments that are not simply claimed are
# loaded as objects afterwards (`_apply_claims`).
_CONTACT_COLUMNS = (
    Contact.email,
    Contact.first_name,
    Contact.last_name,
    Contact.company,
    Contact.title,
    Contact.linkedin_url,
    Contact.timezone,
    Contact.custom_fields,
)
_DUE_COLUMNS = (
    CampaignEnrollment.id,
    CampaignEnrollment.workspace_id,
    CampaignEnrollment.instance_id,
    CampaignEnrollment.contact_id,
    CampaignEnrollment.current_step,
    CampaignEnrollment.next_action_at,
    CampaignInstance.template_id,
    *_CONTACT_COLUMNS,
)


def _due_query(now: datetime, limit: int, *, follow_ups: bool):
    return (
        sa.select(*_DUE_COLUMNS)
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


@dataclass
class _Decision:
    """What the claim does with one due enrollment (`row`): claim a send of `step` from `sender`
    (under `settings`), create its task, complete it, or defer it to `until`."""

    row: sa.Row
    action: str  # claim | task | complete | defer
    step: SequenceStep | None = None
    sender: str = ""
    until: datetime | None = None
    settings: dict | None = None


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
    settings_of = _CampaignSettings()
    decisions = []
    for row in rows:
        settings = settings_of(row.instance_id, row.workspace_id)
        step = steps.after(row.template_id, row.current_step)
        if step is None:
            decisions.append(_Decision(row, "complete"))
            report.completed += 1
            continue
        zone = contact_zone(row, settings)
        window = settings.get("send_window")
        if step.channel == Channel.LINKEDIN:
            decisions.append(_Decision(row, "task", step))
            report.tasks += 1
            continue
        send_at = scheduler.next_send_time(now, window=window, tz=zone, holidays_country=settings.get("skip_holidays"))
        if send_at > now:
            decisions.append(_Decision(row, "defer", until=send_at))
            report.deferred += 1
            continue
        _, sender = sender_of(settings)
        gap = settings.get("min_gap_seconds")
        if gap:
            last_sends.setdefault(sender, _last_send(sender))
            earliest = last_sends[sender] + timedelta(seconds=gap) if last_sends[sender] else now
            if earliest > now:
                until = earliest + timedelta(seconds=rng.uniform(0, gap / 2))
                decisions.append(_Decision(row, "defer", until=until))
                report.deferred += 1
                continue
            last_sends[sender] = now
        cap = settings.get("daily_cap")
        if cap:
            day_start = scheduler.local_day_start(now, zone)
            used.setdefault(sender, sent_since(sender, day_start))
            if used[sender] >= cap:
                until = scheduler.next_send_time(
                    scheduler.local_day_start(now + timedelta(days=1), zone),
                    window=window,
                    tz=zone,
                    holidays_country=settings.get("skip_holidays"),
                )
                decisions.append(_Decision(row, "defer", until=until))
                report.deferred += 1
                continue
            used[sender] += 1
        decisions.append(_Decision(row, "claim", step, sender, settings=settings))
    report.deliveries = _apply_claims(decisions, now=now, lease=lease, drafts=report.drafts)
    db.session.commit()
    return report


def _apply_claims(
    decisions: list[_Decision], *, now: datetime, lease: timedelta, drafts: dict[uuid.UUID, "Draft"]
) -> list[uuid.UUID]:
    """Write the decisions; returns the claimed delivery ids, in the order of the rows, and adds
    a `Draft` of each new claim's message to `drafts`.

    A first attempt at a step, by far the usual case, is one row in a multi-row INSERT of
    deliveries plus one UPDATE of all those enrollments. Everything else (a retry, a step
    already on record, tasks, completions, deferrals) goes through the enrollment's object.
    """
    on_record = _deliveries_on_record([(d.row.id, d.step.id) for d in decisions if d.action == "claim"])
    objects = {d.row.id for d in decisions if d.action != "claim" or (d.row.id, d.step.id) in on_record}
    enrollments = _enrollments_by_id(objects)
    claimed: list[uuid.UUID] = []
    new_deliveries: list[tuple] = []
    for decision in decisions:
        row, step = decision.row, decision.step
        if decision.action == "claim" and (row.id, step.id) not in on_record:
            delivery_id = uuid.uuid4()
            new_deliveries.append((delivery_id, row.workspace_id, row.id, step.id, decision.sender))
            claimed.append(delivery_id)
            drafts[delivery_id] = Draft(
                id=delivery_id,
                workspace_id=row.workspace_id,
                enrollment_id=row.id,
                step_id=step.id,
                instance_id=row.instance_id,
                template_id=row.template_id,
                step_position=step.position,
                subject=step.subject,
                body=step.body,
                contact_id=row.contact_id,
                email=row.email,
                first_name=row.first_name,
                last_name=row.last_name,
                company=row.company,
                title=row.title,
                linkedin_url=row.linkedin_url,
                timezone=row.timezone,
                custom_fields=row.custom_fields,
                settings=decision.settings,
            )
            continue
        enrollment = enrollments[row.id]
        if decision.action == "complete":
            complete_enrollment(enrollment, now)
        elif decision.action == "task":
            _create_task(enrollment, step, due_at=row.next_action_at, now=now)
        elif decision.action == "defer":
            enrollment.next_action_at = decision.until
        else:
            delivery = _claim_delivery(enrollment, step, on_record[(row.id, step.id)], now=now, lease=lease)
            if delivery is not None:
                claimed.append(delivery.id)
    if new_deliveries:
        _insert_each(
            Delivery.__table__,
            ["id", "workspace_id", "enrollment_id", "step_id", "sender"],
            new_deliveries,
            {
                "status": DeliveryStatus.CLAIMED,
                "claimed_until": now + lease,
                "attempts": 1,
                "created_at": now,
                "updated_at": now,
            },
        )
        enrollments_table = CampaignEnrollment.__table__
        db.session.execute(
            sa.update(enrollments_table)
            .where(one_of(enrollments_table.c.id, [delivery[2] for delivery in new_deliveries]))
            # Not picked again while claimed.
            .values(next_action_at=None, updated_at=now)
        )
    return claimed


def _deliveries_on_record(keys: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[tuple, Delivery]:
    """The deliveries already written for these (enrollment, step) pairs, as objects."""
    if not keys:
        return {}
    wanted = set(keys)
    query = sa.select(Delivery.id, Delivery.enrollment_id, Delivery.step_id).where(
        one_of(Delivery.enrollment_id, list({enrollment_id for enrollment_id, _ in keys}))
    )
    ids = [row.id for row in db.session.execute(query) if (row.enrollment_id, row.step_id) in wanted]
    if not ids:
        return {}
    deliveries = db.session.scalars(sa.select(Delivery).where(Delivery.id.in_(ids)))
    return {(d.enrollment_id, d.step_id): d for d in deliveries}


def _enrollments_by_id(ids: set[uuid.UUID]) -> dict[uuid.UUID, CampaignEnrollment]:
    # The claim query holds these rows locked already.
    if not ids:
        return {}
    query = sa.select(CampaignEnrollment).where(CampaignEnrollment.id.in_(ids))
    return {enrollment.id: enrollment for enrollment in db.session.scalars(query)}


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


def _claim_delivery(
    enrollment: CampaignEnrollment, step: SequenceStep, delivery: Delivery, *, now: datetime, lease: timedelta
) -> Delivery | None:
    """Claim a step whose delivery is on record: again when it waits for a retry. None when the
    step already has a send on record (it then never goes out a second time) or a claim or an
    unresolved outcome."""
    enrollment.next_action_at = None  # not picked again while claimed
    enrollment.updated_at = now
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


@dataclass(slots=True)
class Draft:
    """What composing a claimed delivery's message needs: the delivery's ids, the step's
    subject and body, the contact's fields and the campaign's effective settings."""

    id: uuid.UUID  # the delivery's
    workspace_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: uuid.UUID
    instance_id: uuid.UUID
    template_id: uuid.UUID
    step_position: int
    subject: str | None
    body: str | None
    contact_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    linkedin_url: str | None
    timezone: str | None
    custom_fields: dict | None
    settings: dict


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


def render_context(contact, *, sender_name: str, unsubscribe_url: str) -> dict:
    """The variables a template may use: contact fields, `custom` fields and a few extras.
    `contact` is a Contact or a row with the same attributes."""
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
    value = str(delivery_id)
    tag = json.dumps({"drumbeat_delivery_id": value}, separators=(",", ":"))
    return {
        "X-Drumbeat-Delivery-Id": value,
        "X-SMTPAPI": '{"unique_args":' + tag + "}",
        "X-Mailgun-Variables": tag,
        "X-PM-Metadata-drumbeat_delivery_id": value,
    }


def compose(draft: Draft) -> tuple[bytes, str, str, str]:
    """Render and build one message: (bytes, Message-ID, from address, subject).

    Raises render.UnresolvedVariable when a variable has no value and no default.
    """
    settings = draft.settings
    sender_name, sender = sender_of(settings)
    unsubscribe = unsubscribe_url(draft.workspace_id, draft.enrollment_id)
    rendered = render.render_message(
        draft.subject or "",
        draft.body or "",
        render_context(draft, sender_name=sender_name, unsubscribe_url=unsubscribe),
    )
    html = rendered.html
    secret = current_app.config["SECRET_KEY"]
    if settings.get("track_clicks"):
        html = tracking.rewrite_links(
            html,
            lambda url: public_url("/t/c/" + tracking.make_token("click", {"d": str(draft.id), "u": url}, secret)),
            keep={unsubscribe},
        )
    if settings.get("track_opens"):
        html += tracking.pixel_html(public_url("/t/o/" + tracking.make_token("open", {"d": str(draft.id)}, secret)))
    domain = sender.rpartition("@")[2] or "drumbeat.invalid"
    message_id = mailer.make_message_id(draft.id, domain)
    message = mailer.build_message(
        from_addr=(sender_name, sender),
        to_addr=draft.email,
        subject=rendered.subject,
        text=rendered.text,
        html=html,
        message_id=message_id,
        unsubscribe_url=unsubscribe,
        headers=provider_headers(draft.id),
    )
    return message, message_id, sender, rendered.subject


# A claimed delivery's `Draft`, as plain columns (named as its fields).
_DRAFT_COLUMNS = (
    Delivery.id,
    Delivery.workspace_id,
    Delivery.enrollment_id,
    Delivery.step_id,
    CampaignEnrollment.instance_id,
    CampaignInstance.template_id,
    SequenceStep.position.label("step_position"),
    SequenceStep.subject,
    SequenceStep.body,
    CampaignEnrollment.contact_id,
    *_CONTACT_COLUMNS,
)


def _drafts(delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, Draft]:
    """Drafts of the deliveries among `delivery_ids` that are still claimed, in one query."""
    rows = db.session.execute(
        sa.select(*_DRAFT_COLUMNS)
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .where(one_of(Delivery.id, delivery_ids), Delivery.status == DeliveryStatus.CLAIMED)
    ).all()
    settings_of = _CampaignSettings()
    return {row.id: Draft(**row._mapping, settings=settings_of(row.instance_id, row.workspace_id)) for row in rows}


def prepare_deliveries(delivery_ids: list[uuid.UUID], drafts: dict[uuid.UUID, Draft] | None = None) -> list[Prepared]:
    """Build the claimed deliveries, in order. Their drafts come from `drafts` (what the claim
    read: `ClaimReport.drafts`) or from one query, which skips deliveries no longer claimed.
    Ends the read transaction, so no transaction stays open during the SMTP conversation."""
    drafts = drafts or {}
    missing = [delivery_id for delivery_id in delivery_ids if delivery_id not in drafts]
    if missing:
        drafts = {**drafts, **_drafts(missing)}
    prepared = []
    for delivery_id in delivery_ids:
        draft = drafts.get(delivery_id)
        if draft is None:
            continue
        item = Prepared(
            draft.id,
            draft.workspace_id,
            draft.enrollment_id,
            draft.instance_id,
            draft.template_id,
            draft.step_id,
            draft.step_position,
            draft.contact_id,
            draft.email,
        )
        try:
            item.message, item.message_id, item.sender, item.subject = compose(draft)
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
    deliveries = Delivery.__table__
    _update_each(
        sa.update(deliveries)
        .where(deliveries.c.status == DeliveryStatus.CLAIMED)
        .values(status=DeliveryStatus.SENT, sent_at=now, claimed_until=None, error=None, updated_at=now),
        deliveries.c.id,
        {"message_id": deliveries.c.message_id},
        [(p.delivery_id, p.message_id) for p in sent],
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
            (
                p.enrollment_id,
                p.step_position,
                EnrollmentStatus.COMPLETED if done else EnrollmentStatus.ACTIVE,
                "all steps done" if done else None,
                None if done else scheduler.next_due(now, following),
                now if done else None,
            )
        )
    # Only enrollments still active move on: a reply recorded meanwhile keeps its final state.
    _update_each(
        sa.update(enrollments).where(enrollments.c.status == EnrollmentStatus.ACTIVE).values(updated_at=now),
        enrollments.c.id,
        {
            "current_step": enrollments.c.current_step,
            "status": enrollments.c.status,
            "status_reason": enrollments.c.status_reason,
            "next_action_at": enrollments.c.next_action_at,
            "completed_at": enrollments.c.completed_at,
        },
        updates,
    )


def _update_each(statement: sa.Update, key: sa.Column, columns: dict[str, sa.Column], rows: list[tuple]) -> None:
    """Run `statement` once per row, for the row whose `key` is the tuple's first value, setting
    `columns` to the following values. On PostgreSQL it is one statement for all the rows (the
    values as arrays, joined back with unnest); elsewhere one execution per row."""
    names = ["key", *columns]
    if dialect_name() == "postgresql":
        each = _unnest(dict(zip(names, [key.type, *(c.type for c in columns.values())], strict=True)), rows)
        db.session.execute(
            statement.where(key == each.c.key).values({column: each.c[name] for name, column in columns.items()})
        )
        return
    db.session.execute(
        statement.where(key == sa.bindparam("each_key")).values(
            {column: sa.bindparam(f"each_{name}") for name, column in columns.items()}
        ),
        [dict(zip([f"each_{name}" for name in names], row, strict=True)) for row in rows],
    )


def _insert_each(table: sa.Table, columns: list[str], rows: list[tuple], values: dict) -> None:
    """INSERT one row into `table` per tuple of `rows` (values of `columns`), with `values` for
    the other columns. On PostgreSQL it is one statement (the rows as arrays, joined back with
    unnest): no thousand parameters to bind and send; elsewhere an executemany."""
    if dialect_name() == "postgresql":
        each = _unnest({name: table.c[name].type for name in columns}, rows)
        constants = [sa.literal(value, table.c[name].type) for name, value in values.items()]
        select = sa.select(*[each.c[name] for name in columns], *constants)
        db.session.execute(sa.insert(table).from_select([*columns, *values], select))
        return
    db.session.execute(sa.insert(table), [{**values, **dict(zip(columns, row, strict=True))} for row in rows])


def _unnest(types: dict[str, sa.types.TypeEngine], rows: list[tuple]):
    """PostgreSQL: `rows` as a table named `each` with the columns `types`, sent as one array per column."""
    arrays = [
        sa.bindparam(f"each_{name}", [row[i] for row in rows], type_=postgresql.ARRAY(type_))
        for i, (name, type_) in enumerate(types.items())
    ]
    columns = [sa.column(name, type_) for name, type_ in types.items()]
    return sa.func.unnest(*arrays).table_valued(*columns).render_derived(name="each")


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

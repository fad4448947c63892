"""Claiming due work: one short committed transaction picks due enrollments (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so any number of workers share the table), asks the send policy whether
each may go now (`decide`, which the schedule preview calls too), and writes a leased
`deliveries` row for each message that may. The unique (enrollment, step) ledger makes a step go
out at most once. LinkedIn steps become tasks; finished sequences complete; the rest wait for
the time the policy gives."""

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from flask import current_app

from webapp.engine import policy
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    Contact,
    Delivery,
    Mailbox,
    SequenceStep,
    Task,
)
from webapp.models.enums import (
    Channel,
    ContactStatus,
    DeliveryStatus,
    EnrollmentStatus,
    InstanceStatus,
    MailboxState,
    TaskStatus,
)
from webapp.services import lifecycle
from webapp.services.bulk import insert_each, one_of, update_each
from webapp.services.progress import ActiveSteps, advance
from webapp.services.sending.compose import CONTACT_COLUMNS, Draft, previous_emails
from webapp.services.sending.settings import Effective, InvalidSettings, SettingsCache

# What a sender's daily cap counts: messages on their way or gone.
COUNTED = (DeliveryStatus.CLAIMED, DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)


class Action(StrEnum):
    CLAIM = "claim"  # send the step now
    TASK = "task"  # a LinkedIn step: a task for a person
    COMPLETE = "complete"  # no step left
    DEFER = "defer"  # wait until `plan.at`
    PAUSE = "pause"  # cannot be planned: wait for a person


@dataclass
class Decision:
    action: Action
    step: SequenceStep | None = None
    plan: policy.Plan | None = None
    problem: str | None = None
    settings: Effective | None = None  # for a claim: the settings of the sender it goes from


def decide(
    step: SequenceStep | None,
    settings: Effective,
    *,
    due: datetime,
    contact_timezone: str | None,
    mailbox_id: uuid.UUID | None,
    senders: "Senders",
    now: datetime,
) -> Decision:
    """What to do at `now` with an enrollment whose next `step` is due at `due` (its mailbox, if it
    has one, is `mailbox_id`). A send that may go now is counted in its sender's usage. The
    worker's claim and the schedule preview both decide through this, so the preview's times are
    the worker's."""
    if step is None:
        return Decision(Action.COMPLETE)
    if step.channel == Channel.LINKEDIN:
        return Decision(Action.TASK, step)
    chosen = senders.choose(settings, mailbox_id, now)
    if isinstance(chosen, policy.Plan):
        return Decision(Action.DEFER, step, chosen)
    settings, usage = chosen
    try:
        planned = policy.plan(due, now=now, rules=settings.rules, contact_timezone=contact_timezone, usage=usage)
    except policy.NoSendTime as exc:
        return Decision(Action.PAUSE, step, problem=str(exc))
    if planned.at > now:
        return Decision(Action.DEFER, step, planned)
    usage.record(now, settings.rules)
    return Decision(Action.CLAIM, step, planned, settings=settings)


def sent_between(sender: sa.ColumnElement[bool], start: datetime, end: datetime) -> int:
    """Messages of `sender` (a condition on deliveries) claimed, on their way or sent in
    [start, end): what its daily cap counts."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(
            sender,
            Delivery.created_at >= start,
            Delivery.created_at < end,
            Delivery.status.in_(COUNTED),
        )
    )


def _fullness(settings: Effective, usage: policy.SenderUsage, now: datetime) -> tuple:
    """How full a sender is today: full ones last, then by the share of the cap used."""
    day = settings.rules.sender_day(now)
    cap, sent = settings.rules.cap_on(day), usage.sent_on(day)
    return (cap is not None and sent >= cap, sent / cap if cap else sent)


class Senders:
    """Who sends each message, and what that sender has used (`policy.SenderUsage`), read from the
    ledger once a batch and counted on from there (a sender day is counted when the policy first
    asks about it). The sender is the default one (SMTP_* and MAIL_FROM, or the campaign's
    from_email), or one of the campaign's mailboxes: an enrollment keeps the mailbox it got first;
    a new contact gets the active mailbox with the most room today."""

    def __init__(self):
        self._usages: dict[tuple, policy.SenderUsage] = {}
        self._mailboxes: dict[uuid.UUID, Mailbox | None] = {}
        # A campaign's settings as each of its mailboxes: built once a batch, not once a contact.
        self._as_mailbox: dict[tuple[int, uuid.UUID], tuple[Effective, Effective]] = {}

    def choose(
        self, settings: Effective, mailbox_id: uuid.UUID | None, now: datetime
    ) -> tuple[Effective, policy.SenderUsage] | policy.Plan:
        """(settings for the sender, its usage) at `now`, or the plan of a wait when no mailbox can send."""
        mailbox = self._mailbox(mailbox_id) if mailbox_id else None
        if mailbox is not None:
            return self._unavailable(mailbox, now) or self._for(self._from(settings, mailbox))
        if not settings.mailbox_ids:
            return self._for(settings)
        candidates = [m for m in map(self._mailbox, settings.mailbox_ids) if m and not self._unavailable(m, now)]
        if not candidates:
            return policy.sender_unavailable(now, policy.Delay.NO_MAILBOX)
        options = [self._for(self._from(settings, m)) for m in candidates]
        return min(options, key=lambda option: _fullness(*option, now))

    def _from(self, settings: Effective, mailbox: Mailbox) -> Effective:
        key = (id(settings), mailbox.id)
        cached = self._as_mailbox.get(key)
        if cached is None or cached[0] is not settings:  # the id of a settings object gone is reused
            cached = self._as_mailbox[key] = (settings, settings.from_mailbox(mailbox))
        return cached[1]

    def _unavailable(self, mailbox: Mailbox, now: datetime) -> policy.Plan | None:
        if mailbox.state == MailboxState.PAUSED:
            return policy.sender_unavailable(now, policy.Delay.MAILBOX_PAUSED)
        if mailbox.state == MailboxState.FAILING:
            return policy.sender_unavailable(now, policy.Delay.MAILBOX_FAILING)
        if mailbox.send_paused_until is not None and mailbox.send_paused_until > now:
            return policy.sender_unavailable(now, policy.Delay.MAILBOX_RESTING, until=mailbox.send_paused_until)
        return None

    def _mailbox(self, mailbox_id: uuid.UUID) -> Mailbox | None:
        if mailbox_id not in self._mailboxes:
            self._mailboxes[mailbox_id] = db.session.get(Mailbox, mailbox_id)
        return self._mailboxes[mailbox_id]

    def _for(self, settings: Effective) -> tuple[Effective, policy.SenderUsage]:
        rules, sender = settings.rules, settings.sender
        key = (sender.mailbox_id or sender.address, rules.sender_timezone)
        if key not in self._usages:
            mine = Delivery.mailbox_id == sender.mailbox_id if sender.mailbox_id else Delivery.sender == sender.address

            def count(day: date) -> int:
                return sent_between(mine, *rules.sender_day_bounds(day))

            def last() -> datetime | None:
                return db.session.scalar(sa.select(sa.func.max(Delivery.created_at)).where(mine))

            self._usages[key] = policy.SenderUsage(count=count, last=last)
        return settings, self._usages[key]


@dataclass
class ClaimReport:
    deliveries: list[uuid.UUID] = field(default_factory=list)
    tasks: int = 0
    completed: int = 0
    deferred: int = 0
    paused: int = 0
    # What composing each new claim needs, read by the claim itself (see `compose.prepare_deliveries`).
    drafts: dict[uuid.UUID, Draft] = field(default_factory=dict, repr=False)


_DUE_COLUMNS = (
    CampaignEnrollment.id,
    CampaignEnrollment.workspace_id,
    CampaignEnrollment.instance_id,
    CampaignEnrollment.contact_id,
    CampaignEnrollment.current_step,
    CampaignEnrollment.next_action_at,
    CampaignEnrollment.mailbox_id,
    CampaignInstance.template_id,
    *CONTACT_COLUMNS,
)


def _due_query(now: datetime, limit: int, *, follow_ups: bool):
    return (
        sa.select(*_DUE_COLUMNS)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(
            CampaignEnrollment.status == EnrollmentStatus.ACTIVE,
            CampaignEnrollment.next_action_at <= now,
            CampaignInstance.status == InstanceStatus.ACTIVE,
            Contact.status == ContactStatus.SUBSCRIBED,
            (CampaignEnrollment.current_step > 0) if follow_ups else (CampaignEnrollment.current_step == 0),
        )
        .order_by(CampaignEnrollment.next_action_at, CampaignEnrollment.id)
        .limit(limit)
        .with_for_update(of=CampaignEnrollment, skip_locked=True)
    )


def _due_rows(now: datetime, limit: int) -> list:
    """Due enrollments, follow-ups first, each group by due time then id."""
    rows = db.session.execute(_due_query(now, limit, follow_ups=True)).all()
    if len(rows) < limit:
        rows += db.session.execute(_due_query(now, limit - len(rows), follow_ups=False)).all()
    return rows


def claim_due_work(now: datetime, *, limit: int | None = None) -> ClaimReport:
    """Claim the work due at `now` in one committed transaction (see the module docstring)."""
    limit = limit or current_app.config["WORKER_BATCH_SIZE"]
    lease = timedelta(seconds=current_app.config["WORKER_LEASE_SECONDS"])
    report = ClaimReport()
    steps = ActiveSteps()
    settings_of = SettingsCache()
    senders = Senders()
    decisions: list[tuple[sa.Row, Decision]] = []
    for row in _due_rows(now, limit):
        try:
            settings = settings_of(row.instance_id)
        except InvalidSettings as exc:
            decisions.append((row, Decision(Action.PAUSE, problem=f"{lifecycle.Reason.INVALID_SETTINGS}: {exc}")))
            continue
        decision = decide(
            steps.after(row.template_id, row.current_step),
            settings,
            due=row.next_action_at,
            contact_timezone=row.timezone,
            mailbox_id=row.mailbox_id,
            senders=senders,
            now=now,
        )
        decisions.append((row, decision))
    report.deliveries = _apply(decisions, report, now=now, lease=lease)
    db.session.commit()
    return report


def _apply(decisions: list[tuple], report: ClaimReport, *, now: datetime, lease: timedelta) -> list[uuid.UUID]:
    """Write the decisions; returns the claimed delivery ids, in the order of the rows, and adds
    a `Draft` of each new claim's message to `report.drafts`.

    A first attempt at a step, by far the usual case, is one row in a multi-row INSERT of
    deliveries plus one UPDATE of all those enrollments; deferrals are one UPDATE. A retry, a
    step already on record and tasks go through the enrollment's object; completions and pauses
    through the lifecycle.
    """
    on_record = _deliveries_on_record([(r.id, d.step.id) for r, d in decisions if d.action == Action.CLAIM])
    claimed: list[uuid.UUID] = []
    new_deliveries: list[tuple] = []
    deferred: list[tuple] = []
    completed: list[uuid.UUID] = []
    paused: dict[str, list[uuid.UUID]] = {}
    objects: list[tuple[sa.Row, Decision]] = []
    until = now + lease
    threaded = {r.id for r, d in decisions if d.action == Action.CLAIM and d.step.in_thread}
    previous = previous_emails(threaded)
    for row, decision in decisions:
        if decision.action == Action.CLAIM and (row.id, decision.step.id) not in on_record:
            delivery_id, sender = uuid.uuid4(), decision.settings.sender
            new_deliveries.append(
                (delivery_id, row.workspace_id, row.id, decision.step.id, sender.address, sender.mailbox_id)
            )
            claimed.append(delivery_id)
            report.drafts[delivery_id] = _draft(delivery_id, row, decision.step, decision.settings, until)
            report.drafts[delivery_id].threaded = row.id in threaded
            report.drafts[delivery_id].previous = previous.get(row.id)
        elif decision.action == Action.DEFER:
            deferred.append((row.id, decision.plan.at, (decision.plan.reason or "")[:255] or None))
        elif decision.action == Action.COMPLETE:
            completed.append(row.id)
        elif decision.action == Action.PAUSE:
            paused.setdefault(decision.problem, []).append(row.id)
        else:
            objects.append((row, decision))
    report.deferred, report.completed = len(deferred), len(completed)
    report.paused = sum(len(ids) for ids in paused.values())
    enrollments = CampaignEnrollment.__table__
    update_each(
        sa.update(enrollments).values(updated_at=now),
        enrollments.c.id,
        {"next_action_at": enrollments.c.next_action_at, "wait_reason": enrollments.c.wait_reason},
        deferred,
    )
    lifecycle.change(
        "complete", actor=lifecycle.Actor.WORKER, ids=completed, reason=lifecycle.Reason.ALL_STEPS_DONE, now=now
    )
    for problem, ids in paused.items():
        lifecycle.change("pause", actor=lifecycle.Actor.WORKER, ids=ids, reason=problem, now=now, next_action_at=None)
    by_id = _enrollments_by_id({row.id for row, _ in objects})
    for row, decision in objects:
        enrollment = by_id[row.id]
        if decision.action == Action.TASK:
            report.tasks += _create_task(enrollment, decision.step, due_at=row.next_action_at, now=now)
        else:
            delivery = _claim_delivery(
                enrollment, decision.step, on_record[(row.id, decision.step.id)], now=now, lease=lease
            )
            if delivery is not None:
                claimed.append(delivery.id)
    if new_deliveries:
        insert_each(
            Delivery.__table__,
            ["id", "workspace_id", "enrollment_id", "step_id", "sender", "mailbox_id"],
            new_deliveries,
            {
                "status": DeliveryStatus.CLAIMED,
                "claimed_until": until,
                "attempts": 1,
                "created_at": now,
                "updated_at": now,
            },
        )
        # Not picked again while claimed; a first send from a mailbox gives the enrollment its mailbox.
        update_each(
            sa.update(enrollments).values(next_action_at=None, wait_reason=None, updated_at=now),
            enrollments.c.id,
            {"mailbox_id": enrollments.c.mailbox_id},
            [(delivery[2], delivery[5]) for delivery in new_deliveries],
        )
    return claimed


def _draft(delivery_id: uuid.UUID, row: sa.Row, step: SequenceStep, settings: Effective, until: datetime) -> Draft:
    return Draft(
        id=delivery_id,
        workspace_id=row.workspace_id,
        enrollment_id=row.id,
        step_id=step.id,
        instance_id=row.instance_id,
        template_id=row.template_id,
        step_position=step.position,
        claimed_until=until,
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
        settings=settings,
    )


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


def _create_task(enrollment: CampaignEnrollment, step: SequenceStep, *, due_at: datetime, now: datetime) -> bool:
    """The step's task for a person, and the enrollment waits for it. False when the task
    exists and is finished already: the enrollment then simply moves on."""
    status = db.session.scalar(
        sa.select(Task.status).where(Task.enrollment_id == enrollment.id, Task.step_id == step.id)
    )
    if status is not None and status != TaskStatus.OPEN:
        advance([(enrollment.id, enrollment.instance_id, step.position)], now=now, actor=lifecycle.Actor.WORKER)
        return False
    if status is None:
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
    return True


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
        advance([(enrollment.id, enrollment.instance_id, step.position)], now=now, actor=lifecycle.Actor.WORKER)
    else:
        enrollment.status_reason = f"step {step.position} delivery is {delivery.status}; resolve it to continue"
    return None

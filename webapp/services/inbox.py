"""Reading the mailboxes: what arrives in them is classified, matched to what we sent, applied
(a reply stops the contact, an out-of-office answer delays the next step, a bounce suppresses the
address) and kept for the Inbox page, matched or not.

Exactly once, whatever the number of workers:
- a worker leases a mailbox (`inbox_claimed_until`) with a guarded UPDATE before reading it, and
  keeps the lease only while it reads;
- each message is stored once per (mailbox, UIDVALIDITY, UID) and once per Message-ID in the
  workspace; only a message that was new is applied, and its events are keyed by its row's id;
- the cursor (UIDVALIDITY, last UID) is saved with each batch, in the same transaction.

Bodies are fetched only for messages that match one of our sends (to get the snippet and the
return date of an out-of-office answer) and for those that look like bounces (the returned
message is in the body); never above `MAX_BODY_BYTES`, whose headers are kept. Of the answers
kept unmatched (a reply from an address we never wrote to), only the first `PREVIEW_BYTES` are
read, for a snippet, in one round trip a batch; other mail (newsletters...) keeps its headers only.

When a folder is read for the first time, or its UIDVALIDITY changed, only messages dated from a
day before the mailbox was added are kept: an inbox's years of history are not Drumbeat's to file.

A contact's first reply is their `replied` event (the numbers count contacts who replied); later
messages in the conversation are kept for the Inbox without another event.
"""

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from webapp.crypto import SecretUnreadable
from webapp.engine import imap, inbound, policy
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignEvent,
    Contact,
    Delivery,
    InboundMessage,
    Mailbox,
    Workspace,
    utcnow,
)
from webapp.models.enums import DeliveryStatus, EventType, InboundKind
from webapp.services import events, lifecycle, mailboxes, replies
from webapp.services.bulk import bulk_insert, one_of

log = logging.getLogger("drumbeat.inbox")

BATCH = 200
LEASE = timedelta(minutes=10)
MAX_BODY_BYTES = 5 * 1024 * 1024
PREVIEW_BYTES = 8 * 1024  # of a message kept unmatched: enough for its snippet
HISTORY = timedelta(days=1)
PROVIDER = "inbox"
_CLOCK_SKEW = timedelta(days=2)


@dataclass
class ReadReport:
    mailboxes: int = 0
    messages: int = 0  # new messages kept
    replies: int = 0
    auto_replies: int = 0
    bounces: int = 0
    unmatched: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "ReadReport") -> None:
        for name in ("mailboxes", "messages", "replies", "auto_replies", "bounces", "unmatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors


def read_due_mailboxes(now: datetime | None = None, *, every: timedelta | None = None, ssl_context=None) -> ReadReport:
    """Read every mailbox whose last read is older than `every` (INBOX_POLL_SECONDS; zero: all of
    them) and that no other worker is reading. Commits."""
    now = now or utcnow()
    if every is None:
        every = timedelta(seconds=current_app.config["INBOX_POLL_SECONDS"])
    due = db.session.scalars(
        sa.select(Mailbox.id)
        .where(
            Mailbox.imap_host.is_not(None),
            sa.or_(Mailbox.inbox_read_at.is_(None), Mailbox.inbox_read_at <= now - every),
            sa.or_(Mailbox.inbox_claimed_until.is_(None), Mailbox.inbox_claimed_until < now),
        )
        .order_by(Mailbox.inbox_read_at.asc().nulls_first(), Mailbox.id)
    ).all()
    report = ReadReport()
    for mailbox_id in due:
        if claim_mailbox(mailbox_id, now):
            report.add(read_mailbox(mailbox_id, now, ssl_context=ssl_context))
    return report


def claim_mailbox(mailbox_id: uuid.UUID, now: datetime) -> bool:
    """Lease the mailbox for reading; False when another worker holds it. Commits."""
    claimed = db.session.execute(
        sa.update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            sa.or_(Mailbox.inbox_claimed_until.is_(None), Mailbox.inbox_claimed_until < now),
        )
        .values(inbox_claimed_until=now + LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def read_mailbox(mailbox_id: uuid.UUID, now: datetime, *, ssl_context=None) -> ReadReport:
    """Read a leased mailbox's new messages, batch by batch, each batch committed with the cursor.
    A failure (login, TLS, timeout, a server gone) is stored on the mailbox as `inbox_error`,
    and what was read before it stays read. Commits; releases the lease."""
    report = ReadReport(mailboxes=1)
    mailbox = db.session.get(Mailbox, mailbox_id)
    error = None
    try:
        reader = imap.ImapReader(mailboxes.imap_settings_for(mailbox), ssl_context=ssl_context)
        with reader:
            _read(mailbox, reader, now, report)
    except imap.ImapError as exc:
        error = f"{exc.reason}: {exc}"
    except (SecretUnreadable, ValueError) as exc:  # a key dropped too early; settings it cannot use
        error = str(exc)
    except Exception:
        db.session.rollback()
        log.exception("reading a mailbox failed", extra={"mailbox_id": str(mailbox_id)})
        error = "reading this mailbox failed unexpectedly; see the worker's log"
    db.session.rollback()  # nothing half-done of a batch that failed
    values = {"inbox_claimed_until": None, "inbox_read_at": now, "inbox_error": error}
    if error:
        values["inbox_error_at"] = now
        report.errors.append(error)
        log.warning("mailbox not read", extra={"mailbox_id": str(mailbox_id), "error": error})
    db.session.execute(sa.update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))
    db.session.commit()
    return report


def _read(mailbox: Mailbox, reader: imap.ImapReader, now: datetime, report: ReadReport) -> None:
    workspace = db.session.get(Workspace, mailbox.workspace_id)
    validity = reader.uidvalidity()
    last_uid, since = mailbox.imap_last_uid or 0, None
    if mailbox.imap_uidvalidity != validity:
        if mailbox.imap_uidvalidity is not None:
            log.info(
                "mailbox folder renumbered (UIDVALIDITY changed): reading it again",
                extra={"mailbox_id": str(mailbox.id)},
            )
        # Everything since the mailbox was added (a day's margin): older mail is not ours to file,
        # and what a renumbered folder shows again is stored already (by Message-ID).
        last_uid, since = 0, mailbox.created_at - HISTORY
    uids = reader.uids_since(last_uid)  # listed once: a backlog is then fetched chunk by chunk
    for start in range(0, len(uids), BATCH):
        fetched = reader.headers(uids[start : start + BATCH], fields=inbound.HEADER_FIELDS)
        if fetched:
            _Batch(workspace, mailbox, reader, now, since).run(fetched, report)
        last_uid = uids[min(start + BATCH, len(uids)) - 1]
        db.session.execute(
            sa.update(Mailbox)
            .where(Mailbox.id == mailbox.id)
            .values(imap_uidvalidity=validity, imap_last_uid=last_uid, inbox_claimed_until=utcnow() + LEASE)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    if mailbox.imap_uidvalidity != validity:  # a folder still empty: remember its numbering
        db.session.execute(sa.update(Mailbox).where(Mailbox.id == mailbox.id).values(imap_uidvalidity=validity))
        db.session.commit()


@dataclass
class _Message:
    uid: int
    info: inbound.Inbound
    size: int
    delivery: sa.Row | None = None  # the send of ours it answers or returns
    enrollment_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    step_id: uuid.UUID | None = None
    body_skipped: bool = False

    @property
    def matched(self) -> bool:
        return self.enrollment_id is not None

    @property
    def kind(self) -> inbound.Kind:
        """What the message is to us: one that a contact we wrote to sent without thread headers
        (a new message rather than a reply) is their answer all the same."""
        if self.info.kind == inbound.Kind.OTHER and self.matched:
            return inbound.Kind.REPLY
        return self.info.kind


class _Batch:
    """One batch of a mailbox's new messages: classified, matched, stored, applied."""

    def __init__(self, workspace: Workspace, mailbox: Mailbox, reader: imap.ImapReader, now: datetime, since):
        self.workspace, self.mailbox, self.reader, self.now, self.since = workspace, mailbox, reader, now, since

    def run(self, fetched: list[imap.Fetched], report: ReadReport) -> None:
        messages = [_Message(f.uid, inbound.classify(f.headers, headers_only=True), f.size) for f in fetched]
        if self.since is not None:
            messages = [m for m in messages if m.info.date is None or _aware(m.info.date) >= self.since]
        self._match(messages, by_address=True)
        self._read_bodies([m for m in messages if m.matched or m.info.bounce_hint])
        self._match([m for m in messages if not m.matched and m.info.kind == inbound.Kind.BOUNCE], by_address=False)
        # An answer from someone we never wrote to gets its snippet; newsletters and the like do not.
        answers = (inbound.Kind.REPLY, inbound.Kind.AUTO_REPLY)
        self._preview([m for m in messages if not m.matched and m.info.kind in answers])
        stored = self._store(messages)
        self._apply(stored, report)

    # -- matching ----------------------------------------------------------------------------------

    def _match(self, messages: list[_Message], *, by_address: bool) -> None:
        """Find the send each message answers (or returns): by the Message-IDs it names, which carry
        our delivery ids; else, for an answer, a live enrollment of this mailbox by the sender's
        address; for a bounce, the latest send from this mailbox to its Final-Recipient."""
        wanted = {m.uid: _delivery_ids(m.info) for m in messages}
        deliveries = _deliveries(self.workspace.id, {d for ids in wanted.values() for d in ids})
        for message in messages:
            found = [deliveries[d] for d in wanted[message.uid] if d in deliveries]
            if found:
                self._matched(message, max(found, key=lambda d: d.created_at))
        unmatched = [m for m in messages if not m.matched]
        if by_address:
            answers = [m for m in unmatched if m.info.kind != inbound.Kind.BOUNCE and m.info.from_address]
            live = self._live_by_address({m.info.from_address for m in answers})
            for message in answers:
                if (row := live.get(message.info.from_address)) is not None:
                    message.enrollment_id, message.contact_id = row.id, row.contact_id
                    message.step_id = row.step_id
        else:
            for message in unmatched:
                if message.info.final_recipient and (row := self._last_send_to(message.info.final_recipient)):
                    self._matched(message, row)

    def _matched(self, message: _Message, delivery: sa.Row) -> None:
        message.delivery = delivery
        message.enrollment_id, message.contact_id, message.step_id = (
            delivery.enrollment_id,
            delivery.contact_id,
            delivery.step_id,
        )

    def _live_by_address(self, addresses: set[str]) -> dict[str, sa.Row]:
        """Live enrollments of this mailbox whose contact has one of `addresses`, with the step of
        their latest send from it: the newest enrollment per address."""
        if not addresses:
            return {}
        latest_step = (
            sa.select(Delivery.step_id)
            .where(Delivery.enrollment_id == CampaignEnrollment.id, Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = db.session.execute(
            sa.select(CampaignEnrollment.id, CampaignEnrollment.contact_id, Contact.email, latest_step.label("step_id"))
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .where(
                Contact.workspace_id == self.workspace.id,
                one_of(Contact.email, addresses),
                CampaignEnrollment.mailbox_id == self.mailbox.id,
                CampaignEnrollment.status.in_(lifecycle.LIVE),
            )
            .order_by(CampaignEnrollment.enrolled_at)
        ).all()
        return {row.email: row for row in rows}  # the newest wins

    def _last_send_to(self, address: str) -> sa.Row | None:
        return db.session.execute(
            _delivery_query(self.workspace.id)
            .where(Contact.email == address.lower(), Delivery.mailbox_id == self.mailbox.id)
            .order_by(Delivery.created_at.desc())
            .limit(1)
        ).first()

    def _preview(self, messages: list[_Message]) -> None:
        """A snippet for the messages kept unmatched, from their first bytes (one round trip)."""
        beginnings = self.reader.beginnings([m.uid for m in messages], max_bytes=PREVIEW_BYTES)
        for message in messages:
            if message.uid in beginnings:
                snippet = inbound.classify(beginnings[message.uid]).snippet
                message.info = dataclasses.replace(message.info, snippet=snippet)

    def _read_bodies(self, messages: list[_Message]) -> None:
        bodies = self.reader.bodies({m.uid: m.size for m in messages}, max_bytes=MAX_BODY_BYTES)
        for message in messages:
            raw = bodies.get(message.uid)
            if raw is None:  # too large, or expunged meanwhile: the headers stay what we know
                message.body_skipped = True
            else:
                message.info = inbound.classify(raw)

    # -- storing and applying ----------------------------------------------------------------------

    def _store(self, messages: list[_Message]) -> list[tuple[uuid.UUID, _Message]]:
        """Insert the messages; the ones another worker (or another mailbox, by Message-ID) stored
        first are left out. Returns the new rows' ids with their messages."""
        if not messages:
            return []
        table = InboundMessage.__table__
        rows = [self._row(m) for m in messages]
        new = {row.uid: row.id for row in bulk_insert(table, rows, conflict=(), returning=(table.c.id, table.c.uid))}
        return [(new[m.uid], m) for m in messages if m.uid in new]

    def _row(self, message: _Message) -> dict:
        info = message.info
        kind = {
            inbound.Kind.REPLY: InboundKind.REPLY,
            inbound.Kind.AUTO_REPLY: InboundKind.AUTO_REPLY,
            inbound.Kind.BOUNCE: InboundKind.BOUNCE,
        }.get(message.kind, InboundKind.OTHER)
        snippet = info.snippet
        if info.kind == inbound.Kind.BOUNCE and not snippet:
            snippet = info.diagnostic or ""
        if message.body_skipped and not snippet:
            snippet = f"(message over {MAX_BODY_BYTES // (1024 * 1024)} MB: body not read)"
        return {
            "id": uuid.uuid4(),
            "workspace_id": self.workspace.id,
            "mailbox_id": self.mailbox.id,
            "uidvalidity": self.reader.uidvalidity(),
            "uid": message.uid,
            "message_id": (info.message_id or None) and info.message_id[:255],
            "kind": kind,
            "from_email": (info.from_address or None) and info.from_address[:320],
            "from_name": (info.from_name or None) and info.from_name[:255],
            "subject": info.subject,
            "received_at": self._received_at(info),
            "snippet": snippet,
            "bounce_type": info.bounce_type,
            "status_code": (info.status or None) and info.status[:20],
            "return_date": info.return_date,
            "delivery_id": message.delivery.id if message.delivery is not None else None,
            "enrollment_id": message.enrollment_id,
            "contact_id": message.contact_id,
            "lead_status": None,
            "created_at": self.now,
            "updated_at": self.now,
        }

    def _received_at(self, info: inbound.Inbound) -> datetime:
        """The message's Date, unless it is missing or implausible (then when we read it)."""
        if info.date is None:
            return self.now
        date = _aware(info.date)
        return date if self.now - timedelta(days=365) <= date <= self.now + _CLOCK_SKEW else self.now

    def _apply(self, stored: list[tuple[uuid.UUID, _Message]], report: ReadReport) -> None:
        event_rows, replied, away = [], [], []
        for row_id, message in stored:
            report.messages += 1
            kind = message.kind
            if not message.matched or kind == inbound.Kind.OTHER:
                report.unmatched += 1
                continue
            metadata = {"inbound_message_id": str(row_id), "snippet": message.info.snippet}
            if kind == inbound.Kind.REPLY:
                report.replies += 1
                type_ = EventType.REPLIED
                replied.append(message)
            elif kind == inbound.Kind.AUTO_REPLY:
                report.auto_replies += 1
                type_ = EventType.AUTO_REPLIED
                if message.info.return_date:
                    metadata["return_date"] = message.info.return_date.isoformat()
                    away.append(message)
            else:
                report.bounces += 1
                type_ = EventType.BOUNCED
                metadata |= {
                    "bounce_type": message.info.bounce_type or "hard",
                    "status": message.info.status,
                    "diagnostic": message.info.diagnostic,
                }
            event_rows.append(
                {
                    "workspace_id": self.workspace.id,
                    "enrollment_id": message.enrollment_id,
                    "step_id": message.step_id,
                    "channel": "email",
                    "type": type_,
                    "provider": PROVIDER,
                    "provider_event_id": str(row_id),
                    "occurred_at": self._received_at(message.info),
                    "metadata": metadata,
                }
            )
        events.record_events(self.workspace, _first_replies(event_rows))
        replies.stop_elsewhere(
            self.workspace,
            {m.contact_id for m in replied},
            answered={m.enrollment_id for m in replied},
            now=self.now,
        )
        _wait_until_back(self.workspace, [(m.enrollment_id, m.info.return_date) for m in away], self.now)


def _first_replies(rows: list[dict]) -> list[dict]:
    """`rows` without the `replied` events of enrollments that have one already (stored, or
    earlier in `rows`)."""
    replying = {row["enrollment_id"] for row in rows if row["type"] == EventType.REPLIED}
    if not replying:
        return rows
    seen = set(
        db.session.scalars(
            sa.select(CampaignEvent.enrollment_id).where(
                one_of(CampaignEvent.enrollment_id, replying), CampaignEvent.type == EventType.REPLIED
            )
        )
    )
    kept = []
    for row in rows:
        if row["type"] == EventType.REPLIED:
            if row["enrollment_id"] in seen:
                continue
            seen.add(row["enrollment_id"])
        kept.append(row)
    return kept


def _aware(moment: datetime) -> datetime:
    """A message's Date in UTC; one without a zone ("-0000") is taken as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _delivery_ids(info: inbound.Inbound) -> list[uuid.UUID]:
    """The delivery ids the Message-IDs named by `info` carry (ours are ``<delivery-id@domain>``)."""
    ids = []
    names = (*info.in_reply_to, *info.returned_message_ids)
    for name in names:
        try:
            ids.append(uuid.UUID(name.split("@", 1)[0]))
        except ValueError:
            continue
    if info.returned_delivery_id:
        ids.append(uuid.UUID(info.returned_delivery_id))
    return ids


def _delivery_query(workspace_id: uuid.UUID) -> sa.Select:
    return (
        sa.select(
            Delivery.id,
            Delivery.enrollment_id,
            Delivery.step_id,
            Delivery.created_at,
            CampaignEnrollment.contact_id,
        )
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(Delivery.workspace_id == workspace_id, Delivery.message_id.is_not(None))
    )


def _deliveries(workspace_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, sa.Row]:
    """Our sends with these ids, in this workspace only: a Message-ID naming another workspace's
    delivery (forged, or a forwarded thread) matches nothing."""
    if not ids:
        return {}
    rows = db.session.execute(_delivery_query(workspace_id).where(one_of(Delivery.id, ids))).all()
    return {row.id: row for row in rows}


def _wait_until_back(workspace: Workspace, answers: list[tuple[uuid.UUID, date]], now: datetime) -> None:
    """Out-of-office answers with a return date: each contact's next step waits until then."""
    if not answers:
        return
    back_on = dict(answers)
    rows = db.session.execute(
        sa.select(CampaignEnrollment.id, CampaignEnrollment.next_action_at, Contact.timezone)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(one_of(CampaignEnrollment.id, set(back_on)), CampaignEnrollment.status.in_(lifecycle.LIVE))
    ).all()
    default_zone = (workspace.settings or {}).get("timezone")
    moves = []
    for row in rows:
        if row.next_action_at is None:
            continue  # waiting for a task or a claim: nothing scheduled to move
        zone = policy.resolve_timezone(row.timezone, default_zone)
        planned = policy.until_back(row.next_action_at, back_on[row.id], zone)
        if planned.delays:
            moves.append({"key": row.id, "due": row.next_action_at, "at": planned.at, "reason": planned.reason})
    if moves:
        table = CampaignEnrollment.__table__
        db.session.connection().execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("key"), table.c.next_action_at == sa.bindparam("due"))
            .values(next_action_at=sa.bindparam("at"), wait_reason=sa.bindparam("reason"), updated_at=now),
            moves,
        )

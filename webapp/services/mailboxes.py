"""Mailboxes: the team's own accounts that campaigns send from and read replies in.

Passwords are encrypted at rest (webapp/crypto.py); they are decrypted only to log in, by
`transport_for` and `imap_settings_for`, and never returned, shown or logged.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp import crypto
from webapp.engine import imap, mailer, policy, render
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, Mailbox, Workspace, utcnow
from webapp.models.enums import MailboxState
from webapp.schemas.mailboxes import MailboxIn, MailboxUpdate
from webapp.services import lifecycle
from webapp.services.lookups import get_owned, paginate
from webapp.services.sending.claim import COUNTED
from webapp.services.sending.settings import InvalidSettings
from webapp.services.sending.settings import for_instance as settings_for_instance

log = logging.getLogger("drumbeat.mailboxes")
SERVERS = ("smtp", "imap")


def create_mailbox(workspace: Workspace, data: MailboxIn, *, now: datetime | None = None) -> Mailbox:
    """A new active mailbox. Conflict when the workspace has one with that address already."""
    _check_signature(data.signature)
    mailbox = Mailbox(
        workspace_id=workspace.id,
        name=data.name,
        from_name=data.from_name,
        from_email=data.from_email,
        daily_cap=data.daily_cap,
        min_gap_seconds=data.min_gap_seconds,
        signature=data.signature or None,
        imap_folder="INBOX",
        imap_last_uid=0,
        state=MailboxState.ACTIVE,
    )
    _set_server(mailbox, "smtp", data.smtp.model_dump(), replace=True)
    _set_server(mailbox, "imap", data.imap.model_dump() if data.imap else None, replace=True)
    _set_ramp(mailbox, data.ramp, now or utcnow())
    db.session.add(mailbox)
    _commit_unique(data.from_email)
    log.info("mailbox created", extra={"mailbox_id": str(mailbox.id), "workspace_id": str(workspace.id)})
    return mailbox


def checked_settings(workspace: Workspace, settings: dict) -> dict:
    """`settings` (campaign or template settings, as stored), once its `mailbox_ids` are known to
    be mailboxes of the workspace; NotFound naming the others (as for any id that is not found)."""
    wanted = {uuid.UUID(str(value)) for value in settings.get("mailbox_ids") or ()}
    if wanted:
        found = set(
            db.session.scalars(
                sa.select(Mailbox.id).where(Mailbox.workspace_id == workspace.id, Mailbox.id.in_(wanted))
            )
        )
        unknown = sorted(str(value) for value in wanted - found)
        if unknown:
            raise NotFound(
                f"Mailbox {', '.join(unknown)} not found.",
                details=[{"field": "settings.mailbox_ids", "message": f"unknown mailbox {value}"} for value in unknown],
            )
    return settings


def get_mailbox(workspace: Workspace, mailbox_id: uuid.UUID) -> Mailbox:
    return get_owned(Mailbox, workspace, mailbox_id)


def list_mailboxes(
    workspace: Workspace, *, state: str | None = None, page: int = 1, limit: int = 100
) -> tuple[list[Mailbox], int]:
    query = sa.select(Mailbox).where(Mailbox.workspace_id == workspace.id)
    if state:
        query = query.where(Mailbox.state == state)
    return paginate(query.order_by(Mailbox.name, Mailbox.id), page=page, limit=limit)


def update_mailbox(
    workspace: Workspace, mailbox_id: uuid.UUID, data: MailboxUpdate, *, now: datetime | None = None
) -> Mailbox:
    """Change the fields given. A new address, server or password makes a failing mailbox active
    again (the person fixed it); `state` pauses or resumes it."""
    mailbox = get_owned(Mailbox, workspace, mailbox_id)
    given = data.model_fields_set
    if "signature" in given:
        _check_signature(data.signature)
    for name in ("name", "from_name", "from_email", "daily_cap", "min_gap_seconds", "signature"):
        if name in given:
            value = getattr(data, name)
            if name in ("name", "from_email") and value is None:
                raise ValidationFailed(f"{name} cannot be empty.", details=[{"field": name, "message": "is required"}])
            setattr(mailbox, name, (value or None) if name == "signature" else value)
    for server in SERVERS:
        if server in given:
            values = getattr(data, server)
            _set_server(mailbox, server, values.model_dump(exclude_unset=True) if values else None, replace=False)
    if "ramp" in given:
        _set_ramp(mailbox, data.ramp, now or utcnow())
    if data.state is not None:
        mailbox.state = data.state
    elif mailbox.state == MailboxState.FAILING and given & {"from_email", "smtp", "imap"}:
        mailbox.state = MailboxState.ACTIVE
    if mailbox.state == MailboxState.ACTIVE:
        mailbox.last_error, mailbox.last_error_at = None, None
    _commit_unique(mailbox.from_email)
    return mailbox


def delete_mailbox(workspace: Workspace, mailbox_id: uuid.UUID) -> None:
    """Delete a mailbox no live enrollment sends from (Conflict otherwise: pause it instead, or
    wait for those contacts to finish). Past deliveries keep their sender address."""
    mailbox = get_owned(Mailbox, workspace, mailbox_id)
    live = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CampaignEnrollment)
        .where(CampaignEnrollment.mailbox_id == mailbox.id, CampaignEnrollment.status.in_(lifecycle.LIVE))
    )
    if live:
        raise Conflict(
            f"{live} contact{'s' if live != 1 else ''} in live campaigns get their messages from this mailbox: "
            "pause it instead, or delete it once they are done."
        )
    db.session.execute(
        sa.update(CampaignEnrollment).where(CampaignEnrollment.mailbox_id == mailbox.id).values(mailbox_id=None)
    )
    db.session.delete(mailbox)
    db.session.commit()


def check_mailbox(
    workspace: Workspace,
    mailbox_id: uuid.UUID,
    *,
    servers: tuple[str, ...] = SERVERS,
    now: datetime | None = None,
) -> dict:
    """Log in to the mailbox's SMTP server and IMAP server (when it reads replies), those among
    `servers`, as the worker would: {"smtp": {"ok", "error"} or None, "imap": ... or None}. All
    working make a failing mailbox active again; a refused login marks it failing."""
    mailbox = get_owned(Mailbox, workspace, mailbox_id)
    now = now or utcnow()
    result = {
        "smtp": _check_smtp(mailbox) if "smtp" in servers else None,
        "imap": _check_imap(mailbox) if "imap" in servers and mailbox.reads_replies else None,
    }
    errors = [f"{server.upper()}: {r['error']}" for server, r in result.items() if r and not r["ok"]]
    mailbox.last_checked_at = now
    if errors:
        mailbox.last_error, mailbox.last_error_at = "; ".join(errors), now
        if mailbox.state == MailboxState.ACTIVE and any(
            r and r["error"] == mailer.AUTH_FAILED for r in result.values()
        ):
            mailbox.state = MailboxState.FAILING
    else:
        mailbox.last_error, mailbox.last_error_at = None, None
        if mailbox.state == MailboxState.FAILING:
            mailbox.state = MailboxState.ACTIVE
    db.session.commit()
    return result


def mark_failing(mailbox_id: uuid.UUID, error: str, *, now: datetime) -> None:
    """The server refused the mailbox's login or its sender address: stop sending from it until a
    person looks (its contacts wait). Flushes; the caller commits."""
    db.session.execute(
        sa.update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.state == MailboxState.ACTIVE)
        .values(state=MailboxState.FAILING, last_error=error[:2000], last_error_at=now, updated_at=now)
    )
    log.warning("mailbox failing", extra={"mailbox_id": str(mailbox_id), "error": error[:200]})


def rest(mailbox_id: uuid.UUID, *, until: datetime, error: str) -> None:
    """Its server keeps failing (down, or rate limiting): no sending from the mailbox until `until`.
    Flushes; the caller commits."""
    db.session.execute(
        sa.update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(send_paused_until=until, last_error=error[:2000], last_error_at=utcnow())
    )
    log.warning("mailbox resting", extra={"mailbox_id": str(mailbox_id), "until": until.isoformat()})


def unavailable_for(workspace: Workspace, instance) -> list[Mailbox]:
    """The campaign's mailboxes that cannot send now (paused, failing, or resting after repeated
    server failures): its "needs attention" box lists them, with their last error."""
    try:
        wanted = settings_for_instance(instance, workspace).mailbox_ids
    except InvalidSettings:
        return []  # the campaign page says so already
    if not wanted:
        return []
    now = utcnow()
    return list(
        db.session.scalars(
            sa.select(Mailbox)
            .where(
                Mailbox.workspace_id == workspace.id,
                Mailbox.id.in_(wanted),
                sa.or_(
                    Mailbox.state != MailboxState.ACTIVE,
                    sa.and_(Mailbox.send_paused_until.is_not(None), Mailbox.send_paused_until > now),
                ),
            )
            .order_by(Mailbox.name)
        )
    )


def cap_on(mailbox: Mailbox, day: date) -> int | None:
    """The mailbox's cap on `day`, ramp-up included."""
    return policy.ramp_cap(
        mailbox.daily_cap,
        start=mailbox.ramp_start,
        increase=mailbox.ramp_increase,
        started_on=mailbox.ramp_started_on,
        day=day,
    )


@dataclass(frozen=True)
class Usage:
    sent_today: int  # claimed or sent in the workspace's day: what the cap counts
    cap_today: int | None  # ramp-up included; None: no cap


def usage_today(workspace: Workspace, mailboxes: list[Mailbox], *, now: datetime | None = None) -> dict:
    """Each mailbox's `Usage` today (the workspace's day), by id, in one query."""
    now = now or utcnow()
    rules = policy.Rules(sender_timezone=(workspace.settings or {}).get("timezone"))
    today = rules.sender_day(now)
    start, end = rules.sender_day_bounds(today)
    counts = dict(
        db.session.execute(
            sa.select(Delivery.mailbox_id, sa.func.count())
            .where(
                Delivery.mailbox_id.in_([m.id for m in mailboxes]),
                Delivery.created_at >= start,
                Delivery.created_at < end,
                Delivery.status.in_(COUNTED),
            )
            .group_by(Delivery.mailbox_id)
        ).all()
    )
    return {m.id: Usage(counts.get(m.id, 0), cap_on(m, today)) for m in mailboxes}


def view(mailbox: Mailbox, usage: Usage) -> dict:
    """A mailbox as the API shows it: passwords only as `has_password`."""

    def server(prefix: str) -> dict:
        return {
            "host": getattr(mailbox, f"{prefix}_host"),
            "port": getattr(mailbox, f"{prefix}_port"),
            "security": getattr(mailbox, f"{prefix}_security"),
            "username": getattr(mailbox, f"{prefix}_username"),
            "has_password": bool(getattr(mailbox, f"{prefix}_password_encrypted")),
        }

    ramp = None
    if mailbox.ramp_start:
        started = mailbox.ramp_started_on.isoformat() if mailbox.ramp_started_on else None
        ramp = {"start": mailbox.ramp_start, "increase": mailbox.ramp_increase, "started_on": started}
    reading = {
        "folder": mailbox.imap_folder,
        "read_at": mailbox.inbox_read_at,
        "error": mailbox.inbox_error,
        "error_at": mailbox.inbox_error_at,
    }
    return {
        **{name: getattr(mailbox, name) for name in ("id", "name", "from_name", "from_email", "daily_cap")},
        **{name: getattr(mailbox, name) for name in ("min_gap_seconds", "signature", "state", "last_error")},
        **{name: getattr(mailbox, name) for name in ("last_error_at", "last_checked_at", "created_at", "updated_at")},
        "smtp": server("smtp"),
        "imap": {**server("imap"), **reading} if mailbox.reads_replies else None,
        "ramp": ramp,
        "resting_until": mailbox.send_paused_until
        if mailbox.send_paused_until and mailbox.send_paused_until > utcnow()
        else None,
        "sent_today": usage.sent_today,
        "cap_today": usage.cap_today,
    }


def transport_for(mailbox: Mailbox) -> mailer.SmtpTransport:
    """An SMTP transport logged in as the mailbox (the password decrypted here, for this use only)."""
    config = current_app.config
    return mailer.SmtpTransport(
        mailbox.smtp_host,
        mailbox.smtp_port,
        security=mailbox.smtp_security,
        username=mailbox.smtp_username,
        password=_secret(mailbox.smtp_password_encrypted),
        timeout=float(config.get("SMTP_TIMEOUT") or 30),
        local_hostname=config.get("SMTP_HELO_NAME") or None,
    )


def imap_settings_for(mailbox: Mailbox) -> imap.ImapSettings:
    return imap.ImapSettings(
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        security=mailbox.imap_security,
        username=mailbox.imap_username or mailbox.from_email,
        password=_secret(mailbox.imap_password_encrypted) or "",
        folder=mailbox.imap_folder or "INBOX",
        timeout=float(current_app.config.get("IMAP_TIMEOUT") or 30),
    )


def rotate_secrets() -> int:
    """Encrypt every stored mailbox password again under the first ENCRYPTION_KEY. Returns how many."""
    rotated = 0
    for mailbox in db.session.scalars(sa.select(Mailbox)):
        for column in ("smtp_password_encrypted", "imap_password_encrypted"):
            token = getattr(mailbox, column)
            if token:
                setattr(mailbox, column, crypto.rotate(token))
                rotated += 1
    db.session.commit()
    return rotated


def _secret(token: str | None) -> str | None:
    return crypto.decrypt(token) if token else None


def _set_server(mailbox: Mailbox, server: str, values: dict | None, *, replace: bool) -> None:
    """Store a server's settings; a password given is encrypted, one not given is kept (unless
    `replace`). None clears the IMAP settings (the mailbox no longer reads replies)."""
    if values is None:
        if server == "smtp":
            raise ValidationFailed("smtp cannot be empty.", details=[{"field": "smtp", "message": "is required"}])
        for field in ("host", "port", "security", "username", "password_encrypted"):
            setattr(mailbox, f"imap_{field}", None)
        mailbox.imap_uidvalidity, mailbox.imap_last_uid = None, 0
        return
    if server == "imap" and mailbox.imap_host is None and "host" not in values:
        raise ValidationFailed("imap.host is required.", details=[{"field": "imap.host", "message": "is required"}])
    for field in ("host", "port", "security", "username"):
        if field in values:
            value = values[field]
            setattr(mailbox, f"{server}_{field}", (value or None) if field == "username" else value)
    if server == "imap":
        mailbox.imap_port = mailbox.imap_port or 993
        mailbox.imap_security = mailbox.imap_security or "ssl"
        if values.get("folder"):
            mailbox.imap_folder = values["folder"]
        if {"host", "username", "folder"} & set(values):
            mailbox.imap_uidvalidity, mailbox.imap_last_uid = None, 0  # another mailbox: read it afresh
    if values.get("password"):
        setattr(mailbox, f"{server}_password_encrypted", crypto.encrypt(values["password"]))
    elif replace:
        setattr(mailbox, f"{server}_password_encrypted", None)


def _set_ramp(mailbox: Mailbox, ramp, now: datetime) -> None:
    mailbox.ramp_start = ramp.start if ramp else None
    mailbox.ramp_increase = ramp.increase if ramp else None
    mailbox.ramp_started_on = now.date() if ramp else None


def _check_signature(signature: str | None) -> None:
    if signature:
        try:
            render.validate_template(signature)
        except render.TemplateError as exc:
            raise ValidationFailed(
                f"signature: {exc.message}", details=[{"field": "signature", "message": exc.message}]
            ) from None


def _commit_unique(from_email: str) -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(f"The workspace has a mailbox for {from_email} already.") from exc


def _check_smtp(mailbox: Mailbox) -> dict:
    try:
        with transport_for(mailbox) as transport:
            transport.check()
    except crypto.SecretUnreadable as exc:
        return {"ok": False, "error": str(exc)}
    except mailer.SendError as exc:
        return {"ok": False, "error": exc.reason or str(exc)}
    return {"ok": True, "error": None}


def _check_imap(mailbox: Mailbox) -> dict:
    try:
        imap.check(imap_settings_for(mailbox))
    except crypto.SecretUnreadable as exc:
        return {"ok": False, "error": str(exc)}
    except imap.ImapError as exc:
        return {"ok": False, "error": exc.reason}
    return {"ok": True, "error": None}

"""Mailboxes: the team's own accounts that campaigns send from and read replies in.

Every member sees the list (usage today, state, inbox reading) and may check a mailbox's
connections; owners add, change, pause and delete them (members get 403, as on the settings page).
Passwords are write-only: a form never shows one, and an empty password field on edit keeps the
stored password.
"""

import math
import uuid

from flask import Blueprint, flash, redirect, request, url_for

from webapp.errors import Conflict, Forbidden, ValidationFailed
from webapp.htmx import hx_redirect, hx_trigger, is_htmx, render
from webapp.models import Mailbox
from webapp.schemas.mailboxes import MailboxIn, MailboxUpdate
from webapp.security import current_workspace, require_login
from webapp.services import mailboxes
from webapp.web import errors_by_field
from webapp.web.forms import form_data, parse_form
from webapp.web.settings import is_owner

bp = Blueprint("mailboxes", __name__, url_prefix="/mailboxes")
bp.before_request(require_login)

INDEX = "mailboxes/index.html"
FORM = "mailboxes/form.html"
PER_PAGE = 50
SECURITY = [("starttls", "STARTTLS"), ("ssl", "SSL/TLS"), ("none", "None (plain text)")]
SERVER_FIELDS = ("host", "port", "security", "username")
# Every form field but the passwords, which are never shown again.
FIELDS = (
    "name",
    "from_name",
    "from_email",
    *(f"smtp.{name}" for name in SERVER_FIELDS),
    *(f"imap.{name}" for name in (*SERVER_FIELDS, "folder")),
    "daily_cap",
    "min_gap_seconds",
    "ramp.start",
    "ramp.increase",
    "signature",
)
DEFAULTS = {"smtp.port": 587, "smtp.security": "starttls", "imap.port": 993, "imap.security": "ssl"}
CHECK_LABELS = {"smtp": "SMTP", "imap": "IMAP"}


def _require_owner() -> None:
    if not is_owner():
        raise Forbidden("Only workspace owners can add, change, pause or delete mailboxes.")


# The list.


def _list(status: int = 200, **context):
    workspace = current_workspace()
    page = max(request.args.get("page", type=int) or 1, 1)
    items, total = mailboxes.list_mailboxes(workspace, page=page, limit=PER_PAGE)
    usage = mailboxes.usage_today(workspace, items)
    context.setdefault("checks", {})
    context.setdefault("delete_errors", {})
    return render(
        INDEX,
        block="mailbox_list",
        status=status,
        rows=[mailboxes.view(mailbox, usage[mailbox.id]) for mailbox in items],
        total=total,
        page=page,
        pages=math.ceil(total / PER_PAGE),
        is_owner=is_owner(),
        check_labels=CHECK_LABELS,
        **context,
    )


def _done(message: str, level: str = "success", mailbox_id: uuid.UUID | None = None, **context):
    """After an action: the updated list and a toast for htmx, a 303 back to the list otherwise."""
    if is_htmx():
        return hx_trigger(_list(**context), "toast", {"message": message, "level": level})
    flash(message, level)
    return redirect(url_for("mailboxes.index", _anchor=f"mailbox-{mailbox_id}" if mailbox_id else None), 303)


@bp.get("")
def index():
    """The workspace's mailboxes with today's usage, their state and how reading replies goes."""
    return _list()


# Add and edit.


def _values(mailbox: Mailbox | None) -> dict:
    """The form's values for a new mailbox (the defaults) or a stored one (passwords left out)."""
    if mailbox is None:
        return {**dict.fromkeys(FIELDS, ""), **DEFAULTS, "imap.folder": "INBOX"}
    values = {name: getattr(mailbox, name.replace(".", "_")) for name in FIELDS if not name.startswith("ramp.")}
    values["imap.folder"] = mailbox.imap_folder if mailbox.reads_replies else "INBOX"
    if not mailbox.reads_replies:
        values.update({"imap.port": DEFAULTS["imap.port"], "imap.security": DEFAULTS["imap.security"]})
    values["ramp.start"], values["ramp.increase"] = mailbox.ramp_start, mailbox.ramp_increase
    return {name: "" if value is None else value for name, value in values.items()}


def _form(mailbox: Mailbox | None, values: dict, errors: dict, status: int = 200):
    known = set(FIELDS) | {"smtp.password", "imap.password"}
    return render(
        FORM,
        block="mailbox_form",
        status=status,
        mailbox=mailbox,
        values=values,
        errors=errors,
        other_errors=[message for field, messages in errors.items() if field not in known for message in messages],
        security_choices=SECURITY,
    )


def _submitted() -> MailboxIn:
    """The form as a whole mailbox: an empty IMAP host means replies are not read there, an empty
    ramp-up none; empty passwords are left out (on edit: keep the stored ones)."""
    data = form_data()
    if not (data.get("imap") or {}).get("host"):
        data.pop("imap", None)
    return parse_form(MailboxIn, data=data)


def _changes(mailbox: Mailbox, wanted: MailboxIn) -> MailboxUpdate:
    """Only what the edit form changed. Sending unchanged server settings would make the worker read
    the inbox afresh, and an unchanged ramp-up would start over from today."""
    changes: dict = {}
    for name in ("name", "from_name", "from_email", "daily_cap", "min_gap_seconds", "signature"):
        value = getattr(wanted, name)
        if (value or None if name == "signature" else value) != getattr(mailbox, name):
            changes[name] = value
    for server in ("smtp", "imap"):
        new = getattr(wanted, server)
        if new is None:
            if server == "imap" and mailbox.reads_replies:
                changes["imap"] = None
            continue
        fields = (*SERVER_FIELDS, "folder") if server == "imap" else SERVER_FIELDS
        stored = {name: getattr(mailbox, f"{server}_{name}") for name in fields}
        if server == "imap" and not mailbox.reads_replies:
            stored = {}
        changed = {name: getattr(new, name) for name in fields if getattr(new, name) != stored.get(name)}
        if new.password:
            changed["password"] = new.password
        if changed:
            changes[server] = changed
    ramp = (wanted.ramp.start, wanted.ramp.increase) if wanted.ramp else (None, None)
    if ramp != (mailbox.ramp_start, mailbox.ramp_increase):
        changes["ramp"] = wanted.ramp.model_dump() if wanted.ramp else None
    return parse_form(MailboxUpdate, data=changes)


def _typed() -> dict:
    """The form as typed, to show again after an error (never the passwords)."""
    return {name: request.form.get(name, "").strip() for name in FIELDS}


@bp.get("/new")
def new():
    """The form for a new mailbox."""
    _require_owner()
    return _form(None, _values(None), {})


@bp.post("")
def create():
    """Add a mailbox; errors come back beside their fields (422)."""
    _require_owner()
    return _save(
        None,
        lambda: mailboxes.create_mailbox(current_workspace(), _submitted()),
        "Mailbox “{}” added. Check its connection to be sure it can send.",
    )


@bp.get("/<uuid:mailbox_id>/edit")
def edit(mailbox_id: uuid.UUID):
    """The form to change a mailbox; its passwords stay unless new ones are typed."""
    _require_owner()
    mailbox = mailboxes.get_mailbox(current_workspace(), mailbox_id)
    return _form(mailbox, _values(mailbox), {})


@bp.post("/<uuid:mailbox_id>")
def update(mailbox_id: uuid.UUID):
    """Save a mailbox's changes; an empty password field keeps the stored password."""
    _require_owner()
    workspace = current_workspace()
    mailbox = mailboxes.get_mailbox(workspace, mailbox_id)
    return _save(
        mailbox,
        lambda: mailboxes.update_mailbox(workspace, mailbox_id, _changes(mailbox, _submitted())),
        "Mailbox “{}” saved.",
    )


def _save(mailbox, save, done: str):
    """Run `save` (a create or an update); its errors come back beside their fields (422), a
    taken address beside the address."""
    try:
        saved = save()
    except ValidationFailed as exc:
        return _form(mailbox, _typed(), errors_by_field(exc.details) or {"__all__": [exc.message]}, 422)
    except Conflict as exc:
        return _form(mailbox, _typed(), {"from_email": [exc.message]}, 422)
    flash(done.format(saved.name), "success")
    return hx_redirect(url_for("mailboxes.index", _anchor=f"mailbox-{saved.id}"))


# Actions from the list.


@bp.post("/<uuid:mailbox_id>/check")
def check(mailbox_id: uuid.UUID):
    """Log in to the SMTP server (and the IMAP server, when it reads replies) as the worker would."""
    workspace = current_workspace()
    mailbox = mailboxes.get_mailbox(workspace, mailbox_id)
    result = mailboxes.check_mailbox(workspace, mailbox_id)
    parts = []
    for server, label in CHECK_LABELS.items():
        if result.get(server):
            parts.append(f"{label} {'works' if result[server]['ok'] else 'failed: ' + result[server]['error']}")
    level = "success" if all(r["ok"] for r in result.values() if r) else "error"
    message = f"“{mailbox.name}”: {'; '.join(parts)}."
    return _done(message, level, mailbox_id, checks={mailbox_id: result})


@bp.post("/<uuid:mailbox_id>/state")
def set_state(mailbox_id: uuid.UUID):
    """Pause sending from a mailbox, or make it active again (also after a failure)."""
    _require_owner()
    workspace = current_workspace()
    mailboxes.get_mailbox(workspace, mailbox_id)
    changes = parse_form(MailboxUpdate, data={"state": request.form.get("state", "")})
    mailbox = mailboxes.update_mailbox(workspace, mailbox_id, changes)
    if changes.state == "paused":
        message = f"Mailbox “{mailbox.name}” paused: nothing is sent from it until it is resumed."
    else:
        message = f"Mailbox “{mailbox.name}” is active again."
    return _done(message, mailbox_id=mailbox_id)


@bp.get("/<uuid:mailbox_id>/delete")
def confirm_delete(mailbox_id: uuid.UUID):
    """Ask before deleting (the page browsers without JavaScript get)."""
    _require_owner()
    mailbox = mailboxes.get_mailbox(current_workspace(), mailbox_id)
    return render(
        "settings/confirm.html",
        title=f"Delete the mailbox “{mailbox.name}”?",
        message=f"Campaigns stop sending from {mailbox.from_email} and its replies are no longer read. "
        "Past messages keep their sender address. This cannot be undone.",
        action=url_for("mailboxes.delete", mailbox_id=mailbox.id),
        label="Delete mailbox",
        cancel=url_for("mailboxes.index", _anchor=f"mailbox-{mailbox.id}"),
    )


@bp.post("/<uuid:mailbox_id>/delete")
def delete(mailbox_id: uuid.UUID):
    """Delete a mailbox no live campaign sends from (409 with the reason otherwise)."""
    _require_owner()
    workspace = current_workspace()
    mailbox = mailboxes.get_mailbox(workspace, mailbox_id)
    name = mailbox.name
    try:
        mailboxes.delete_mailbox(workspace, mailbox_id)
    except Conflict as exc:
        return _list(409, delete_errors={mailbox_id: exc.message})
    return _done(f"Mailbox “{name}” deleted.")

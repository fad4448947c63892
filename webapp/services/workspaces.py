"""Workspace settings: the sender defaults kept in `Workspace.settings`, and the webhook secret.

Each public function is one transaction: it validates, writes and commits, or raises
ValidationFailed and changes nothing.
"""

import logging
from collections.abc import Mapping

from pydantic import ValidationError

from webapp.engine.mailer import HeaderInjection, check_header_value
from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.models import Workspace
from webapp.models.workspace import new_webhook_secret
from webapp.schemas.common import normalize_email
from webapp.schemas.settings import CampaignSettings
from webapp.schemas.validation import error_message
from webapp.services.sending.settings import SENDER_DEFAULT_KEYS as SENDER_KEYS

log = logging.getLogger("drumbeat.workspaces")


def sender_defaults(workspace: Workspace) -> dict:
    """The sender defaults stored on `workspace` (only the keys that are set)."""
    settings = workspace.settings or {}
    return {key: settings[key] for key in SENDER_KEYS if settings.get(key) is not None}


def update_sender_defaults(workspace: Workspace, values: Mapping) -> dict:
    """Replace the workspace's sender defaults with `values` and return what is stored.

    `values` may hold `send_window` ({days, start, end}, or None for any time), `timezone`,
    `daily_cap`, `from_name` and `from_email`; a missing or None value clears that default. They are
    validated with CampaignSettings, the rules campaigns use; numbers may arrive as text (form fields).
    The address must be a valid email and the name a single-line header value. Other keys of
    `Workspace.settings` are kept. Raises ValidationFailed (with per-field details) for an unknown key
    or an invalid value; nothing is saved then.
    """
    unknown = [key for key in values if key not in SENDER_KEYS]
    if unknown:
        details = [{"field": key, "message": "is not a sender default"} for key in unknown]
        raise ValidationFailed(f"Unknown sender defaults: {', '.join(map(str, unknown))}.", details=details)
    data = {key: value for key, value in values.items() if value is not None and value != ""}
    try:
        settings = CampaignSettings.model_validate(data, strict=False)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(part) for part in error["loc"]) or "settings", "message": error_message(error)}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        raise ValidationFailed(f"Invalid sender defaults: {summary}", details=details) from exc
    clean = settings.model_dump(mode="json", exclude_none=True)
    errors = []
    if "from_email" in clean:
        try:
            clean["from_email"] = normalize_email(clean["from_email"])
        except ValueError as exc:
            errors.append({"field": "from_email", "message": str(exc)})
    if "from_name" in clean:
        clean["from_name"] = clean["from_name"].strip()
        try:
            check_header_value(clean["from_name"], "the sender name")
        except HeaderInjection as exc:
            errors.append({"field": "from_name", "message": str(exc)})
        if not clean["from_name"]:
            del clean["from_name"]
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(f"Invalid sender defaults: {summary}", details=errors)
    kept = {key: value for key, value in (workspace.settings or {}).items() if key not in SENDER_KEYS}
    # A new dict, so the JSON column is seen as changed.
    workspace.settings = {**kept, **clean}
    db.session.commit()
    log.info("sender defaults updated", extra={"workspace_id": str(workspace.id), "keys": sorted(clean)})
    return sender_defaults(workspace)


REPLY_STOPS_CAMPAIGN = "campaign"
REPLY_STOPS_WORKSPACE = "workspace"
REPLY_STOPS_DOMAIN = "domain"
REPLY_STOPS = (REPLY_STOPS_CAMPAIGN, REPLY_STOPS_WORKSPACE, REPLY_STOPS_DOMAIN)


def reply_stops(workspace: Workspace) -> str:
    """How far a reply read in a mailbox reaches: the campaign answered, every campaign of that
    contact (`workspace`, the default), or every contact at the same email domain."""
    value = (workspace.settings or {}).get("reply_stops")
    return value if value in REPLY_STOPS else REPLY_STOPS_WORKSPACE


def set_reply_stops(workspace: Workspace, value: str) -> str:
    if value not in REPLY_STOPS:
        raise ValidationFailed(
            f"reply_stops must be one of {', '.join(REPLY_STOPS)}",
            details=[{"field": "reply_stops", "message": f"must be one of {', '.join(REPLY_STOPS)}"}],
        )
    workspace.settings = {**(workspace.settings or {}), "reply_stops": value}
    db.session.commit()
    log.info("reply reach updated", extra={"workspace_id": str(workspace.id), "reply_stops": value})
    return value


def rotate_webhook_secret(workspace: Workspace) -> str:
    """Give the workspace a new `whsec_` secret and return it. Signatures made with the old
    secret stop verifying at once: senders must be updated with the new one."""
    workspace.webhook_secret = new_webhook_secret()
    db.session.commit()
    log.info("webhook secret rotated", extra={"workspace_id": str(workspace.id)})
    return workspace.webhook_secret

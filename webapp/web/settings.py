"""Workspace settings: API keys, the webhook secret and URLs, provider credentials, sender defaults;
and the signed-in user's own profile (time zone).

Owners manage the workspace's; members see them read-only and get 403 on every change (each sets
their own profile). Secrets are
never written back into a page: a new API key is shown once, in the response that created it;
the webhook secret only when an owner asks to reveal it; provider credentials only as "saved".
"""

import re
import uuid
from zoneinfo import available_timezones

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user

from webapp.errors import Forbidden, NotFound, ValidationFailed
from webapp.htmx import hx_trigger, is_htmx, render
from webapp.security import current_workspace, require_login
from webapp.services.api_keys import KEY_PREFIX, create_api_key, list_api_keys, revoke_api_key
from webapp.services.providers import get_provider_settings, set_provider_settings
from webapp.services.users import set_timezone
from webapp.services.workspaces import (
    REPLY_STOPS_CAMPAIGN,
    REPLY_STOPS_DOMAIN,
    REPLY_STOPS_WORKSPACE,
    reply_stops,
    rotate_webhook_secret,
    sender_defaults,
    set_reply_stops,
    update_sender_defaults,
)
from webapp.web import errors_by_field

bp = Blueprint("settings", __name__)
bp.before_request(require_login)

TEMPLATE = "settings/index.html"
# (name, label, kind, hint); a "secret" is never echoed back, not even after a failed save.
PROVIDERS = {
    "sendgrid": (
        "SendGrid",
        [("public_key", "Verification key", "textarea", "Mail Settings > Signed Event Webhook: the public key.")],
    ),
    "mailgun": (
        "Mailgun",
        [("signing_key", "HTTP webhook signing key", "secret", "Sending > Webhooks: the HTTP webhook signing key.")],
    ),
    "postmark": (
        "Postmark",
        [
            ("username", "Username", "text", "Postmark calls the webhook URL with this user name (basic auth)."),
            ("password", "Password", "secret", "At least 16 characters; use a long random one."),
        ],
    ),
}
WEEKDAYS = list(enumerate(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), start=1))
_TIMEZONES = sorted(available_timezones())


def is_owner() -> bool:
    return current_user.role == "owner"


def _require_owner() -> None:
    if not is_owner():
        raise Forbidden("Only workspace owners can change API keys, secrets and settings.")


def _public_url(endpoint: str, **values) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for(endpoint, **values)


def _mask(secret: str) -> str:
    return "whsec_" + "•" * 16 + secret[-4:]


def _sender_form(values: dict) -> dict:
    """Sender defaults (stored or submitted) as the form shows them."""
    window = values.get("send_window")
    return {
        "window_on": bool(window),
        "days": [str(day) for day in (window or {}).get("days", [1, 2, 3, 4, 5])],
        "start": (window or {}).get("start") or "09:00",
        "end": (window or {}).get("end") or "17:00",
        **{key: values.get(key) or "" for key in ("timezone", "daily_cap", "from_name", "from_email")},
    }


REPLY_REACH_CHOICES = [
    (REPLY_STOPS_CAMPAIGN, "Only the campaign they answered"),
    (REPLY_STOPS_WORKSPACE, "Every campaign of that contact"),
    (REPLY_STOPS_DOMAIN, "Every contact at the same email domain (their colleagues too)"),
]


def _context(**overrides) -> dict:
    workspace = current_workspace()
    providers = [
        {
            "id": provider,
            "label": label,
            "fields": fields,
            "saved": get_provider_settings(workspace, provider) is not None,
            "url": _public_url(f"webhooks.{provider}_events", workspace_id=workspace.id),
        }
        for provider, (label, fields) in PROVIDERS.items()
    ]
    context = {
        "workspace": workspace,
        "is_owner": is_owner(),
        "key_prefix": KEY_PREFIX,
        "api_keys": list_api_keys(workspace),
        "created_key": None,
        "plaintext": None,
        "key_name": "",
        "key_errors": {},
        "webhook_url": _public_url("api.receive_signed_events", workspace_id=workspace.id),
        "secret_mask": _mask(workspace.webhook_secret),
        "secret": None,
        "providers": providers,
        "provider_errors": {},
        "provider_values": {},
        "sender": _sender_form(sender_defaults(workspace)),
        "sender_errors": {},
        "weekdays": WEEKDAYS,
        "timezones": _TIMEZONES,
        "reply_stops": reply_stops(workspace),
        "reply_reach_choices": REPLY_REACH_CHOICES,
        "reply_errors": {},
        "profile_timezone": current_user.timezone,
        "profile_errors": {},
    }
    context.update(overrides)
    return context


def _done(block: str, message: str, anchor: str, status: int = 200, **context):
    """After a change: the updated block and a toast for htmx, a 303 back to the section otherwise."""
    if is_htmx():
        response = render(TEMPLATE, block=block, status=status, **_context(**context))
        return hx_trigger(response, "toast", {"message": message, "level": "success"})
    flash(message, "success")
    return redirect(url_for("settings.index", _anchor=anchor), 303)


@bp.get("/settings")
def index():
    """The settings page; `?secret=show` reveals the webhook secret to an owner."""
    shown = request.args.get("secret") == "show"
    if shown:
        _require_owner()
    block = "webhook" if request.args.get("secret") in ("show", "hide") else None
    secret = current_workspace().webhook_secret if shown else None
    return render(TEMPLATE, block=block, **_context(secret=secret))


@bp.post("/settings/api-keys")
def create_key():
    """Create an API key and show its plaintext once, in this response only."""
    _require_owner()
    name = request.form.get("name", "")
    try:
        api_key, plaintext = create_api_key(current_workspace(), name=name, user=current_user.user)
    except ValidationFailed as exc:
        context = _context(key_name=name, key_errors={"name": [exc.message]})
        return render(TEMPLATE, block="api_keys", status=422, **context)
    # Rendered, not redirected: the plaintext must not be parked in the session cookie for the next page.
    response = render(TEMPLATE, block="api_keys", status=201, **_context(created_key=api_key, plaintext=plaintext))
    if is_htmx():
        hx_trigger(response, "toast", {"message": f"API key “{api_key.name}” created.", "level": "success"})
    return response


def _owned_key(key_id: uuid.UUID):
    for api_key in list_api_keys(current_workspace()):
        if api_key.id == key_id:
            return api_key
    raise NotFound("API key not found.")


@bp.get("/settings/api-keys/<uuid:key_id>/revoke")
def confirm_revoke_key(key_id: uuid.UUID):
    """Ask before revoking (the page browsers without JavaScript get)."""
    _require_owner()
    api_key = _owned_key(key_id)
    return render(
        "settings/confirm.html",
        title=f"Revoke the API key “{api_key.name}”?",
        message="Programs using this key will get 401 Unauthorized from the next request on. This cannot be undone.",
        action=url_for("settings.revoke_key", key_id=api_key.id),
        label="Revoke key",
        cancel=url_for("settings.index", _anchor="api-keys"),
    )


@bp.post("/settings/api-keys/<uuid:key_id>/revoke")
def revoke_key(key_id: uuid.UUID):
    """Revoke a key: the API refuses it from now on."""
    _require_owner()
    api_key = revoke_api_key(current_workspace(), key_id)
    return _done("api_keys", f"API key “{api_key.name}” revoked.", "api-keys")


@bp.get("/settings/webhook-secret/rotate")
def confirm_rotate_secret():
    """Ask before rotating (the page browsers without JavaScript get)."""
    _require_owner()
    return render(
        "settings/confirm.html",
        title="Rotate the webhook secret?",
        message="Events signed with the current secret will be refused (401) as soon as it changes. "
        "Give the new secret to every sender right away.",
        action=url_for("settings.rotate_secret"),
        label="Rotate secret",
        cancel=url_for("settings.index", _anchor="webhook"),
    )


@bp.post("/settings/webhook-secret/rotate")
def rotate_secret():
    """Replace the webhook secret; the old one stops verifying at once."""
    _require_owner()
    secret = rotate_webhook_secret(current_workspace())
    return _done("webhook", "Webhook secret rotated: update your senders.", "webhook", secret=secret)


@bp.post("/settings/providers/<provider>")
def save_provider(provider: str):
    """Save a provider's webhook credentials (never shown again)."""
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown provider {provider[:40]}.")
    _require_owner()
    label, fields = PROVIDERS[provider]
    values = {name: request.form.get(name, "") for name, *_ in fields}
    try:
        set_provider_settings(current_workspace(), provider, values)
    except ValidationFailed as exc:
        echoed = {name: values[name] for name, _, kind, _ in fields if kind != "secret"}
        context = _context(provider_errors={provider: errors_by_field(exc.details)}, provider_values={provider: echoed})
        return render(TEMPLATE, block="providers", status=422, **context)
    return _done("providers", f"{label} credentials saved.", f"provider-{provider}")


def _sender_values() -> dict:
    form = request.form
    window = None
    if form.get("send_window.enabled"):
        window = {
            "days": form.getlist("send_window.days"),
            "start": form.get("send_window.start", "").strip(),
            "end": form.get("send_window.end", "").strip(),
        }
    values = {key: form.get(key, "").strip() or None for key in ("timezone", "daily_cap", "from_name", "from_email")}
    return {"send_window": window, **values}


@bp.post("/settings/sender")
def save_sender():
    """Save the sender defaults: send window, time zone, daily cap, from name and address."""
    _require_owner()
    values = _sender_values()
    try:
        update_sender_defaults(current_workspace(), values)
    except ValidationFailed as exc:
        errors: dict[str, list[str]] = {}
        for field, messages in errors_by_field(exc.details).items():
            # "send_window.days.2" is about the days field.
            errors.setdefault(re.sub(r"(\.\d+)+$", "", field), []).extend(messages)
        context = _context(sender=_sender_form(values), sender_errors=errors)
        return render(TEMPLATE, block="sender", status=422, **context)
    return _done("sender", "Sender defaults saved.", "sender")


@bp.post("/settings/replies")
def save_replies():
    """How far a reply reaches: the campaign answered, every campaign of the contact, or their domain."""
    _require_owner()
    value = request.form.get("reply_stops", "")
    try:
        set_reply_stops(current_workspace(), value)
    except ValidationFailed as exc:
        context = _context(reply_errors=errors_by_field(exc.details))
        return render(TEMPLATE, block="replies", status=422, **context)
    return _done("replies", "Reply settings saved.", "replies")


@bp.post("/settings/profile")
def save_profile():
    """The signed-in user's own time zone, in which every page shows times (any member may set theirs)."""
    value = request.form.get("timezone", "")
    try:
        set_timezone(current_user.user, timezone=value)
    except ValidationFailed as exc:
        context = _context(profile_timezone=value, profile_errors=errors_by_field(exc.details))
        return render(TEMPLATE, block="profile", status=422, **context)
    return _done("profile", "Your time zone is saved: times are now shown in it.", "profile")

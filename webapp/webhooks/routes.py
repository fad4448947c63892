"""Provider webhooks: SendGrid, Mailgun and Postmark post their events under /webhooks.

Each route finds the workspace named in its URL, verifies the request on the raw body with that
workspace's credentials, maps the payload onto our events and hands them all to the service in
one call. The callers are servers: no CSRF, JSON errors, and a generous limit per client address.
Each adapter module documents its status codes and what the sender configures.
"""

import uuid

from flask import Blueprint, current_app, jsonify, request

from webapp.errors import Unauthorized
from webapp.extensions import csrf, db, limiter
from webapp.models import Workspace
from webapp.services.providers import get_provider_settings, ingest_provider_events
from webapp.webhooks import mailgun, postmark, sendgrid
from webapp.webhooks.payloads import Parsed, parse_json

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)

# An unknown and an unconfigured workspace get the same answer; the log says which.
REJECTED = "Webhook authentication failed."


def client_address() -> str:
    return "ip:" + (request.remote_addr or "unknown")


limiter.limit(lambda: current_app.config["RATELIMIT_WEBHOOK"], key_func=client_address)(bp)


def _log_refusal(provider: str, workspace_id: uuid.UUID, status: int, reason: str) -> None:
    extra = {"provider": provider, "workspace_id": str(workspace_id), "status": status, "reason": reason}
    current_app.logger.warning("webhook rejected", extra=extra)


@bp.after_request
def _challenge(response):
    """A 401 from the basic-auth route says which scheme it wants (RFC 9110)."""
    if response.status_code == 401 and request.endpoint == "webhooks.postmark_events":
        response.headers["WWW-Authenticate"] = postmark.CHALLENGE
    return response


def _settings(provider: str, workspace_id: uuid.UUID, *, unknown=Unauthorized, unconfigured=Unauthorized):
    """The workspace and its credentials for `provider`, or the error class given for each miss."""
    workspace = db.session.get(Workspace, workspace_id)
    settings = get_provider_settings(workspace, provider) if workspace is not None else None
    if settings is None:
        error = unknown if workspace is None else unconfigured
        _log_refusal(
            provider, workspace_id, error.status_code, "unknown workspace" if workspace is None else "no credentials"
        )
        raise error(REJECTED)
    return workspace, settings


def _ingest(workspace: Workspace, provider: str, parsed: Parsed):
    intake = ingest_provider_events(workspace, provider, parsed.events)
    data = {
        "received": parsed.received,
        "stored": intake.stored,
        "duplicates": intake.duplicates,
        "skipped": parsed.invalid + intake.skipped,
        "ignored": parsed.ignored,
    }
    if data["skipped"]:
        current_app.logger.info("webhook events skipped", extra={"provider": provider, **data})
    return jsonify({"success": True, "data": data})


@bp.post("/sendgrid/<uuid:workspace_id>")
def sendgrid_events(workspace_id: uuid.UUID):
    """SendGrid's Signed Event Webhook: a JSON array of events."""
    body = request.get_data(cache=True)
    workspace, settings = _settings("sendgrid", workspace_id)
    sendgrid.verify(settings["public_key"], request.headers, body)
    return _ingest(workspace, "sendgrid", sendgrid.parse(parse_json(body)))


@bp.post("/mailgun/<uuid:workspace_id>")
def mailgun_events(workspace_id: uuid.UUID):
    """One Mailgun event, signed inside the body."""
    body = request.get_data(cache=True)
    workspace, settings = _settings("mailgun", workspace_id, unknown=mailgun.Rejected)
    payload = parse_json(body, mailgun.Rejected)
    mailgun.verify(settings["signing_key"], payload, tolerance=current_app.config["WEBHOOK_TOLERANCE_SECONDS"])
    return _ingest(workspace, "mailgun", mailgun.parse(payload))


@bp.post("/postmark/<uuid:workspace_id>")
def postmark_events(workspace_id: uuid.UUID):
    """One Postmark record, authenticated with basic auth."""
    body = request.get_data(cache=True)
    workspace, settings = _settings("postmark", workspace_id)
    postmark.verify(settings, request.headers)
    return _ingest(workspace, "postmark", postmark.parse(parse_json(body)))

"""Event intake in Drumbeat's own format: one event, or a batch of up to 1,000."""

import uuid

from flask import current_app, g, request
from pydantic import TypeAdapter, ValidationError

from webapp.api import PUBLIC_ENDPOINTS, bp
from webapp.api.base import operation, parse_json_body, validation_failed
from webapp.errors import Unauthorized, ValidationFailed
from webapp.extensions import db, limiter
from webapp.models import Workspace
from webapp.models.workspace import new_webhook_secret
from webapp.schemas.events import MAX_BATCH, EventBatchIn, EventIn, WebhookResultOut
from webapp.services.events import ingest_events
from webapp.webhooks import standard

TAG = "events"
_ITEMS = TypeAdapter(list[EventIn])
PROVIDER = "drumbeat"


def _events_from_body() -> list[EventIn]:
    data = parse_json_body()
    if not isinstance(data, dict):
        raise ValidationFailed(f'Send one event object, or {{"events": [...]}} with up to {MAX_BATCH} events.')
    if "events" not in data:
        try:
            return [EventIn.model_validate(data)]
        except ValidationError as exc:
            raise validation_failed(exc) from exc
    try:
        batch = EventBatchIn.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
    try:
        return _ITEMS.validate_python(batch.events)
    except ValidationError as exc:
        raise validation_failed(exc, prefix="events") from exc


def _webhook_limit() -> str:
    return current_app.config["RATELIMIT_WEBHOOK"]


@operation(
    bp,
    "POST",
    "/events/webhook",
    summary="Receive events (API key)",
    tag=TAG,
    body=None,
    raw_body=True,
    response=WebhookResultOut,
)
@limiter.limit(_webhook_limit, override_defaults=True)
def receive_events():
    """One event in Drumbeat's format, or `{"events": [...]}` with up to 1,000. Events are
    deduplicated by `provider_event_id`; events that match no enrollment are reported in
    `skipped` and not stored."""
    return ingest_events(g.workspace, _events_from_body(), provider=PROVIDER)


@operation(
    bp,
    "POST",
    "/events/webhook/<uuid:workspace_id>",
    summary="Receive signed events (Standard Webhooks)",
    tag=TAG,
    body=None,
    raw_body=True,
    response=WebhookResultOut,
    auth=False,
    extra_errors=(401,),
)
@limiter.limit(_webhook_limit, override_defaults=True)
def receive_signed_events(workspace_id: uuid.UUID):
    """The same body, signed with the workspace's `whsec_` secret per the Standard Webhooks
    spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Verified on the raw body;
    a bad or stale signature is a 401."""
    workspace = db.session.get(Workspace, workspace_id)
    # An unknown workspace is checked against a throwaway secret: the answer (missing headers,
    # stale or invalid signature) is the one a real workspace would give, so it tells nothing.
    standard.verify(
        workspace.webhook_secret if workspace else new_webhook_secret(),
        request.headers,
        request.get_data(cache=True),
        tolerance=current_app.config["WEBHOOK_TOLERANCE_SECONDS"],
    )
    if workspace is None:
        raise Unauthorized("Invalid webhook signature.")
    g.workspace = workspace
    return ingest_events(workspace, _events_from_body(), provider=PROVIDER)


PUBLIC_ENDPOINTS.add("api.receive_signed_events")

"""The JSON API under /api/campaigns/v2: API-key auth, no CSRF, rate-limited, JSON errors."""

from flask import Blueprint, current_app, g, jsonify

from webapp.errors import Unauthorized
from webapp.extensions import csrf, db, limiter
from webapp.models import Workspace
from webapp.ratelimit import presented_api_key
from webapp.services.api_keys import authenticate_api_key

bp = Blueprint("api", __name__, url_prefix="/api/campaigns/v2")
csrf.exempt(bp)
limiter.shared_limit(lambda: current_app.config["RATELIMIT_API"], scope="api")(bp)

PUBLIC_ENDPOINTS = {"api.openapi_json"}
MISSING_KEY = "Missing API key. Provide via Authorization: Bearer <key> or X-API-Key: <key> header"


@bp.before_request
def authenticate():
    from flask import request

    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    presented = presented_api_key()
    if not presented:
        raise Unauthorized(MISSING_KEY)
    api_key = authenticate_api_key(presented)
    if api_key is None:
        raise Unauthorized("Invalid or revoked API key.")
    g.api_key = api_key
    g.workspace = db.session.get(Workspace, api_key.workspace_id)
    return None


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document, generated from the schemas that validate requests."""
    from webapp.api.base import registry
    from webapp.api.openapi import build_spec

    spec = current_app.extensions.get("drumbeat_openapi")
    if spec is None:
        spec = build_spec(registry.operations, title="Drumbeat Campaign API", version="2.0.0")
        current_app.extensions["drumbeat_openapi"] = spec
    return jsonify(spec)


from webapp.api import (  # noqa: E402, F401
    campaign_steps,
    contacts,
    enrollments,
    events,
    exports,
    instances,
    mailboxes,
    readiness,
    replies,
    tasks,
    templates,
)

"""`/t/o/<token>` open pixel, `/t/c/<token>` click redirect, `/u/<token>` unsubscribe.

No session, no CSRF: the signed token is the credential. The unsubscribe GET only shows a
confirmation page (link scanners follow GETs); the POST unsubscribes, which is also what
mail clients send for RFC 8058 one-click (`List-Unsubscribe=One-Click`).
"""

import base64
import uuid

from flask import Blueprint, current_app, make_response, redirect, render_template

from webapp.engine import tracking
from webapp.extensions import csrf, limiter
from webapp.logging import mask_email
from webapp.services import tracking as tracking_service

bp = Blueprint("tracking", __name__)
csrf.exempt(bp)
limiter.limit(lambda: current_app.config["RATELIMIT_WEBHOOK"])(bp)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _read(kind: str, token: str) -> dict | None:
    try:
        return tracking.read_token(kind, token, current_app.config["SECRET_KEY"])
    except tracking.BadToken:
        return None


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@bp.get("/t/o/<token>")
def open_pixel(token: str):
    """A 1x1 GIF; counts an open when the token is valid. Never an error: it is an image."""
    payload = _read("open", token)
    if payload and (delivery_id := _uuid(payload.get("d"))):
        tracking_service.record_open(delivery_id)
    response = make_response(PIXEL)
    response.headers["Content-Type"] = "image/gif"
    response.headers["Cache-Control"] = "no-store, max-age=0"
    return response


@bp.get("/t/c/<token>")
def click(token: str):
    """Counts a click and redirects to the link the token was signed for (never another)."""
    payload = _read("click", token)
    url = (payload or {}).get("u", "")
    if not payload or not url.startswith(("https://", "http://")) or not (delivery_id := _uuid(payload.get("d"))):
        return render_template("tracking/invalid.html"), 400
    tracking_service.record_click(delivery_id, url)
    return redirect(url, code=302)


def _unsubscribe_target(token: str):
    payload = _read("unsubscribe", token)
    if not payload:
        return None
    workspace_id, enrollment_id = _uuid(payload.get("w")), _uuid(payload.get("e"))
    if not workspace_id or not enrollment_id:
        return None
    return workspace_id, enrollment_id


@bp.get("/u/<token>")
def unsubscribe_page(token: str):
    """A confirmation page with one button; visiting it changes nothing."""
    target = _unsubscribe_target(token)
    found = target and tracking_service.find_unsubscribe_target(*target)
    if not found:
        return render_template("tracking/invalid.html"), 404
    return render_template("tracking/unsubscribe.html", token=token, email=mask_email(found[2]))


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """Unsubscribes (one-click from the mail client, or the page's button). Idempotent."""
    target = _unsubscribe_target(token)
    if not target or not tracking_service.unsubscribe(*target, source="link"):
        return render_template("tracking/invalid.html"), 404
    return render_template("tracking/unsubscribed.html")

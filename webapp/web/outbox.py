"""The outbox: what the embedded transport "sent", newest first, and each message as it was built."""

import uuid

from flask import Blueprint, request

from webapp.htmx import render
from webapp.security import current_workspace, require_login
from webapp.services.outbox import get_outbox_message, list_outbox

bp = Blueprint("outbox", __name__)
bp.before_request(require_login)

PER_PAGE = 25


@bp.get("/outbox")
def index():
    """Messages kept by the outbox transport, newest first."""
    page = max(request.args.get("page", type=int) or 1, 1)
    messages, total = list_outbox(current_workspace(), page=page, limit=PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render("outbox/index.html", block="outbox_list", messages=messages, total=total, page=page, pages=pages)


@bp.get("/outbox/<uuid:message_id>")
def show(message_id: uuid.UUID):
    """One message: its headers, text part and HTML part (in a sandboxed frame)."""
    return render("outbox/show.html", parsed=get_outbox_message(current_workspace(), message_id))

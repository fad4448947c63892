"""The outbox: messages the embedded transport kept instead of sending, read back for the dashboard.

Read-only. Messages are parsed with the standard library (`email`, policy.default). The HTML part
is prepared for a preview that must not act like a mail client opening the message: no image
loads anything (so the open pixel is not fired) and links lead nowhere (so no click is counted).
"""

import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import Parser

import nh3
import sqlalchemy as sa

from webapp.errors import NotFound
from webapp.extensions import db
from webapp.models import OutboxMessage, Workspace
from webapp.services.lookups import paginate

_INERT = {("a", "href"), ("img", "src"), ("img", "srcset"), ("source", "src"), ("source", "srcset")}


@dataclass(frozen=True)
class ParsedMessage:
    message: OutboxMessage
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    raw: str


def list_outbox(workspace: Workspace, *, page: int = 1, limit: int = 25) -> tuple[list[OutboxMessage], int]:
    """One page of the workspace's outbox, newest first, and the total count."""
    query = (
        sa.select(OutboxMessage)
        .where(OutboxMessage.workspace_id == workspace.id)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    )
    return paginate(query, page=page, limit=limit)


def get_outbox_message(workspace: Workspace, message_id: uuid.UUID) -> ParsedMessage:
    """The message with its headers (decoded), text part and inert HTML part.

    Raises NotFound for an unknown id or another workspace's message.
    """
    message = db.session.scalar(
        sa.select(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.workspace_id == workspace.id)
    )
    if message is None:
        raise NotFound(f"Message {message_id} not found.")
    parsed = Parser(policy=policy.default).parsestr(message.raw)
    html = _part(parsed, "html")
    return ParsedMessage(
        message=message,
        headers=[(name, str(value)) for name, value in parsed.items()],
        text=_part(parsed, "plain"),
        html=inert_html(html) if html is not None else None,
        raw=message.raw,
    )


def inert_html(html: str) -> str:
    """`html` sanitized, without link targets or image sources: safe to show, and showing it
    fetches nothing (no tracking pixel, no remote image) and follows no link."""
    return nh3.clean(html, attribute_filter=lambda element, name, value: None if (element, name) in _INERT else value)


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        return None
    try:
        return body.get_content()
    except (LookupError, ValueError):
        # An unknown charset or a broken transfer encoding: show what can be decoded.
        payload = body.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")

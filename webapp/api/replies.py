"""The Inbox: what the mailboxes heard, and the lead status a person gives a reply."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.schemas.replies import ReplyOut, ReplyQuery, ReplyUpdate
from webapp.services import replies

TAG = "replies"


@operation(bp, "GET", "/replies", summary="List replies", tag=TAG, query=ReplyQuery, response=ReplyOut, paginated=True)
def list_replies(query: ReplyQuery):
    """Newest first, across campaigns: replies and out-of-office answers by default, with the
    contact, campaign and step they answer (null when they answer none of our sends)."""
    rows, total = replies.list_replies(
        g.workspace,
        kind=query.kind,
        lead_status=query.lead_status,
        instance_id=query.instance_id,
        matched=query.matched,
        page=query.page,
        limit=query.limit,
    )
    return Page([replies.view(row) for row in rows], total, query.page, query.limit)


@operation(bp, "GET", "/replies/<uuid:reply_id>", summary="Get a reply", tag=TAG, response=ReplyOut)
def get_reply(reply_id: uuid.UUID):
    return replies.view(replies.get_reply(g.workspace, reply_id))


@operation(
    bp,
    "PATCH",
    "/replies/<uuid:reply_id>",
    summary="Set a reply's lead status",
    tag=TAG,
    body=ReplyUpdate,
    response=ReplyOut,
)
def update_reply(reply_id: uuid.UUID, body: ReplyUpdate):
    """Interested, not interested, meeting booked or wrong person; the campaign's numbers count them."""
    return replies.view(replies.set_lead_status(g.workspace, reply_id, body.lead_status))

"""Mailboxes: the team's own accounts that campaigns send from and read replies in."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.models import Mailbox
from webapp.schemas.mailboxes import MailboxCheckIn, MailboxCheckOut, MailboxIn, MailboxOut, MailboxQuery, MailboxUpdate
from webapp.services import mailboxes

TAG = "mailboxes"


def _one(mailbox: Mailbox) -> dict:
    return mailboxes.view(mailbox, mailboxes.usage_today(g.workspace, [mailbox])[mailbox.id])


@operation(
    bp,
    "POST",
    "/mailboxes",
    summary="Add a mailbox",
    tag=TAG,
    body=MailboxIn,
    response=MailboxOut,
    status=201,
    extra_errors=(409,),
)
def create_mailbox(body: MailboxIn):
    """Passwords are write-only: stored encrypted, never returned (`has_password`). 409 when the
    workspace has a mailbox with that address."""
    return _one(mailboxes.create_mailbox(g.workspace, body))


@operation(
    bp, "GET", "/mailboxes", summary="List mailboxes", tag=TAG, query=MailboxQuery, response=MailboxOut, paginated=True
)
def list_mailboxes(query: MailboxQuery):
    """With today's usage against each one's cap."""
    items, total = mailboxes.list_mailboxes(g.workspace, state=query.state, page=query.page, limit=query.limit)
    usage = mailboxes.usage_today(g.workspace, items)
    return Page([mailboxes.view(m, usage[m.id]) for m in items], total, query.page, query.limit)


@operation(bp, "GET", "/mailboxes/<uuid:mailbox_id>", summary="Get a mailbox", tag=TAG, response=MailboxOut)
def get_mailbox(mailbox_id: uuid.UUID):
    return _one(mailboxes.get_mailbox(g.workspace, mailbox_id))


@operation(
    bp,
    "PATCH",
    "/mailboxes/<uuid:mailbox_id>",
    summary="Update a mailbox",
    tag=TAG,
    body=MailboxUpdate,
    response=MailboxOut,
    extra_errors=(409,),
)
def update_mailbox(mailbox_id: uuid.UUID, body: MailboxUpdate):
    """Only the fields given change; a password not given is kept. `state` pauses or resumes it."""
    return _one(mailboxes.update_mailbox(g.workspace, mailbox_id, body))


@operation(bp, "DELETE", "/mailboxes/<uuid:mailbox_id>", summary="Delete a mailbox", tag=TAG, extra_errors=(409,))
def delete_mailbox(mailbox_id: uuid.UUID):
    """409 while contacts of live campaigns get their messages from it: pause it instead."""
    mailboxes.delete_mailbox(g.workspace, mailbox_id)


@operation(
    bp,
    "POST",
    "/mailboxes/<uuid:mailbox_id>/check",
    summary="Check a mailbox's connections",
    tag=TAG,
    body=MailboxCheckIn,
    response=MailboxCheckOut,
)
def check_mailbox(mailbox_id: uuid.UUID, body: MailboxCheckIn):
    """Logs in to its SMTP (and IMAP) server as the worker would. `error` is one of
    "authentication failed", "TLS handshake failed", "could not connect", "timed out" (or, for
    IMAP, "folder not found")."""
    return mailboxes.check_mailbox(g.workspace, mailbox_id, servers=tuple(body.servers))

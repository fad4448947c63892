"""Contacts and their suppression status."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.schemas.contacts import ContactData, ContactOut, ContactQuery, ContactUpdate, SuppressionIn, SuppressionOut
from webapp.services import contacts, lifecycle

TAG = "contacts"


@operation(
    bp, "POST", "/contacts", summary="Create a contact", tag=TAG, body=ContactData, response=ContactOut, status=201
)
def create_contact(body: ContactData):
    """Emails are unique per workspace, compared case-insensitively (409 on a duplicate)."""
    return contacts.create_contact(g.workspace, body)


@operation(
    bp, "GET", "/contacts", summary="List contacts", tag=TAG, query=ContactQuery, response=ContactOut, paginated=True
)
def list_contacts(query: ContactQuery):
    items, total = contacts.list_contacts(
        g.workspace, search=query.search, status=query.status, page=query.page, limit=query.limit
    )
    return Page(items, total, query.page, query.limit)


@operation(bp, "GET", "/contacts/<uuid:contact_id>", summary="Get a contact", tag=TAG, response=ContactOut)
def get_contact(contact_id: uuid.UUID):
    return contacts.get_contact(g.workspace, contact_id)


@operation(
    bp,
    "PATCH",
    "/contacts/<uuid:contact_id>",
    summary="Update a contact",
    tag=TAG,
    body=ContactUpdate,
    response=ContactOut,
    extra_errors=(409,),
)
def update_contact(contact_id: uuid.UUID, body: ContactUpdate):
    return contacts.update_contact(g.workspace, contact_id, body)


@operation(bp, "DELETE", "/contacts/<uuid:contact_id>", summary="Delete a contact", tag=TAG, extra_errors=(409,))
def delete_contact(contact_id: uuid.UUID):
    """Suppressed contacts stay on the suppression list and cannot be deleted (409)."""
    contacts.delete_contact(g.workspace, contact_id)


@operation(
    bp,
    "GET",
    "/contacts/<uuid:contact_id>/suppression",
    summary="Get a contact's suppression status",
    tag=TAG,
    response=SuppressionOut,
)
def get_suppression(contact_id: uuid.UUID):
    return contacts.get_contact(g.workspace, contact_id)


@operation(
    bp,
    "PUT",
    "/contacts/<uuid:contact_id>/suppression",
    summary="Suppress or re-subscribe a contact",
    tag=TAG,
    body=SuppressionIn,
    response=SuppressionOut,
)
def set_suppression(contact_id: uuid.UUID, body: SuppressionIn):
    """Suppressing stops the contact's live enrollments in every campaign of the workspace."""
    return contacts.set_contact_status(
        g.workspace, contact_id, status=body.status, reason=body.reason, actor=lifecycle.Actor.API
    )

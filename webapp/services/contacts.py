"""Contacts and the workspace-wide suppression list (the contact's status)."""

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.errors import Conflict
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact, Workspace, utcnow
from webapp.models.enums import ContactStatus
from webapp.schemas.contacts import ContactData, ContactUpdate
from webapp.services import lifecycle
from webapp.services.bulk import one_of
from webapp.services.lookups import get_owned, like_pattern, paginate

# What stops a suppressed contact's live enrollments.
STOPPING_TRANSITION = {
    ContactStatus.UNSUBSCRIBED: "unsubscribe",
    ContactStatus.COMPLAINED: "unsubscribe",
    ContactStatus.BOUNCED: "bounce",
}


def contact_values(data: ContactData | ContactUpdate) -> dict:
    values = data.model_dump(exclude_unset=True)
    if "custom_fields" in values and values["custom_fields"] is None:
        values["custom_fields"] = {}
    return values


def create_contact(workspace: Workspace, data: ContactData) -> Contact:
    """A new subscribed contact; Conflict if the email is already in the workspace."""
    contact = Contact(workspace_id=workspace.id, **{"custom_fields": {}, **contact_values(data)})
    db.session.add(contact)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(f"A contact with email {data.email} already exists.") from exc
    return contact


def get_contact(workspace: Workspace, contact_id: uuid.UUID) -> Contact:
    return get_owned(Contact, workspace, contact_id)


def contact_matches(search: str) -> sa.ColumnElement[bool]:
    """Contacts whose email, first or last name, or company contains `search` (any case)."""
    pattern = like_pattern(search.strip().lower())
    return sa.or_(
        Contact.email.like(pattern, escape="\\"),
        sa.func.lower(Contact.first_name).like(pattern, escape="\\"),
        sa.func.lower(Contact.last_name).like(pattern, escape="\\"),
        sa.func.lower(Contact.company).like(pattern, escape="\\"),
    )


def contact_filter(
    workspace: Workspace, *, search: str | None = None, status: str | None = None
) -> list[sa.ColumnElement[bool]]:
    """The conditions of the contacts list's filters, shared by the list and its CSV export."""
    conditions = [Contact.workspace_id == workspace.id]
    if status:
        conditions.append(Contact.status == status)
    if search:
        conditions.append(contact_matches(search))
    return conditions


def list_contacts(
    workspace: Workspace, *, search: str | None = None, status: str | None = None, page: int = 1, limit: int = 20
) -> tuple[list[Contact], int]:
    query = sa.select(Contact).where(*contact_filter(workspace, search=search, status=status))
    return paginate(query.order_by(Contact.created_at.desc(), Contact.id), page=page, limit=limit)


def update_contact(workspace: Workspace, contact_id: uuid.UUID, data: ContactUpdate) -> Contact:
    contact = get_owned(Contact, workspace, contact_id)
    for field, value in contact_values(data).items():
        if field == "email" and value is None:
            continue
        setattr(contact, field, value)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(f"A contact with email {data.email} already exists.") from exc
    return contact


def delete_contact(workspace: Workspace, contact_id: uuid.UUID) -> None:
    """Delete a contact and its enrollments. Suppressed contacts stay, so they cannot be re-imported."""
    contact = get_owned(Contact, workspace, contact_id)
    if contact.status != ContactStatus.SUBSCRIBED:
        raise Conflict(f"Contact is {contact.status} and stays on the suppression list; it cannot be deleted.")
    db.session.delete(contact)
    db.session.commit()


def set_contact_status(
    workspace: Workspace,
    contact_id: uuid.UUID,
    *,
    status: str,
    reason: str | None,
    actor: lifecycle.Actor = lifecycle.Actor.PERSON,
) -> Contact:
    """Suppress (unsubscribed, bounced, complained) or re-subscribe a contact.

    Suppressing stops the contact's live enrollments in every campaign of the workspace.
    """
    contact = get_owned(Contact, workspace, contact_id)
    if status == ContactStatus.SUBSCRIBED:
        contact.status, contact.status_reason = status, reason
    else:
        suppress_contacts(
            workspace, [contact.id], status=status, reason=reason or f"marked {status} manually", actor=actor
        )
    db.session.commit()
    return contact


def suppress_contacts(
    workspace: Workspace, contact_ids: Iterable[uuid.UUID], *, status: str, reason: str, actor: lifecycle.Actor
) -> None:
    """Mark contacts suppressed and stop their live enrollments (through the lifecycle, as
    `actor`). Flushes; the caller commits.

    A contact already suppressed keeps its first status (hard states are sticky).
    """
    now = utcnow()
    for chunk in _chunks(list(set(contact_ids))):
        db.session.execute(
            sa.update(Contact)
            .where(
                Contact.workspace_id == workspace.id,
                one_of(Contact.id, chunk),
                Contact.status == ContactStatus.SUBSCRIBED,
            )
            .values(status=status, status_reason=reason[:255], updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
        lifecycle.change(
            STOPPING_TRANSITION[status],
            actor=actor,
            where=[CampaignEnrollment.workspace_id == workspace.id, one_of(CampaignEnrollment.contact_id, chunk)],
            reason=reason,
            now=now,
        )


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start : start + size]

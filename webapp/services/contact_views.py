"""Read-only views of contacts for the dashboard: a contact's campaigns, the suppression list,
a lookup by email. Mutations stay in `services.contacts`."""

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Contact, Workspace
from webapp.models.enums import ContactStatus
from webapp.schemas.common import normalize_email
from webapp.services.contacts import contact_matches
from webapp.services.lookups import get_owned, paginate


@dataclass
class ContactEnrollment:
    enrollment: CampaignEnrollment
    instance_id: uuid.UUID
    instance_name: str
    instance_status: str


def list_contact_enrollments(workspace: Workspace, contact_id: uuid.UUID) -> list[ContactEnrollment]:
    """The contact's enrollments in every campaign of the workspace, newest first.

    Raises NotFound when the contact is not in the workspace.
    """
    contact = get_owned(Contact, workspace, contact_id)
    rows = db.session.execute(
        sa.select(CampaignEnrollment, CampaignInstance.id, CampaignInstance.name, CampaignInstance.status)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .where(CampaignEnrollment.workspace_id == workspace.id, CampaignEnrollment.contact_id == contact.id)
        .order_by(CampaignEnrollment.enrolled_at.desc(), CampaignEnrollment.id)
    )
    return [ContactEnrollment(enrollment, instance_id, name, status) for enrollment, instance_id, name, status in rows]


def list_suppressed_contacts(
    workspace: Workspace, *, search: str | None = None, status: str | None = None, page: int = 1, limit: int = 20
) -> tuple[list[Contact], int]:
    """Contacts on the suppression list (any status but subscribed), most recently changed first."""
    query = sa.select(Contact).where(Contact.workspace_id == workspace.id, Contact.status != ContactStatus.SUBSCRIBED)
    if status:
        query = query.where(Contact.status == status)
    if search:
        query = query.where(contact_matches(search))
    return paginate(query.order_by(Contact.updated_at.desc(), Contact.id), page=page, limit=limit)


def find_contact_by_email(workspace: Workspace, email: str) -> Contact | None:
    """The workspace's contact with this address (case-insensitive), or None.

    Raises ValueError when `email` is not a valid address.
    """
    return db.session.scalar(
        sa.select(Contact).where(Contact.workspace_id == workspace.id, Contact.email == normalize_email(email))
    )

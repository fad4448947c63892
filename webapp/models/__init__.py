"""Every model, imported here so Alembic and the tests see the whole schema."""

from webapp.models.api_key import ApiKey
from webapp.models.base import NIL_UUID, Base, utcnow
from webapp.models.contact import Contact
from webapp.models.contact_import import ContactImport
from webapp.models.delivery import Delivery, OutboxMessage
from webapp.models.enrollment import CampaignEnrollment
from webapp.models.event import CampaignEvent, EventFirst, EventRollup
from webapp.models.idempotency import IdempotencyKey
from webapp.models.inbound import InboundMessage
from webapp.models.instance import CampaignInstance
from webapp.models.mailbox import Mailbox
from webapp.models.task import Task
from webapp.models.template import CampaignTemplate, SequenceStep
from webapp.models.user import User
from webapp.models.workspace import Workspace

__all__ = [
    "NIL_UUID",
    "ApiKey",
    "Base",
    "CampaignEnrollment",
    "CampaignEvent",
    "CampaignInstance",
    "CampaignTemplate",
    "Contact",
    "ContactImport",
    "Delivery",
    "EventFirst",
    "EventRollup",
    "IdempotencyKey",
    "InboundMessage",
    "Mailbox",
    "OutboxMessage",
    "SequenceStep",
    "Task",
    "User",
    "Workspace",
    "utcnow",
]

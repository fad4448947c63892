"""Row builders for service-level tests: factory_boy factories that write rows directly, so a
rule can be tested without going through the API. Use them inside an app context (the `db`
fixture); each `create()` flushes and commits.

    campaign = builders.campaign(steps=2, status="active", settings={"daily_cap": 5})
    enrollment = builders.EnrollmentFactory(instance=campaign, next_action_at=now)
"""

from datetime import datetime

import factory
from factory.alchemy import SQLAlchemyModelFactory

from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    CampaignTemplate,
    Contact,
    InboundMessage,
    Mailbox,
    SequenceStep,
    Task,
    Workspace,
    utcnow,
)
from webapp.models.enums import Channel, EnrollmentStatus, InstanceStatus, StepAction, TaskStatus, TemplateType
from webapp.services import lifecycle
from webapp.services.sending.claim import claim_due_work
from webapp.services.sending.compose import prepare_deliveries
from webapp.services.sending.record import Marker


class _Factory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731 (the app context's session)
        sqlalchemy_session_persistence = "commit"


class WorkspaceFactory(_Factory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    settings = factory.LazyFunction(dict)


class ContactFactory(_Factory):
    class Meta:
        model = Contact

    workspace_id = factory.LazyFunction(lambda: WorkspaceFactory().id)
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    first_name = factory.Sequence(lambda n: f"Person{n}")
    company = "Initech"
    custom_fields = factory.LazyFunction(dict)


class TemplateFactory(_Factory):
    class Meta:
        model = CampaignTemplate

    workspace_id = factory.LazyFunction(lambda: WorkspaceFactory().id)
    name = factory.Sequence(lambda n: f"Sequence {n}")
    type = TemplateType.EMAIL
    settings = factory.LazyFunction(dict)


class StepFactory(_Factory):
    class Meta:
        model = SequenceStep

    template_id = factory.LazyFunction(lambda: TemplateFactory().id)
    position = factory.Sequence(lambda n: n + 1)
    channel = Channel.EMAIL
    action = StepAction.EMAIL
    delay_days = 0
    delay_hours = 0
    subject = factory.LazyAttribute(lambda step: f"Step {step.position} for {{{{ first_name }}}}")
    body = factory.LazyAttribute(lambda step: f"Hello {{{{ first_name }}}}, step {step.position}.")


class InstanceFactory(_Factory):
    class Meta:
        model = CampaignInstance

    workspace_id = factory.LazyFunction(lambda: WorkspaceFactory().id)
    template_id = factory.LazyAttribute(lambda instance: TemplateFactory(workspace_id=instance.workspace_id).id)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    status = InstanceStatus.DRAFT
    settings = factory.LazyFunction(dict)


class EnrollmentFactory(_Factory):
    """An enrollment of a new contact in `instance` (a CampaignInstance, required)."""

    class Meta:
        model = CampaignEnrollment
        exclude = ("instance", "contact")

    instance = None
    workspace_id = factory.SelfAttribute("instance.workspace_id")
    instance_id = factory.SelfAttribute("instance.id")
    contact = factory.LazyAttribute(lambda e: ContactFactory(workspace_id=e.instance.workspace_id))
    contact_id = factory.SelfAttribute("contact.id")
    status = factory.LazyAttribute(lambda e: lifecycle.initial_status(e.instance.status))
    current_step = 0
    next_action_at = factory.LazyAttribute(lambda e: utcnow() if e.status == EnrollmentStatus.ACTIVE else None)


class TaskFactory(_Factory):
    """An open task of `enrollment` (a CampaignEnrollment, required) for `step` (a SequenceStep, required)."""

    class Meta:
        model = Task
        exclude = ("enrollment", "step")

    enrollment = None
    step = None
    workspace_id = factory.SelfAttribute("enrollment.workspace_id")
    enrollment_id = factory.SelfAttribute("enrollment.id")
    step_id = factory.SelfAttribute("step.id")
    type = factory.SelfAttribute("step.action")
    due_at = factory.LazyFunction(utcnow)
    status = TaskStatus.OPEN


def campaign(
    *,
    steps: int = 1,
    status: str = InstanceStatus.ACTIVE,
    settings: dict | None = None,
    template_settings: dict | None = None,
    workspace: Workspace | None = None,
    delays: tuple[int, ...] = (),
) -> CampaignInstance:
    """A campaign (in `status`) of a new template with `steps` email steps; step n waits
    `delays[n - 1]` days (0 when not given)."""
    workspace = workspace or WorkspaceFactory()
    template = TemplateFactory(workspace_id=workspace.id, settings=template_settings or {})
    for position in range(1, steps + 1):
        delay = delays[position - 1] if position <= len(delays) else 0
        StepFactory(template_id=template.id, position=position, delay_days=delay)
    return InstanceFactory(
        workspace_id=workspace.id,
        template_id=template.id,
        status=status,
        settings=settings or {},
        started_at=utcnow() if status != InstanceStatus.DRAFT else None,
    )


def in_flight(now: datetime) -> list:
    """Claim what is due at `now` and mark each claimed message `sending`, as a worker does just
    before its SMTP transaction, then stop there (as if the worker died mid-send). Returns the
    prepared messages; their leases end WORKER_LEASE_SECONDS after `now`."""
    claimed = claim_due_work(now)
    prepared = prepare_deliveries(claimed.deliveries, claimed.drafts)
    marker = Marker()
    try:
        for item in prepared:
            assert marker.step(None, item, now)
    finally:
        marker.close()
    return prepared


def workspace_of(row) -> Workspace:
    return db.session.get(Workspace, row.workspace_id)


def contact_of(enrollment) -> Contact:
    return db.session.get(Contact, enrollment.contact_id)


def fresh(model, row_id):
    """`model`'s row `row_id` as stored now (not as the session last saw it)."""
    return db.session.get(model, row_id, populate_existing=True)


def inbound_message(mailbox_id, *, uid: int, enrollment=None, **fields) -> InboundMessage:
    """A message as the mailbox reader stores it, in `mailbox_id`'s workspace; matched to
    `enrollment` when given. Commits."""
    mailbox = db.session.get(Mailbox, mailbox_id)
    values = {
        "kind": "reply",
        "from_email": "someone@example.com",
        "subject": "Re: Hello",
        "snippet": "Sounds good",
        "received_at": utcnow(),
        **fields,
    }
    row = InboundMessage(
        workspace_id=mailbox.workspace_id,
        mailbox_id=mailbox.id,
        uidvalidity=1,
        uid=uid,
        enrollment_id=enrollment.id if enrollment else None,
        contact_id=enrollment.contact_id if enrollment else None,
        **values,
    )
    db.session.add(row)
    db.session.commit()
    return row

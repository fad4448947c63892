"""Test sends: one email step of a campaign, rendered for a contact and sent to a person on the team.

The message is built by the one composer the worker uses (services/sending/compose.py) and goes
through the campaign's sender: the mailbox the contact gets (or the campaign's first active one),
else the default relay. It is a test, and nothing counts it: no Delivery row, no event, no change
to any enrollment; tracking is off, its unsubscribe link names no enrollment, and its subject
starts with `[Test]`. With MAIL_TRANSPORT=outbox it is kept in the Outbox, like every message.
"""

import dataclasses
import logging
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from webapp.crypto import SecretUnreadable
from webapp.engine import mailer, render
from webapp.errors import BadGateway, Conflict, NotFound, Unprocessable
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    Contact,
    Mailbox,
    OutboxMessage,
    SequenceStep,
    User,
    Workspace,
    utcnow,
)
from webapp.models.enums import Channel, MailboxState
from webapp.models.template import in_thread
from webapp.services import mailboxes
from webapp.services.lookups import get_owned
from webapp.services.sending import compose
from webapp.services.sending import settings as sending_settings

log = logging.getLogger("drumbeat.test_sends")
TEST_PREFIX = "[Test] "


@dataclass(frozen=True)
class SampleContact:
    """Who a step is rendered for when the campaign has nobody enrolled yet."""

    email: str = "ada@example.com"
    first_name: str | None = "Ada"
    last_name: str | None = "Lovelace"
    company: str | None = "Analytical Engines"
    title: str | None = "Founder"
    linkedin_url: str | None = None
    timezone: str | None = None
    custom_fields: dict | None = None


SAMPLE = SampleContact()


@dataclass
class TestSend:
    to: str
    sender: str
    subject: str
    step: int
    contact_email: str | None  # None: the sample contact
    stored_in_outbox: bool


def user_email(user_id: uuid.UUID | None) -> str | None:
    """The address of a user (an API key's), to send tests to by default."""
    return db.session.scalar(sa.select(User.email).where(User.id == user_id)) if user_id else None


def email_steps(workspace: Workspace, instance_id: uuid.UUID) -> list[SequenceStep]:
    """The campaign's email steps, in order: what a test send may choose from."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    return list(
        db.session.scalars(
            sa.select(SequenceStep)
            .where(SequenceStep.template_id == instance.template_id, SequenceStep.channel == Channel.EMAIL)
            .order_by(SequenceStep.position)
        )
    )


def send_test_email(
    workspace: Workspace,
    instance_id: uuid.UUID,
    *,
    to: str,
    step_id: uuid.UUID | None = None,
    position: int | None = None,
    contact_id: uuid.UUID | None = None,
) -> TestSend:
    """Render the campaign's email step (`step_id`, or the step at `position`) for `contact_id`
    (else the first contact enrolled, else a sample contact) and send it to `to`, marked as a test.

    Raises NotFound (step, contact or campaign not in the workspace), Unprocessable (a LinkedIn
    step, or a message that cannot be built: a field with no value and no default...), Conflict
    (no sender to send from) and BadGateway when the mail server refuses or cannot be reached.
    """
    instance = get_owned(CampaignInstance, workspace, instance_id)
    step = _step(instance, step_id, position)
    contact, enrollment = _contact(workspace, instance, contact_id)
    try:
        settings = sending_settings.for_instance(instance, workspace)
    except sending_settings.InvalidSettings as exc:
        raise Conflict(f"The campaign's settings are invalid: {exc}.") from None
    mailbox = _mailbox(workspace, settings, enrollment)
    if mailbox is not None:
        settings = settings.from_mailbox(mailbox)
    # A test is never tracked: an open or a click of it must not count anywhere.
    settings = dataclasses.replace(settings, values={**settings.values, "track_opens": False, "track_clicks": False})
    message, message_id, sender, subject = _compose(workspace, step, contact, settings)
    stores = _stores_messages()
    transport = _transport(mailbox, stores)
    result = TestSend(to, sender, subject, step.position, None if contact is SAMPLE else contact.email, stores)
    workspace_id, instance_ref = workspace.id, str(instance.id)
    db.session.rollback()  # no transaction stays open during the SMTP conversation
    try:
        transport.send(sender, [to], message, message_id=message_id)
    except mailer.SendError as exc:
        log.info("test send refused", extra={"instance_id": instance_ref, "error": str(exc)[:200]})
        raise BadGateway(f"The mail server did not take the test message: {exc}") from None
    except (mailer.MessageError, OSError) as exc:
        raise BadGateway(f"The test message could not be sent: {exc}") from None
    finally:
        transport.close()
    if stores:
        db.session.add(
            OutboxMessage(
                workspace_id=workspace_id,
                delivery_id=None,
                message_id=message_id,
                from_email=sender,
                to_email=to,
                subject=subject,
                raw=message.decode("utf-8", "replace"),
                created_at=utcnow(),
            )
        )
        db.session.commit()
    return result


def _step(instance: CampaignInstance, step_id: uuid.UUID | None, position: int | None) -> SequenceStep:
    query = sa.select(SequenceStep).where(SequenceStep.template_id == instance.template_id)
    if step_id is not None:
        query = query.where(SequenceStep.id == step_id)
    else:
        query = query.where(SequenceStep.position == position)
    step = db.session.scalar(query)
    if step is None:
        raise NotFound(f"Step {step_id or position} not found in this campaign.")
    if step.channel != Channel.EMAIL:
        raise Unprocessable(
            f"Step {step.position} is a LinkedIn step: only email steps can be sent as a test.",
            details=[{"field": "step", "message": "not an email step"}],
        )
    return step


def _contact(workspace: Workspace, instance: CampaignInstance, contact_id: uuid.UUID | None):
    """(the contact, its enrollment in the campaign or None); the sample contact when nobody is enrolled."""
    if contact_id is not None:
        contact = get_owned(Contact, workspace, contact_id)
        enrollment = db.session.scalar(
            sa.select(CampaignEnrollment).where(
                CampaignEnrollment.instance_id == instance.id, CampaignEnrollment.contact_id == contact.id
            )
        )
        return contact, enrollment
    row = db.session.execute(
        sa.select(Contact, CampaignEnrollment)
        .join(CampaignEnrollment, CampaignEnrollment.contact_id == Contact.id)
        .where(CampaignEnrollment.instance_id == instance.id)
        .order_by(CampaignEnrollment.enrolled_at, Contact.email)  # a bulk enrollment shares one time
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else (SAMPLE, None)


def _mailbox(workspace: Workspace, settings: sending_settings.Effective, enrollment) -> Mailbox | None:
    """The mailbox a send to this contact comes from: the one it got, else the campaign's first
    active one (by name); None when the campaign sends from the default sender."""
    wanted = settings.mailbox_ids
    if not wanted:
        return None
    found = list(
        db.session.scalars(
            sa.select(Mailbox)
            .where(Mailbox.workspace_id == workspace.id, Mailbox.id.in_(wanted))
            .order_by(Mailbox.name, Mailbox.id)
        )
    )
    for mailbox in found:
        if enrollment is not None and mailbox.id == enrollment.mailbox_id:
            return mailbox
    for mailbox in found:
        if mailbox.state == MailboxState.ACTIVE:
            return mailbox
    raise Conflict("None of the campaign's mailboxes is active: fix or resume one in Mailboxes first.")


def _compose(workspace: Workspace, step: SequenceStep, contact, settings) -> tuple[bytes, str, str, str]:
    """The message as the worker would build it, its subject marked as a test (a step in the
    thread of an earlier email gets `Re:` and that email's subject)."""
    subject = step.subject or ""
    if in_thread(step):
        subject = compose.reply_subject(_earlier_subject(step) or "")
    draft = compose.Draft(
        id=uuid.uuid4(),  # no Delivery has it: provider events and links name nothing
        workspace_id=workspace.id,
        enrollment_id=uuid.uuid4(),  # its unsubscribe link unsubscribes nobody
        step_id=step.id,
        instance_id=uuid.uuid4(),
        template_id=step.template_id,
        step_position=step.position,
        claimed_until=utcnow(),
        subject=TEST_PREFIX + subject,
        body=step.body,
        contact_id=getattr(contact, "id", None) or uuid.uuid4(),
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        company=contact.company,
        title=contact.title,
        linkedin_url=contact.linkedin_url,
        timezone=contact.timezone,
        custom_fields=contact.custom_fields,
        settings=settings,
    )
    who = "the sample contact" if contact is SAMPLE else contact.email
    try:
        message, message_id, sender, subject, _ = compose.compose(draft)
    except render.UnresolvedVariable as exc:
        raise Unprocessable(
            f"Step {step.position} cannot be built for {who}: {exc.message}.",
            details=[{"field": "contact_id", "message": "missing values", "variables": list(exc.names)}],
        ) from None
    except (render.TemplateError, mailer.MessageError) as exc:
        raise Unprocessable(f"Step {step.position} cannot be built for {who}: {exc}.") from None
    return message, message_id, sender, subject


def _earlier_subject(step: SequenceStep) -> str | None:
    """The subject of the email a threaded step answers: the last earlier email step with one."""
    return db.session.scalar(
        sa.select(SequenceStep.subject)
        .where(
            SequenceStep.template_id == step.template_id,
            SequenceStep.position < step.position,
            SequenceStep.channel == Channel.EMAIL,
            sa.func.length(sa.func.trim(sa.func.coalesce(SequenceStep.subject, ""))) > 0,
        )
        .order_by(SequenceStep.position.desc())
        .limit(1)
    )


def _stores_messages() -> bool:
    return str(current_app.config.get("MAIL_TRANSPORT") or "outbox").strip().lower() == "outbox"


def _transport(mailbox: Mailbox | None, stores: bool):
    """The worker's transport for this sender: the outbox, the mailbox's SMTP login, or the relay."""
    if stores:
        return mailer.OutboxTransport([])
    if mailbox is None:
        try:
            return mailer.transport_from_config(current_app.config)
        except ValueError as exc:
            raise Conflict(f"The mail settings are invalid: {exc}.") from None
    try:
        return mailboxes.transport_for(mailbox)
    except SecretUnreadable as exc:
        raise Conflict(f"The mailbox's password cannot be read: {exc}") from None

"""Composing messages: one render context and one composer for the worker, the dashboard's
previews (of an email step, of what a contact would get) and the LinkedIn task messages."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from webapp.engine import mailer, render, tracking
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Contact, Delivery, Mailbox, SequenceStep
from webapp.models.enums import DeliveryStatus
from webapp.models.template import in_thread
from webapp.services import lifecycle
from webapp.services.bulk import one_of
from webapp.services.sending.settings import Effective, SettingsCache

# The contact's fields a message uses, as the claim and `_drafts` read them.
CONTACT_COLUMNS = (
    Contact.email,
    Contact.first_name,
    Contact.last_name,
    Contact.company,
    Contact.title,
    Contact.linkedin_url,
    Contact.timezone,
    Contact.custom_fields,
)


@dataclass(slots=True)
class Draft:
    """What composing a claimed delivery's message needs: the delivery's ids and lease, the
    step's subject and body, the contact's fields and the campaign's effective settings."""

    id: uuid.UUID  # the delivery's
    workspace_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: uuid.UUID
    instance_id: uuid.UUID
    template_id: uuid.UUID
    step_position: int
    claimed_until: datetime
    subject: str | None
    body: str | None
    contact_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    linkedin_url: str | None
    timezone: str | None
    custom_fields: dict | None
    settings: Effective
    threaded: bool = False  # in the thread of the contact's previous email
    previous: "Previous | None" = None


@dataclass(frozen=True, slots=True)
class Previous:
    """The last email the contact got in this campaign: what a follow-up in its thread answers."""

    message_id: str
    subject: str
    references: str  # its References chain, itself last


@dataclass
class Prepared:
    """A claimed delivery, rendered and built, ready for the transport (or with the `problem`
    that keeps it from being sent)."""

    delivery_id: uuid.UUID
    workspace_id: uuid.UUID
    enrollment_id: uuid.UUID
    instance_id: uuid.UUID
    template_id: uuid.UUID
    step_id: uuid.UUID
    step_position: int
    contact_id: uuid.UUID
    recipient: str
    claimed_until: datetime
    settings: Effective
    contact_timezone: str | None = None
    sender: str = ""
    subject: str = ""
    message: bytes = b""
    message_id: str = ""
    references: str = ""  # the thread's Message-IDs up to and including this message's
    problem: str | None = None

    @property
    def mailbox_id(self) -> uuid.UUID | None:
        return self.settings.sender.mailbox_id


def public_url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def unsubscribe_url(workspace_id: uuid.UUID, enrollment_id: uuid.UUID) -> str:
    token = tracking.make_token(
        "unsubscribe", {"w": str(workspace_id), "e": str(enrollment_id)}, current_app.config["SECRET_KEY"]
    )
    return public_url(f"/u/{token}")


def provider_headers(delivery_id: uuid.UUID) -> dict[str, str]:
    """Headers that make the providers' webhooks name our delivery (see webapp/webhooks)."""
    value = str(delivery_id)
    tag = json.dumps({"drumbeat_delivery_id": value}, separators=(",", ":"))
    return {
        "X-Drumbeat-Delivery-Id": value,
        "X-SMTPAPI": '{"unique_args":' + tag + "}",
        "X-Mailgun-Variables": tag,
        "X-PM-Metadata-drumbeat_delivery_id": value,
    }


def context(contact, settings: Effective | None, *, unsubscribe: str) -> dict:
    """The variables a message may use, for `contact` (a Contact or anything with its fields)
    sent under `settings` (None: no sender name)."""
    sender_name = settings.sender.name if settings is not None else None
    return render.build_context(contact, sender_name=sender_name or None, unsubscribe_url=unsubscribe)


def preview_email(subject: str, body: str, contact, settings: Effective | None) -> render.Preview:
    """An email step as `contact` would get it under `settings`, unresolved fields marked.
    Raises render.TemplateError for an invalid template."""
    return render.preview(subject, body, context(contact, settings, unsubscribe=public_url("/u/preview")))


def task_message(body: str | None, contact, settings: Effective | None) -> str | None:
    """A LinkedIn step's message with the contact's fields filled in; unresolved fields stay
    visible as written (`{{ first_name }}`), so a person sees what to fill in."""
    if not body:
        return None
    try:
        return render.preview("", body, context(contact, settings, unsubscribe=""), unsubscribe_footer=None).text
    except render.TemplateError:
        return body


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, without stacking prefixes."""
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def compose(draft: Draft) -> tuple[bytes, str, str, str, str]:
    """Render and build one message: (bytes, Message-ID, from address, subject, References chain).

    A threaded step answers the contact's previous email: `Re:` its subject, In-Reply-To and
    References pointing at it. Raises render.UnresolvedVariable when a variable has no value and
    no default, and render.RenderError for a threaded step without an earlier email to answer.
    """
    settings = draft.settings
    sender = settings.sender
    unsubscribe = unsubscribe_url(draft.workspace_id, draft.enrollment_id)
    body = draft.body or ""
    if settings.signature:
        body = f"{body}\n\n{settings.signature}"
    subject, headers = draft.subject or "", provider_headers(draft.id)
    if draft.threaded and draft.previous is not None:
        subject = ""
        headers = {**headers, "In-Reply-To": draft.previous.message_id, "References": draft.previous.references}
    rendered = render.render_message(subject, body, context(draft, settings, unsubscribe=unsubscribe))
    subject = reply_subject(draft.previous.subject) if draft.threaded and draft.previous else rendered.subject
    if not subject.strip():
        raise render.RenderError("the step has no subject and the contact got no earlier email to reply to")
    html = rendered.html
    secret = current_app.config["SECRET_KEY"]
    if settings.track_clicks:
        html = tracking.rewrite_links(
            html,
            lambda url: public_url("/t/c/" + tracking.make_token("click", {"d": str(draft.id), "u": url}, secret)),
            keep={unsubscribe},
        )
    if settings.track_opens:
        html += tracking.pixel_html(public_url("/t/o/" + tracking.make_token("open", {"d": str(draft.id)}, secret)))
    message_id = mailer.make_message_id(draft.id, sender.domain)
    message = mailer.build_message(
        from_addr=(sender.name, sender.address),
        to_addr=draft.email,
        subject=subject,
        text=rendered.text,
        html=html,
        message_id=message_id,
        unsubscribe_url=unsubscribe,
        headers=headers,
    )
    references = f"{draft.previous.references} {message_id}" if draft.threaded and draft.previous else message_id
    return message, message_id, sender.address, subject, references


def previous_emails(enrollment_ids: set[uuid.UUID]) -> dict[uuid.UUID, Previous]:
    """Each enrollment's last email on record as sent (for follow-ups in its thread), in one query."""
    if not enrollment_ids:
        return {}
    rows = db.session.execute(
        sa.select(Delivery.enrollment_id, Delivery.message_id, Delivery.subject, Delivery.thread_references)
        .where(
            one_of(Delivery.enrollment_id, list(enrollment_ids)),
            Delivery.status == DeliveryStatus.SENT,
            Delivery.message_id.is_not(None),
            Delivery.subject.is_not(None),
        )
        .order_by(Delivery.sent_at)
    ).all()
    found = {}
    for enrollment_id, message_id, subject, references in rows:  # the latest wins
        found[enrollment_id] = Previous(message_id, subject, references or message_id)
    return found


# A claimed delivery's `Draft`, as plain columns (named as its fields).
_DRAFT_COLUMNS = (
    Delivery.id,
    Delivery.workspace_id,
    Delivery.enrollment_id,
    Delivery.step_id,
    CampaignEnrollment.instance_id,
    CampaignInstance.template_id,
    SequenceStep.position.label("step_position"),
    Delivery.claimed_until,
    SequenceStep.subject,
    SequenceStep.body,
    CampaignEnrollment.contact_id,
    *CONTACT_COLUMNS,
    SequenceStep.thread,
    Delivery.mailbox_id,
)


def _drafts(delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, Draft]:
    """Drafts of the deliveries among `delivery_ids` that are still claimed, in one query."""
    rows = db.session.execute(
        sa.select(*_DRAFT_COLUMNS)
        .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .where(one_of(Delivery.id, delivery_ids), Delivery.status == DeliveryStatus.CLAIMED)
    ).all()
    settings_of = SettingsCache()
    mailboxes = _mailboxes({row.mailbox_id for row in rows if row.mailbox_id})
    threaded = {row.id for row in rows if in_thread(row)}
    previous = previous_emails({row.enrollment_id for row in rows if row.id in threaded})
    drafts = {}
    for row in rows:
        fields = {k: v for k, v in row._mapping.items() if k not in ("thread", "mailbox_id")}
        settings = settings_of(row.instance_id)
        if row.mailbox_id in mailboxes:
            settings = settings.from_mailbox(mailboxes[row.mailbox_id])
        drafts[row.id] = Draft(
            **fields, settings=settings, threaded=row.id in threaded, previous=previous.get(row.enrollment_id)
        )
    return drafts


def _mailboxes(ids: set[uuid.UUID]) -> dict[uuid.UUID, Mailbox]:
    if not ids:
        return {}
    return {m.id: m for m in db.session.scalars(sa.select(Mailbox).where(one_of(Mailbox.id, list(ids))))}


def prepare_deliveries(delivery_ids: list[uuid.UUID], drafts: dict[uuid.UUID, Draft] | None = None) -> list[Prepared]:
    """Build the claimed deliveries, in order. Their drafts come from `drafts` (what the claim
    read: `ClaimReport.drafts`) or from one query, which skips deliveries no longer claimed.
    Ends the read transaction, so no transaction stays open during the SMTP conversation."""
    drafts = drafts or {}
    missing = [delivery_id for delivery_id in delivery_ids if delivery_id not in drafts]
    if missing:
        drafts = {**drafts, **_drafts(missing)}
    prepared = []
    for delivery_id in delivery_ids:
        draft = drafts.get(delivery_id)
        if draft is None:
            continue
        item = Prepared(
            draft.id,
            draft.workspace_id,
            draft.enrollment_id,
            draft.instance_id,
            draft.template_id,
            draft.step_id,
            draft.step_position,
            draft.contact_id,
            draft.email,
            draft.claimed_until,
            draft.settings,
            draft.timezone,
        )
        try:
            item.message, item.message_id, item.sender, item.subject, item.references = compose(draft)
        except render.UnresolvedVariable as exc:
            missing = ", ".join(sorted(exc.names))
            item.problem = lifecycle.reason_text(lifecycle.Reason.MISSING_DATA, f"no value for {missing}")
        except (render.TemplateError, mailer.MessageError) as exc:
            item.problem = lifecycle.reason_text(lifecycle.Reason.UNBUILDABLE, str(exc))
        prepared.append(item)
    db.session.rollback()
    return prepared

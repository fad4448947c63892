"""The Inbox: what the mailboxes heard (replies, out-of-office answers, and what matched nothing),
the lead status a person gives a reply, and replies that came another way (phone, LinkedIn),
marked by hand.

How far a reply reaches (`reply_stops`, a workspace setting) is decided here, for both the
replies read in the mailboxes and those marked by hand.
"""

import uuid
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    CampaignTemplate,
    Contact,
    Delivery,
    InboundMessage,
    Mailbox,
    SequenceStep,
    Workspace,
    utcnow,
)
from webapp.models.enums import DeliveryStatus, EventType, InboundKind, LeadStatus
from webapp.services import events, lifecycle, workspaces
from webapp.services.bulk import one_of
from webapp.services.lookups import get_owned
from webapp.services.sending.settings import campaign_stop_on

ANSWERS = (InboundKind.REPLY, InboundKind.AUTO_REPLY)
# Addresses anyone can have: a reply from one of them says nothing about the others at that domain.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com",
        "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "icloud.com", "me.com", "mac.com",
        "aol.com", "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "orange.fr", "free.fr", "laposte.net",
        "proton.me", "protonmail.com", "zoho.com", "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com",
    }
)  # fmt: skip
MANUAL = "manual"


def list_replies(
    workspace: Workspace,
    *,
    kind: str | None = None,
    lead_status: str | None = None,
    instance_id: uuid.UUID | None = None,
    matched: bool | None = None,
    reply_id: uuid.UUID | None = None,
    page: int = 1,
    limit: int = 20,
) -> tuple[list[sa.Row], int]:
    """Messages read in the mailboxes, newest first, as (message, mailbox name, contact email,
    campaign id, campaign name, step number) rows. By default the replies and auto-replies;
    `kind` picks one kind (also `bounce` or `other`), `lead_status` one status (`none`: not set
    yet), `matched` whether it answered a send of ours."""
    step = aliased(SequenceStep)
    query = (
        sa.select(
            InboundMessage,
            Mailbox.name.label("mailbox_name"),
            Contact.email.label("contact_email"),
            CampaignInstance.id.label("instance_id"),
            CampaignInstance.name.label("instance_name"),
            step.position.label("step_number"),
        )
        .join(Mailbox, Mailbox.id == InboundMessage.mailbox_id)
        .outerjoin(Contact, Contact.id == InboundMessage.contact_id)
        .outerjoin(CampaignEnrollment, CampaignEnrollment.id == InboundMessage.enrollment_id)
        .outerjoin(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
        .outerjoin(step, step.id == Delivery.step_id)
        .where(InboundMessage.workspace_id == workspace.id)
    )
    if reply_id is not None:
        query = query.where(InboundMessage.id == reply_id)
    elif kind:
        query = query.where(InboundMessage.kind == kind)
    else:
        query = query.where(InboundMessage.kind.in_(ANSWERS))
    if lead_status == "none":
        query = query.where(InboundMessage.lead_status.is_(None))
    elif lead_status:
        query = query.where(InboundMessage.lead_status == lead_status)
    if instance_id is not None:
        query = query.where(CampaignEnrollment.instance_id == instance_id)
    if matched is not None:
        query = query.where(
            InboundMessage.enrollment_id.is_not(None) if matched else InboundMessage.enrollment_id.is_(None)
        )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.execute(
        query.order_by(InboundMessage.received_at.desc(), InboundMessage.id).limit(limit).offset((page - 1) * limit)
    ).all()
    return rows, total


def view(row: sa.Row) -> dict:
    """A `list_replies` row as the API and the Inbox page show it."""
    message = row.InboundMessage
    return {
        **{
            name: getattr(message, name)
            for name in ("id", "kind", "received_at", "from_email", "from_name", "subject", "snippet")
        },
        **{
            name: getattr(message, name)
            for name in ("lead_status", "bounce_type", "return_date", "mailbox_id", "contact_id", "enrollment_id")
        },
        "mailbox_name": row.mailbox_name,
        "contact_email": row.contact_email,
        "instance_id": row.instance_id,
        "instance_name": row.instance_name,
        "step_number": row.step_number,
    }


def get_reply(workspace: Workspace, reply_id: uuid.UUID) -> sa.Row:
    rows, _ = list_replies(workspace, reply_id=reply_id)
    if not rows:
        get_owned(InboundMessage, workspace, reply_id)  # raises NotFound
    return rows[0]


def set_lead_status(workspace: Workspace, reply_id: uuid.UUID, lead_status: str | None) -> sa.Row:
    """Give a reply a lead status (interested, not interested, meeting booked, wrong person), or
    clear it with None. Commits."""
    message = get_owned(InboundMessage, workspace, reply_id)
    message.lead_status = LeadStatus(lead_status) if lead_status else None
    db.session.commit()
    return get_reply(workspace, reply_id)


def lead_counts(workspace: Workspace, instance_id: uuid.UUID) -> dict[str, int]:
    """How many of a campaign's replies have each lead status (contacts, not messages: a contact
    counts once, with the status of their latest reply that has one)."""
    rows = db.session.execute(
        sa.select(InboundMessage.contact_id, InboundMessage.lead_status)
        .join(CampaignEnrollment, CampaignEnrollment.id == InboundMessage.enrollment_id)
        .where(
            InboundMessage.workspace_id == workspace.id,
            CampaignEnrollment.instance_id == instance_id,
            InboundMessage.lead_status.is_not(None),
        )
        .order_by(InboundMessage.received_at)
    ).all()
    latest = {contact_id: status for contact_id, status in rows}
    counts = Counter(latest.values())
    return {status.value: counts.get(status.value, 0) for status in LeadStatus}


def mark_replied(
    workspace: Workspace, enrollment_id: uuid.UUID, *, actor: lifecycle.Actor, now: datetime | None = None
) -> None:
    """A person says the contact answered (by phone, on LinkedIn): a `replied` event on the last
    step sent, the enrollment stops as replied, and the reply reaches as far as for one read in a
    mailbox. InvalidTransition (409) when the enrollment is no longer live. Commits."""
    now = now or utcnow()
    enrollment = get_owned(CampaignEnrollment, workspace, enrollment_id)
    # Whatever the campaign's stop rules: a person's word ends it. 409 unless live.
    lifecycle.change_one(enrollment, "reply", actor=actor, reason=lifecycle.Reason.REPLIED, now=now)
    record_replied(workspace, [enrollment.id], actor=actor, now=now)
    db.session.commit()


def mark_many_replied(
    workspace: Workspace, where: list, *, actor: lifecycle.Actor, now: datetime | None = None
) -> list[uuid.UUID]:
    """`mark_replied` for every live enrollment `where` finds (conditions on enrollments); returns
    the ids changed. Commits nothing."""
    now = now or utcnow()
    changed = lifecycle.change("reply", actor=actor, where=where, reason=lifecycle.Reason.REPLIED, now=now)
    record_replied(workspace, changed, actor=actor, now=now)
    return changed


def record_replied(workspace: Workspace, enrollment_ids: list[uuid.UUID], *, actor: lifecycle.Actor, now) -> None:
    """What a person's "replied" leaves, once the enrollments are replied: a `replied` event on
    each one's last step sent, and the reply's reach (`stop_elsewhere`)."""
    if not enrollment_ids:
        return
    last_step = (
        sa.select(Delivery.step_id)
        .where(Delivery.enrollment_id == CampaignEnrollment.id, Delivery.status == DeliveryStatus.SENT)
        .order_by(Delivery.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows, contacts = [], set()
    for start in range(0, len(enrollment_ids), lifecycle.CHUNK):
        found = db.session.execute(
            sa.select(CampaignEnrollment.id, CampaignEnrollment.contact_id, last_step.label("step_id")).where(
                one_of(CampaignEnrollment.id, enrollment_ids[start : start + lifecycle.CHUNK])
            )
        ).all()
        for row in found:
            contacts.add(row.contact_id)
            rows.append(
                {
                    "workspace_id": workspace.id,
                    "enrollment_id": row.id,
                    "step_id": row.step_id,
                    "channel": "email",
                    "type": EventType.REPLIED,
                    "provider": MANUAL,
                    "provider_event_id": f"{MANUAL}:{row.id}",
                    "occurred_at": now,
                    "metadata": {"marked_by": actor.value},
                }
            )
    events.record_events(workspace, rows, actor)
    stop_elsewhere(workspace, contacts, answered=set(enrollment_ids), now=now)


def stop_elsewhere(
    workspace: Workspace, contact_ids: set[uuid.UUID], *, answered: set[uuid.UUID], now: datetime
) -> int:
    """A reply also stops the contact's other live enrollments, as far as the workspace's
    `reply_stops` says: `campaign` (only the one answered), `workspace` (every campaign, for that
    contact) or `domain` (every contact at the same email domain, unless it is a free-mail domain
    such as gmail.com: then only that contact). Each campaign's own stop rules
    still decide: one that does not stop on replies goes on. Returns how many stopped; the caller
    commits."""
    reach = workspaces.reply_stops(workspace)
    if not contact_ids or reach == workspaces.REPLY_STOPS_CAMPAIGN:
        return 0
    query = (
        sa.select(
            CampaignEnrollment.id,
            CampaignInstance.settings.label("settings"),
            CampaignTemplate.settings.label("template_settings"),
        )
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
        .where(Contact.workspace_id == workspace.id, CampaignEnrollment.status.in_(lifecycle.LIVE))
    )
    same_contact = one_of(CampaignEnrollment.contact_id, contact_ids)
    if reach == workspaces.REPLY_STOPS_DOMAIN:
        emails = db.session.scalars(sa.select(Contact.email).where(one_of(Contact.id, contact_ids))).all()
        domains = {address.rsplit("@", 1)[1] for address in emails if "@" in address} - FREE_MAIL_DOMAINS
        colleagues = [Contact.email.like(f"%@{_like(domain)}", escape="\\") for domain in sorted(domains)]
        query = query.where(sa.or_(same_contact, *colleagues))
    else:
        query = query.where(same_contact)
    stop = [
        row.id
        for row in db.session.execute(query)
        if row.id not in answered and "reply" in campaign_stop_on(row.template_settings, row.settings)
    ]
    if stop:
        lifecycle.change(
            "reply",
            actor=lifecycle.Actor.EVENT,
            ids=stop,
            reason=lifecycle.reason_text(lifecycle.Reason.REPLIED, "in another campaign"),
            now=now,
        )
    return len(stop)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

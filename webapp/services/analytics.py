"""Campaign numbers, read from the enrollment table and the daily event rollups.

The rollups are kept on ingestion, so the cost of these queries depends on the number of
steps and days, not on the number of events. Rates are per contact: contacts who did something
(counted once each, whatever the number of messages) out of the contacts it could happen to
(`rates`, the one place that says which); a step's rates are out of the contacts who received
that step.
"""

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Delivery, EventRollup, SequenceStep, Workspace, utcnow
from webapp.models.enums import DeliveryStatus, EnrollmentStatus, InstanceStatus
from webapp.schemas.analytics import (
    OF_CONTACTED,
    OF_EMAILED,
    RATE_BASES,
    Contacts,
    DailyPoint,
    PerformanceOut,
    Rates,
    StepContacts,
    StepCounts,
    StepPerformance,
    StepRates,
    Totals,
)
from webapp.services import replies
from webapp.services.lifecycle import LIVE
from webapp.services.lookups import get_owned

EVENT_COUNTS = ("sent", "delivered", "replied", "bounced", "unsubscribed")
UNIQUE_COUNTS = ("opened", "clicked")
# Contacts counted once each (services.events.FIRST_KINDS): "sent" is contacts emailed.
CONTACT_COUNTS = ("contacted", "sent", "opened", "clicked", "replied", "bounced", "unsubscribed")
DAILY = ("sent", "opened", "clicked", "replied", "bounced")
# The daily series counts messages sent, and contacts on the day they first opened, clicked...
DAILY_CONTACTS = ("opened", "clicked", "replied", "bounced")


RATE_PARTS = {
    "open_rate": "opened",
    "click_rate": "clicked",
    "reply_rate": "replied",
    "bounce_rate": "bounced",
    "unsubscribe_rate": "unsubscribed",
}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def rates(contacts: Mapping[str, int], *, emailed: int | None = None, contacted: int | None = None) -> dict:
    """Every rate, per contact: contacts who opened (clicked, replied...) out of the contacts
    emailed or contacted, as RATE_BASES says. `contacts` holds the per-contact counts by kind
    ("sent" is contacts emailed); a step passes its received count as both denominators."""
    wholes = {
        OF_EMAILED: contacts.get("sent", 0) if emailed is None else emailed,
        OF_CONTACTED: contacts.get("contacted", 0) if contacted is None else contacted,
    }
    return {name: _rate(contacts.get(RATE_PARTS[name], 0), wholes[base]) for name, base in RATE_BASES.items()}


def enrollment_statuses(instance_id: uuid.UUID) -> dict[str, int]:
    query = (
        sa.select(CampaignEnrollment.status, sa.func.count())
        .where(CampaignEnrollment.instance_id == instance_id)
        .group_by(CampaignEnrollment.status)
    )
    counts = {status.value: 0 for status in EnrollmentStatus}
    counts.update({status: n for status, n in db.session.execute(query)})
    return counts


def _contacts(counts: Mapping[str, int]) -> Contacts:
    return Contacts(emailed=counts.get("sent", 0), **{k: counts.get(k, 0) for k in CONTACT_COUNTS if k != "sent"})


def instance_performance(workspace: Workspace, instance_id: uuid.UUID) -> PerformanceOut:
    """Totals, per-contact counts and rates, per-step numbers and the daily series of one campaign."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    statuses = enrollment_statuses(instance.id)
    per_step: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    step_contacts: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict = defaultdict(lambda: defaultdict(int))
    overall: dict[str, int] = defaultdict(int)
    contacts: dict[str, int] = defaultdict(int)
    query = sa.select(EventRollup.step_id, EventRollup.day, EventRollup.type, EventRollup.n).where(
        EventRollup.instance_id == instance.id
    )
    for step_id, day, kind, n in db.session.execute(query):
        kind = "unsubscribed" if kind == "complained" else kind
        if kind.startswith("unique:"):
            name = kind.split(":", 1)[1]
            contacts[name] += n
            if name in DAILY_CONTACTS:
                daily[day][name] += n
        elif kind.startswith("unique_step:"):
            step_contacts[step_id][kind.split(":", 1)[1]] += n
        elif kind in EVENT_COUNTS:
            overall[kind] += n
            per_step[step_id][kind] += n
            if kind == "sent":
                daily[day][kind] += n
    totals = Totals(
        enrolled=sum(statuses.values()),
        active=sum(statuses[s] for s in LIVE),
        completed=statuses[EnrollmentStatus.COMPLETED],
        **{k: overall.get(k, 0) for k in EVENT_COUNTS},
        **{k: contacts.get(k, 0) for k in UNIQUE_COUNTS},
    )
    steps = db.session.scalars(
        sa.select(SequenceStep).where(SequenceStep.template_id == instance.template_id).order_by(SequenceStep.position)
    )
    step_rows = []
    for step in steps:
        counts, reached = per_step.get(step.id, {}), step_contacts.get(step.id, {})
        received = reached.get("contacted", 0)
        step_rows.append(
            StepPerformance(
                step_id=step.id,
                step_number=step.position,
                channel=step.channel,
                action_type=step.action,
                subject=step.subject,
                is_active=step.is_active,
                totals=StepCounts(
                    **{k: counts.get(k, 0) for k in EVENT_COUNTS}, **{k: reached.get(k, 0) for k in UNIQUE_COUNTS}
                ),
                contacts=StepContacts(received=received, **{k: reached.get(k, 0) for k in CONTACT_COUNTS[2:]}),
                rates=StepRates(**rates(reached, emailed=received, contacted=received)),
            )
        )
    series = [DailyPoint(date=day, **{k: daily[day].get(k, 0) for k in DAILY}) for day in sorted(daily)]
    return PerformanceOut(
        instance_id=instance.id,
        status=instance.status,
        statuses=statuses,
        totals=totals,
        contacts=_contacts(contacts),
        rates=Rates(**rates(contacts)),
        steps=step_rows,
        daily=series,
        leads=replies.lead_counts(workspace, instance.id),
    )


OVERVIEW_COUNTS = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed")
BOUNCE_ALERT_RATE = 0.05


@dataclass(frozen=True)
class OverviewDay:
    date: date
    sent: int = 0
    opened: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0


@dataclass(frozen=True)
class CampaignAttention:
    """A campaign a person should look at, and why (`reasons`: paused, bounces, unknown_deliveries).

    `emailed` and `bounced` count contacts since launch; `bounce_rate` is bounced of emailed."""

    instance_id: uuid.UUID
    name: str
    status: str
    emailed: int
    bounced: int
    bounce_rate: float
    unknown_deliveries: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class WorkspaceOverview:
    start: date
    end: date
    days: int
    active_campaigns: int
    totals: dict[str, int]
    contacts: Contacts
    rates: Rates
    daily: list[OverviewDay]
    statuses: dict[str, int]
    attention: list[CampaignAttention] = field(default_factory=list)


def workspace_overview(workspace: Workspace, *, days: int = 30, now: datetime | None = None) -> WorkspaceOverview:
    """The workspace's numbers: message counts for the last `days` UTC days (today included), and
    per-contact counts and rates since launch, read from the rollups.

    Everything but `attention` covers active campaigns only. `totals` and the daily series count
    messages and events in the period (opens: contacts whose first open fell in it; complaints
    count as unsubscribes, as in `instance_performance`). `contacts` and `rates` count each
    contact once per campaign since launch, so a rate never mixes periods. `attention` lists
    paused campaigns, active or paused ones whose bounce rate (of contacts emailed) is above
    BOUNCE_ALERT_RATE, and any campaign with deliveries in the `unknown` state. Raises
    ValidationFailed unless 1 <= days <= 366.
    """
    if not isinstance(days, int) or not 1 <= days <= 366:
        raise ValidationFailed("days must be between 1 and 366.", details=[{"field": "days", "message": "1 to 366"}])
    end = (now or utcnow()).astimezone(UTC).date()
    start = end - timedelta(days=days - 1)
    instances = {
        row.id: row
        for row in db.session.execute(
            sa.select(CampaignInstance.id, CampaignInstance.name, CampaignInstance.status).where(
                CampaignInstance.workspace_id == workspace.id,
                CampaignInstance.status.in_((InstanceStatus.ACTIVE, InstanceStatus.PAUSED)),
            )
        )
    }
    active = {i for i, row in instances.items() if row.status == InstanceStatus.ACTIVE}
    types = (*EVENT_COUNTS, "complained", *(f"unique:{kind}" for kind in UNIQUE_COUNTS))
    per_instance: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals = dict.fromkeys(OVERVIEW_COUNTS, 0)
    contacts: dict[str, int] = defaultdict(int)
    if active:
        query = (
            sa.select(EventRollup.day, EventRollup.type, sa.func.sum(EventRollup.n))
            .where(
                EventRollup.instance_id.in_(list(active)),
                EventRollup.day >= start,
                EventRollup.day <= end,
                EventRollup.type.in_(types),
            )
            .group_by(EventRollup.day, EventRollup.type)
        )
        for day, kind, total in db.session.execute(query):
            # SUM over BIGINT is NUMERIC (Decimal) on PostgreSQL.
            n = int(total)
            kind = "unsubscribed" if kind == "complained" else kind.removeprefix("unique:")
            totals[kind] += n
            daily[day][kind] += n
    if instances:
        lifetime = (
            sa.select(EventRollup.instance_id, EventRollup.type, sa.func.sum(EventRollup.n))
            .where(
                EventRollup.instance_id.in_(list(instances)),
                EventRollup.type.in_([f"unique:{kind}" for kind in CONTACT_COUNTS]),
            )
            .group_by(EventRollup.instance_id, EventRollup.type)
        )
        for instance_id, kind, total in db.session.execute(lifetime):
            kind, n = kind.removeprefix("unique:"), int(total)
            per_instance[instance_id][kind] += n
            if instance_id in active:
                contacts[kind] += n
    day_fields = ("sent", "opened", "replied", "bounced", "unsubscribed")
    series = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        series.append(OverviewDay(day, **{k: daily[day].get(k, 0) for k in day_fields}))
    return WorkspaceOverview(
        start=start,
        end=end,
        days=days,
        active_campaigns=len(active),
        totals=totals,
        contacts=_contacts(contacts),
        rates=Rates(**rates(contacts)),
        daily=series,
        statuses=_workspace_statuses(workspace),
        attention=_attention(workspace, instances, per_instance),
    )


def _workspace_statuses(workspace: Workspace) -> dict[str, int]:
    query = (
        sa.select(CampaignEnrollment.status, sa.func.count())
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .where(CampaignEnrollment.workspace_id == workspace.id, CampaignInstance.status == InstanceStatus.ACTIVE)
        .group_by(CampaignEnrollment.status)
    )
    counts = {status.value: 0 for status in EnrollmentStatus}
    counts.update({status: n for status, n in db.session.execute(query)})
    return counts


def _attention(workspace: Workspace, instances: dict, per_instance: dict) -> list[CampaignAttention]:
    unknown = dict(
        db.session.execute(
            sa.select(CampaignEnrollment.instance_id, sa.func.count())
            .select_from(Delivery)
            .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
            .where(Delivery.workspace_id == workspace.id, Delivery.status == DeliveryStatus.UNKNOWN)
            .group_by(CampaignEnrollment.instance_id)
        ).all()
    )
    missing = [i for i in unknown if i not in instances]
    if missing:
        # Draft or completed campaigns can still hold an unresolved delivery.
        query = sa.select(CampaignInstance.id, CampaignInstance.name, CampaignInstance.status).where(
            CampaignInstance.id.in_(missing), CampaignInstance.workspace_id == workspace.id
        )
        instances = {**instances, **{row.id: row for row in db.session.execute(query)}}
    found = []
    for instance_id, row in instances.items():
        counts = per_instance.get(instance_id, {})
        emailed, bounced = counts.get("sent", 0), counts.get("bounced", 0)
        bounce_rate = rates(counts)["bounce_rate"]
        reasons = []
        if unknown.get(instance_id):
            reasons.append("unknown_deliveries")
        if bounce_rate > BOUNCE_ALERT_RATE:
            reasons.append("bounces")
        if row.status == InstanceStatus.PAUSED:
            reasons.append("paused")
        if reasons:
            found.append(
                CampaignAttention(
                    instance_id,
                    row.name,
                    row.status,
                    emailed,
                    bounced,
                    bounce_rate,
                    unknown.get(instance_id, 0),
                    tuple(reasons),
                )
            )
    return sorted(found, key=lambda item: (-len(item.reasons), item.name.lower(), str(item.instance_id)))

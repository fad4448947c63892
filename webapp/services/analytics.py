"""Campaign numbers, read from the enrollment table and the daily event rollups.

The rollups are kept on ingestion, so the cost of these queries depends on the number of
steps and days, not on the number of events. Opens and clicks count unique enrollments.
Rates are per message sent.
"""

import uuid
from collections import defaultdict

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, EventRollup, SequenceStep, Workspace
from webapp.models.enums import LIVE_ENROLLMENT_STATUSES, EnrollmentStatus
from webapp.schemas.analytics import DailyPoint, PerformanceOut, Rates, StepCounts, StepPerformance, Totals
from webapp.services.lookups import get_owned

EVENT_COUNTS = ("sent", "delivered", "replied", "bounced", "unsubscribed")
UNIQUE_COUNTS = ("opened", "clicked")
DAILY = ("sent", "opened", "clicked", "replied", "bounced")


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def rates(counts: dict) -> Rates:
    sent = counts.get("sent", 0)
    return Rates(
        open_rate=_rate(counts.get("opened", 0), sent),
        click_rate=_rate(counts.get("clicked", 0), sent),
        reply_rate=_rate(counts.get("replied", 0), sent),
        bounce_rate=_rate(counts.get("bounced", 0), sent),
        unsubscribe_rate=_rate(counts.get("unsubscribed", 0), sent),
    )


def enrollment_statuses(instance_id: uuid.UUID) -> dict[str, int]:
    query = (
        sa.select(CampaignEnrollment.status, sa.func.count())
        .where(CampaignEnrollment.instance_id == instance_id)
        .group_by(CampaignEnrollment.status)
    )
    counts = {status.value: 0 for status in EnrollmentStatus}
    counts.update({status: n for status, n in db.session.execute(query)})
    return counts


def instance_performance(workspace: Workspace, instance_id: uuid.UUID) -> PerformanceOut:
    """Totals, rates, per-step numbers and the daily series of one campaign."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    statuses = enrollment_statuses(instance.id)
    per_step: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict = defaultdict(lambda: defaultdict(int))
    overall: dict[str, int] = defaultdict(int)
    query = sa.select(EventRollup.step_id, EventRollup.day, EventRollup.type, EventRollup.n).where(
        EventRollup.instance_id == instance.id
    )
    for step_id, day, kind, n in db.session.execute(query):
        kind = "unsubscribed" if kind == "complained" else kind
        if kind.startswith("unique:"):
            name = kind.split(":", 1)[1]
            overall[name] += n
            daily[day][name] += n
        elif kind.startswith("unique_step:"):
            per_step[step_id][kind.split(":", 1)[1]] += n
        elif kind in EVENT_COUNTS:
            overall[kind] += n
            per_step[step_id][kind] += n
            if kind in DAILY:
                daily[day][kind] += n
    totals = Totals(
        enrolled=sum(statuses.values()),
        active=sum(statuses[s] for s in LIVE_ENROLLMENT_STATUSES),
        completed=statuses[EnrollmentStatus.COMPLETED],
        **{k: overall.get(k, 0) for k in (*EVENT_COUNTS, *UNIQUE_COUNTS)},
    )
    steps = db.session.scalars(
        sa.select(SequenceStep).where(SequenceStep.template_id == instance.template_id).order_by(SequenceStep.position)
    )
    step_rows = []
    for step in steps:
        counts = per_step.get(step.id, {})
        step_counts = {k: counts.get(k, 0) for k in (*EVENT_COUNTS, *UNIQUE_COUNTS)}
        step_rows.append(
            StepPerformance(
                step_id=step.id,
                step_number=step.position,
                channel=step.channel,
                action_type=step.action,
                subject=step.subject,
                is_active=step.is_active,
                totals=StepCounts(**step_counts),
                rates=rates(step_counts),
            )
        )
    series = [DailyPoint(date=day, **{k: daily[day].get(k, 0) for k in DAILY}) for day in sorted(daily)]
    return PerformanceOut(
        instance_id=instance.id,
        status=instance.status,
        statuses=statuses,
        totals=totals,
        rates=rates(totals.model_dump()),
        steps=step_rows,
        daily=series,
    )

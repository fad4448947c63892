"""What will go out when: the next sends of a campaign with their times and the reason for
any delay. Uses the same send-window and cap rules as the dispatcher."""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from webapp.engine import scheduler
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Contact, Workspace, utcnow
from webapp.models.enums import Channel, EnrollmentStatus, InstanceStatus
from webapp.services.dispatch import contact_zone, effective_settings, sender_of, sent_since
from webapp.services.lookups import get_owned
from webapp.services.progress import ActiveSteps


@dataclass
class ScheduledSend:
    enrollment_id: uuid.UUID
    contact_email: str
    step_number: int
    channel: str
    due_at: datetime | None
    reason: str | None


def preview_schedule(
    workspace: Workspace, instance_id: uuid.UUID, *, limit: int = 50, now: datetime | None = None
) -> list[ScheduledSend]:
    """The next `limit` actions of the campaign in time order, as the worker would take them."""
    now = now or utcnow()
    instance = get_owned(CampaignInstance, workspace, instance_id)
    settings = effective_settings(instance.template, instance, workspace.settings)
    window, holidays = settings.get("send_window"), settings.get("skip_holidays")
    cap = settings.get("daily_cap")
    _, sender = sender_of(settings)
    rows = db.session.execute(
        sa.select(CampaignEnrollment, Contact)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(
            CampaignEnrollment.instance_id == instance.id,
            CampaignEnrollment.status.in_(
                (EnrollmentStatus.ACTIVE, EnrollmentStatus.ENROLLED, EnrollmentStatus.PAUSED)
            ),
        )
        .order_by(CampaignEnrollment.next_action_at.asc().nulls_last())
        .limit(limit)
    ).all()
    steps = ActiveSteps()
    per_day: Counter = Counter()
    result = []
    for enrollment, contact in rows:
        step = steps.after(instance.template_id, enrollment.current_step)
        if step is None:
            continue
        zone = contact_zone(contact, settings)
        base = dict(
            enrollment_id=enrollment.id, contact_email=contact.email, step_number=step.position, channel=step.channel
        )
        if instance.status == InstanceStatus.DRAFT:
            result.append(ScheduledSend(**base, due_at=None, reason="campaign not launched"))
            continue
        if enrollment.status == EnrollmentStatus.PAUSED:
            result.append(ScheduledSend(**base, due_at=None, reason="enrollment paused"))
            continue
        if enrollment.next_action_at is None:
            reason = "waiting for a task" if step.channel == Channel.LINKEDIN else "waiting for a delivery to resolve"
            result.append(ScheduledSend(**base, due_at=None, reason=reason))
            continue
        earliest = max(enrollment.next_action_at, now)
        due = scheduler.next_send_time(earliest, window=window, tz=zone, holidays_country=holidays)
        reasons = []
        if due > earliest:
            reasons.append("outside the send window")
        if cap and step.channel == Channel.EMAIL:
            due, capped = _fit_under_cap(
                due, per_day, cap=cap, sender=sender, zone=zone, window=window, holidays=holidays, now=now
            )
            if capped:
                reasons.append("daily cap reached")
        if instance.status == InstanceStatus.PAUSED:
            reasons.insert(0, "campaign paused")
        result.append(ScheduledSend(**base, due_at=due, reason="; ".join(reasons) or None))
    return sorted(result, key=lambda s: (s.due_at is None, s.due_at or now))


def _fit_under_cap(
    due: datetime, per_day: Counter, *, cap: int, sender: str, zone: str, window, holidays, now: datetime
) -> tuple[datetime, bool]:
    """The first send time at or after `due` on a local day with room under the cap."""
    capped = False
    while True:
        day_start = scheduler.local_day_start(due, zone)
        if day_start not in per_day:
            per_day[day_start] = sent_since(sender, day_start)
        if per_day[day_start] < cap:
            per_day[day_start] += 1
            return due, capped
        capped = True
        # Noon of the next local day, then back to its start: robust across DST changes.
        next_day = scheduler.local_day_start(day_start + timedelta(hours=36), zone)
        due = scheduler.next_send_time(next_day, window=window, tz=zone, holidays_country=holidays)

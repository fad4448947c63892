"""What will go out when: the next sends of a campaign with their times and the reason for any delay.

The preview plays the worker forward: at each moment something becomes due it takes the due
enrollments in the worker's order (follow-ups first, then by due time and id) and asks the same
`claim.decide` the worker asks, with the same send policy and the sender's usage. So a time it
shows is the time the worker sends at, as long as nothing changes meanwhile (a reply, a pause,
another campaign of the same sender sending first). It plays the first enrollments in line
(PREVIEW_ROWS per send shown, at least PREVIEW_MIN_ROWS).
"""

import heapq
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Bundle

from webapp.engine import policy
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Contact, SequenceStep, Workspace, utcnow
from webapp.models.enums import Channel, ContactStatus, EnrollmentStatus, InstanceStatus
from webapp.services import lifecycle
from webapp.services.lookups import get_owned
from webapp.services.progress import ActiveSteps
from webapp.services.sending import settings as sending_settings
from webapp.services.sending.claim import Action, Senders, decide

# Waits that end when a person acts (resumes or fixes a mailbox): the preview gives them no time.
WAITS_FOR_A_PERSON = {policy.Delay.MAILBOX_PAUSED, policy.Delay.MAILBOX_FAILING, policy.Delay.NO_MAILBOX}
PREVIEW_ROWS = 4
PREVIEW_MIN_ROWS = 40


@dataclass
class ScheduledSend:
    enrollment_id: uuid.UUID
    contact_email: str
    step_number: int
    channel: str
    due_at: datetime | None
    reason: str | None


@dataclass
class _InLine:
    """An enrollment waiting in the simulated queue."""

    send: ScheduledSend
    step: SequenceStep
    follow_up: bool
    due: datetime  # its next_action_at, as the worker would store it
    timezone: str | None
    mailbox_id: uuid.UUID | None
    delays: list[str] = field(default_factory=list)

    def order(self) -> tuple:
        return (not self.follow_up, self.due, self.send.enrollment_id)


def preview_schedule(
    workspace: Workspace, instance_id: uuid.UUID, *, limit: int = 50, now: datetime | None = None
) -> list[ScheduledSend]:
    """The next `limit` actions of the campaign in time order, as the worker will take them,
    then the enrollments that wait for something other than time (with the reason)."""
    now = now or utcnow()
    instance = get_owned(CampaignInstance, workspace, instance_id)
    settings, invalid = None, None
    try:
        settings = sending_settings.for_instance(instance, workspace)
    except sending_settings.InvalidSettings as exc:
        invalid = lifecycle.reason_text(lifecycle.Reason.INVALID_SETTINGS, str(exc))
    enrollment = Bundle(
        "enrollment",
        CampaignEnrollment.id,
        CampaignEnrollment.status,
        CampaignEnrollment.status_reason,
        CampaignEnrollment.current_step,
        CampaignEnrollment.next_action_at,
        CampaignEnrollment.mailbox_id,
        CampaignEnrollment.wait_reason,
    )
    rows = db.session.execute(
        sa.select(enrollment, Contact.email, Contact.timezone, Contact.status)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(CampaignEnrollment.instance_id == instance.id, CampaignEnrollment.status.in_(lifecycle.LIVE))
        .order_by(CampaignEnrollment.next_action_at.asc().nulls_last(), CampaignEnrollment.id)
        .limit(max(limit * PREVIEW_ROWS, PREVIEW_MIN_ROWS))
    ).all()
    steps = ActiveSteps()
    waiting: list[ScheduledSend] = []
    in_line: list[_InLine] = []
    for enrollment, email, timezone, contact_status in rows:
        step = steps.after(instance.template_id, enrollment.current_step)
        if step is None:
            continue
        send = ScheduledSend(enrollment.id, email, step.position, step.channel, None, None)
        send.reason = _why_waiting(instance, enrollment, step, contact_status) or (
            invalid if settings is None else None
        )
        if send.reason:
            waiting.append(send)
        else:
            item = _InLine(
                send, step, enrollment.current_step > 0, enrollment.next_action_at, timezone, enrollment.mailbox_id
            )
            if enrollment.wait_reason and enrollment.next_action_at > now:
                item.delays.extend(enrollment.wait_reason.split("; "))  # why the worker put it off already
            in_line.append(item)
    planned = _play(in_line, settings, now=now, limit=limit, waiting=waiting)
    if instance.status == InstanceStatus.PAUSED:
        for send in planned:
            send.reason = "; ".join(filter(None, ("campaign paused", send.reason)))
    return (planned + waiting)[:limit]


def _why_waiting(instance, enrollment, step, contact_status) -> str | None:
    """Why an enrollment's next action has no time: the worker will not take it by itself."""
    if instance.status == InstanceStatus.DRAFT:
        return "campaign not launched"
    if enrollment.status == EnrollmentStatus.PAUSED:
        return enrollment.status_reason or "enrollment paused"
    if contact_status != ContactStatus.SUBSCRIBED:
        return f"contact is {contact_status}"
    if enrollment.next_action_at is None:
        return "waiting for a task" if step.channel == Channel.LINKEDIN else "waiting for a delivery to resolve"
    return None


def _play(in_line: list[_InLine], settings, *, now: datetime, limit: int, waiting: list) -> list[ScheduledSend]:
    """Play the worker forward over `in_line` until `limit` actions are planned (see the module docstring)."""
    if not in_line:
        return []
    senders = Senders()
    tie = itertools.count()
    queue = [(max(item.due, now), next(tie), item) for item in in_line]
    heapq.heapify(queue)
    planned: list[ScheduledSend] = []
    while queue and len(planned) < limit:
        moment = queue[0][0]
        due_now = []
        while queue and queue[0][0] <= moment:
            due_now.append(heapq.heappop(queue)[2])
        for item in sorted(due_now, key=_InLine.order):
            if len(planned) >= limit:
                break
            decision = decide(
                item.step,
                settings,
                due=item.due,
                contact_timezone=item.timezone,
                mailbox_id=item.mailbox_id,
                senders=senders,
                now=moment,
            )
            if decision.action == Action.DEFER and WAITS_FOR_A_PERSON & set(decision.plan.delays):
                item.send.reason = "; ".join(decision.plan.delays)  # no time: it waits for a person
                waiting.append(item.send)
            elif decision.action == Action.DEFER:
                item.due = decision.plan.at
                item.delays += [d for d in decision.plan.delays if d not in item.delays]
                heapq.heappush(queue, (item.due, next(tie), item))
            elif decision.action == Action.PAUSE:
                item.send.reason = decision.problem
                waiting.append(item.send)
            else:
                if decision.settings is not None:
                    item.mailbox_id = decision.settings.sender.mailbox_id  # kept for its next steps
                item.send.due_at, item.send.reason = moment, "; ".join(item.delays) or None
                planned.append(item.send)
    return planned[:limit]

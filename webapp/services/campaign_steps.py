"""A launched campaign's own steps, edited explicitly for that campaign.

At launch a campaign takes a copy of its template (services/instances.py); these functions edit
that copy through the template step services (services/sequences.py: same validation, same
positions), and move the campaign's contacts with the change in the same transaction:

- A contact *waits on* a step when it is the first active step after the last one they did
  (`current_step`); a contact is *not yet past* a step when they have not done it.
- A step inserted before contacts' next step becomes their next step; steps after it keep
  their contacts (their `current_step` shifts with the positions).
- A changed delay, or a step that becomes someone's next step, recomputes the due time of the
  contacts waiting on it in one statement: the previous step's send time (or the launch or
  enrollment time for the first step) plus the step's delay. A later out-of-office wait stays.
- Removing or deactivating a step that contacts wait on needs a choice: `skip` (they go on to
  the next step at its due time, or complete when there is none) or `stop` (their sequence ends,
  with the reason recorded through services/lifecycle.py).

A draft campaign has no copy: it follows its template, whose steps are edited there.
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from webapp.engine import policy
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Delivery, SequenceStep, Task, Workspace, utcnow
from webapp.models.enums import Channel, EnrollmentStatus, InstanceStatus, TaskStatus
from webapp.schemas.templates import EmailStepIn, EmailStepUpdate, LinkedInStepIn, LinkedInStepUpdate
from webapp.services import lifecycle, sequences
from webapp.services.bulk import plus
from webapp.services.lookups import get_owned

EDITABLE = (InstanceStatus.ACTIVE, InstanceStatus.PAUSED)
SKIP, STOP = "skip", "stop"
# Whose due time moves: live contacts with something scheduled (paused ones keep it for their resume).
SCHEDULED = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


@dataclass(frozen=True)
class Impact:
    """How many of the campaign's live contacts a step concerns."""

    waiting: int = 0  # it is their next step
    not_past: int = 0  # they have not done it yet (the waiting included)


@dataclass(frozen=True)
class Removal:
    deleted: bool  # False: deactivated, as it was sent to someone already
    skipped: int
    stopped: int


def list_campaign_steps(
    workspace: Workspace, instance_id: uuid.UUID
) -> tuple[CampaignInstance, list[tuple[SequenceStep, Impact]]]:
    """The steps the campaign runs (its template's while it is a draft), each with its impact."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    steps = _steps(instance)
    impacts = _impacts(instance, steps)
    return instance, [(step, impacts[step.id]) for step in steps]


def get_campaign_step(workspace: Workspace, instance_id: uuid.UUID, step_id: uuid.UUID) -> tuple[SequenceStep, Impact]:
    instance = get_owned(CampaignInstance, workspace, instance_id)
    steps = _steps(instance)
    step = next((step for step in steps if step.id == step_id), None)
    if step is None:
        raise NotFound(f"Step {step_id} not found.")
    return step, _impacts(instance, steps)[step.id]


def add_campaign_step(
    workspace: Workspace, instance_id: uuid.UUID, data: EmailStepIn | LinkedInStepIn, *, actor: lifecycle.Actor
) -> tuple[SequenceStep, Impact]:
    """Add a step to a launched campaign (appended, or inserted at `step_number`): it becomes the
    next step of the contacts not yet past its place, due its delay after their previous step."""
    instance = _editable(workspace, instance_id)
    add = sequences.add_email_step if isinstance(data, EmailStepIn) else sequences.add_linkedin_step
    step = add(workspace, instance.template_id, data, campaign_copy=True, commit=False)
    _shift_progress(instance, start=step.position, by=1)
    if step.is_active:
        _reschedule(instance, step, _previous_active(instance, step.position), step.position, now=utcnow())
    db.session.commit()
    return step, _impacts(instance, _steps(instance))[step.id]


def update_campaign_step(
    workspace: Workspace,
    instance_id: uuid.UUID,
    step_id: uuid.UUID,
    data: EmailStepUpdate | LinkedInStepUpdate,
    *,
    waiting: str | None = None,
    actor: lifecycle.Actor,
) -> tuple[SequenceStep, Impact]:
    """Change a launched campaign's step. A new delay moves the due time of the contacts waiting
    on it; deactivating a step they wait on needs `waiting` (skip or stop), else a Conflict giving
    their number. Reordering is refused: the contacts' progress is counted in positions."""
    instance = _editable(workspace, instance_id)
    step = _step(instance, step_id)
    channel = Channel.EMAIL if isinstance(data, EmailStepUpdate) else Channel.LINKEDIN
    if step.channel != channel:
        raise ValidationFailed(f"Step {step_id} is a {step.channel} step: send that channel's fields.")
    if data.step_number is not None and data.step_number != step.position:
        message = (
            "A launched campaign's steps cannot be reordered: add a step where you want it, then remove the old one."
        )
        raise Conflict(message, details=[{"field": "step_number", "message": message}])
    now = utcnow()
    low = _previous_active(instance, step.position)
    was_active, old_delay = step.is_active, _delay(step)
    if was_active and data.is_active is False:
        _settle_waiting(instance, step, low, waiting, actor=actor, now=now)
    update = sequences.update_email_step if channel == Channel.EMAIL else sequences.update_linkedin_step
    update(workspace, instance.template_id, step_id, data, campaign_copy=True, commit=False)
    if step.is_active and (not was_active or _delay(step) != old_delay):
        _reschedule(instance, step, low, step.position, now=now)
    db.session.commit()
    return step, _impacts(instance, _steps(instance))[step.id]


def remove_campaign_step(
    workspace: Workspace,
    instance_id: uuid.UUID,
    step_id: uuid.UUID,
    *,
    waiting: str | None = None,
    actor: lifecycle.Actor,
) -> Removal:
    """Remove a launched campaign's step (deactivated instead when it was sent to someone). The
    contacts waiting on it need `waiting` (skip or stop), else a Conflict giving their number."""
    instance = _editable(workspace, instance_id)
    step = _step(instance, step_id)
    now = utcnow()
    skipped, stopped = 0, 0
    if step.is_active:
        skipped, stopped = _settle_waiting(
            instance, step, _previous_active(instance, step.position), waiting, actor=actor, now=now
        )
    position = step.position
    deleted = sequences.remove_step(
        workspace, instance.template_id, step_id, channel=step.channel, campaign_copy=True, commit=False
    )
    if deleted:
        _shift_progress(instance, start=position, by=-1)
    db.session.commit()
    return Removal(deleted=deleted, skipped=skipped, stopped=stopped)


def _editable(workspace: Workspace, instance_id: uuid.UUID) -> CampaignInstance:
    # The row lock orders step edits with status changes (a launch takes the copy) on PostgreSQL.
    instance = get_owned(CampaignInstance, workspace, instance_id, lock=True)
    if instance.status == InstanceStatus.DRAFT:
        raise Conflict(
            "A draft campaign follows its template: edit the template's steps, or launch the campaign to give it "
            "steps of its own."
        )
    if instance.status not in EDITABLE:
        raise Conflict(f"A {instance.status} campaign's steps can no longer be changed.")
    return instance


def _steps(instance: CampaignInstance) -> list[SequenceStep]:
    return list(
        db.session.scalars(
            sa.select(SequenceStep)
            .where(SequenceStep.template_id == instance.template_id)
            .order_by(SequenceStep.position)
        )
    )


def _step(instance: CampaignInstance, step_id: uuid.UUID) -> SequenceStep:
    step = db.session.scalar(
        sa.select(SequenceStep).where(SequenceStep.id == step_id, SequenceStep.template_id == instance.template_id)
    )
    if step is None:
        raise NotFound(f"Step {step_id} not found.")
    return step


def _impacts(instance: CampaignInstance, steps: list[SequenceStep]) -> dict[uuid.UUID, Impact]:
    """One grouped count of the live contacts by progress, spread over the steps."""
    done = Counter(
        dict(
            db.session.execute(
                sa.select(CampaignEnrollment.current_step, sa.func.count())
                .where(CampaignEnrollment.instance_id == instance.id, CampaignEnrollment.status.in_(lifecycle.LIVE))
                .group_by(CampaignEnrollment.current_step)
            ).all()
        )
    )
    impacts, low = {}, 0
    for step in steps:
        not_past = sum(n for position, n in done.items() if position < step.position)
        waiting = sum(n for position, n in done.items() if low <= position < step.position) if step.is_active else 0
        impacts[step.id] = Impact(waiting=waiting, not_past=not_past)
        if step.is_active:
            low = step.position
    return impacts


def _previous_active(instance: CampaignInstance, position: int) -> int:
    """The position of the last active step before `position` (0 when none): contacts whose
    progress is from there up to just before `position` wait on the step at `position`."""
    return (
        db.session.scalar(
            sa.select(sa.func.max(SequenceStep.position)).where(
                SequenceStep.template_id == instance.template_id,
                SequenceStep.position < position,
                SequenceStep.is_active.is_(True),
            )
        )
        or 0
    )


def _next_active(instance: CampaignInstance, position: int) -> SequenceStep | None:
    return db.session.scalar(
        sa.select(SequenceStep)
        .where(
            SequenceStep.template_id == instance.template_id,
            SequenceStep.position > position,
            SequenceStep.is_active.is_(True),
        )
        .order_by(SequenceStep.position)
        .limit(1)
    )


def _waiting_on(instance: CampaignInstance, low: int, high: int, *, statuses=lifecycle.LIVE) -> list:
    table = CampaignEnrollment.__table__
    return [
        table.c.instance_id == instance.id,
        table.c.status.in_(statuses),
        table.c.current_step >= low,
        table.c.current_step < high,
    ]


def _settle_waiting(
    instance: CampaignInstance, step: SequenceStep, low: int, choice: str | None, *, actor, now: datetime
) -> tuple[int, int]:
    """The contacts waiting on `step`, which goes away: skipped to the next active step (or
    completed when none is left) or stopped. Returns (skipped, stopped)."""
    where = _waiting_on(instance, low, step.position)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(CampaignEnrollment.__table__).where(*where))
    if not count:
        return 0, 0
    if choice not in (SKIP, STOP):
        message = (
            f"{count} contact(s) are waiting on this step. Say what happens to them: waiting: skip (they go on to "
            "the next step at its due time) or stop (their sequence ends)."
        )
        raise Conflict(message, details=[{"field": "waiting", "waiting": count, "allowed": [SKIP, STOP]}])
    if choice == STOP:
        stopped = lifecycle.change("end", actor=actor, where=where, reason=lifecycle.Reason.STEP_REMOVED, now=now)
        return 0, len(stopped)
    following = _next_active(instance, step.position)
    if following is None:
        lifecycle.change("complete", actor=actor, where=where, reason=lifecycle.Reason.ALL_STEPS_DONE, now=now)
    else:
        _reschedule(instance, following, low, step.position, now=now, task_step=step)
    _skip_tasks(instance, step, low, now=now)
    return count, 0


def _skip_tasks(instance: CampaignInstance, step: SequenceStep, low: int, *, now: datetime) -> None:
    """The open tasks of `step` (a LinkedIn step the contacts were waiting on) are skipped."""
    table = Task.__table__
    waiting = sa.select(CampaignEnrollment.id).where(*_waiting_on(instance, low, step.position))
    db.session.execute(
        sa.update(table)
        .where(table.c.step_id == step.id, table.c.status == TaskStatus.OPEN, table.c.enrollment_id.in_(waiting))
        .values(status=TaskStatus.SKIPPED, completed_at=now, updated_at=now)
    )


def _delay(step: SequenceStep) -> timedelta:
    return timedelta(days=step.delay_days, hours=step.delay_hours)


def _reschedule(
    instance: CampaignInstance,
    step: SequenceStep,
    low: int,
    high: int,
    *,
    now: datetime,
    task_step: SequenceStep | None = None,
) -> int:
    """One UPDATE: the contacts whose progress is in [low, high) are due `step`'s delay after
    their previous step's send (or task) time, or after the launch or their enrollment when they
    have done none. An out-of-office wait that ends later is kept; another wait reason is
    dropped (the worker finds it again). Contacts waiting for nothing scheduled (a send in
    progress, a task) keep waiting, except those waiting for a task of `task_step`."""
    e = CampaignEnrollment.__table__
    s = SequenceStep.__table__
    previous = sa.and_(s.c.template_id == instance.template_id, s.c.position == e.c.current_step)
    sent_at = (
        sa.select(Delivery.sent_at)
        .join(s, s.c.id == Delivery.step_id)
        .where(Delivery.enrollment_id == e.c.id, previous)
        .scalar_subquery()
    )
    done_at = (
        sa.select(Task.completed_at)
        .join(s, s.c.id == Task.step_id)
        .where(Task.enrollment_id == e.c.id, previous)
        .scalar_subquery()
    )
    started = sa.literal(instance.started_at or now, e.c.enrolled_at.type)
    base = sa.case(
        (e.c.current_step == 0, sa.case((e.c.enrolled_at > started, e.c.enrolled_at), else_=started)),
        else_=sa.func.coalesce(sent_at, done_at),
    )
    due = plus(base, _delay(step))
    keep = sa.or_(due.is_(None), sa.and_(e.c.wait_reason == policy.Delay.AWAY, e.c.next_action_at > due))
    scheduled = e.c.next_action_at.is_not(None)
    if task_step is not None:
        open_task = sa.exists().where(
            Task.enrollment_id == e.c.id, Task.step_id == task_step.id, Task.status == TaskStatus.OPEN
        )
        scheduled = sa.or_(scheduled, open_task)
    result = db.session.execute(
        sa.update(e)
        .where(*_waiting_on(instance, low, high, statuses=SCHEDULED), scheduled)
        .values(
            next_action_at=sa.case((keep, sa.func.coalesce(e.c.next_action_at, now)), else_=due),
            wait_reason=sa.case((keep, e.c.wait_reason), else_=None),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def _shift_progress(instance: CampaignInstance, *, start: int, by: int) -> None:
    """Keep every contact's progress on the same steps when the positions from `start` on shift."""
    e = CampaignEnrollment.__table__
    db.session.execute(
        sa.update(e)
        .where(e.c.instance_id == instance.id, e.c.current_step >= start)
        .values(current_step=e.c.current_step + by)
        .execution_options(synchronize_session=False)
    )

"""Tasks: LinkedIn and manual steps that wait for a person. Done or skipped, the enrollment moves on."""

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from webapp.errors import Conflict, NotFound
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    Contact,
    SequenceStep,
    Task,
    Workspace,
    utcnow,
)
from webapp.models.enums import EventType, TaskStatus
from webapp.services import lifecycle
from webapp.services.events import record_event
from webapp.services.progress import advance
from webapp.services.sending import compose
from webapp.services.sending.settings import InvalidSettings, SettingsCache


def list_tasks(
    workspace: Workspace,
    *,
    status: str = "open",
    due: str | None = None,
    type: str | None = None,
    instance_id: uuid.UUID | None = None,
    task_id: uuid.UUID | None = None,
    page: int = 1,
    limit: int = 20,
    now: datetime | None = None,
):
    """Tasks as (task, contact, step, campaign, message) rows: the message is the step's with
    the contact's fields filled in. `due` is overdue, today (until the end of the UTC day) or
    upcoming."""
    now = now or utcnow()
    step = aliased(SequenceStep)
    query = (
        sa.select(Task, Contact, step, CampaignInstance)
        .join(CampaignEnrollment, CampaignEnrollment.id == Task.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .join(step, step.id == Task.step_id)
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .where(Task.workspace_id == workspace.id)
    )
    if status != "all":
        query = query.where(Task.status == status)
    end_of_day = _end_of_day(now)
    if due == "overdue":
        query = query.where(Task.due_at < now)
    elif due == "today":
        query = query.where(Task.due_at < end_of_day)
    elif due == "upcoming":
        query = query.where(Task.due_at >= end_of_day)
    if type:
        query = query.where(Task.type == type)
    if instance_id:
        query = query.where(CampaignEnrollment.instance_id == instance_id)
    if task_id:
        query = query.where(Task.id == task_id)
    query = query.order_by(Task.due_at, Task.id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.execute(query.limit(limit).offset((page - 1) * limit)).all()
    settings_of = SettingsCache()
    return [(*row, _message(row[1], row[2], row[3], settings_of)) for row in rows], total


def _message(
    contact: Contact, step: SequenceStep, instance: CampaignInstance, settings_of: SettingsCache
) -> str | None:
    """The step's message as the contact gets it: the same text in the API and the dashboard."""
    try:
        settings = settings_of(instance.id)
    except InvalidSettings:
        settings = None
    return compose.task_message(step.body, contact, settings)


def _end_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def due_state(due_at: datetime, now: datetime) -> str:
    """Which `due` filter a task due at `due_at` falls in at `now`: overdue, today (until the end
    of the UTC day) or upcoming."""
    return "overdue" if due_at < now else "today" if due_at < _end_of_day(now) else "upcoming"


def finish_task(
    workspace: Workspace,
    task_id: uuid.UUID,
    *,
    done: bool,
    reason: str | None = None,
    now: datetime | None = None,
    actor: lifecycle.Actor = lifecycle.Actor.PERSON,
) -> Task:
    """Mark a task done (or skipped) and advance its enrollment to the next step.

    Raises NotFound for another workspace's task and Conflict for a task already finished.
    """
    now = now or utcnow()
    task = db.session.scalar(
        sa.select(Task).where(Task.id == task_id, Task.workspace_id == workspace.id).with_for_update(of=Task)
    )
    if task is None:
        raise NotFound(f"Task {task_id} not found.")
    if task.status != TaskStatus.OPEN:
        raise Conflict(f"Task is already {task.status}.")
    task.status, task.completed_at, task.updated_at = (TaskStatus.DONE if done else TaskStatus.SKIPPED), now, now
    enrollment = db.session.get(CampaignEnrollment, task.enrollment_id)
    step = db.session.get(SequenceStep, task.step_id)
    kind = EventType.TASK_COMPLETED if done else EventType.TASK_SKIPPED
    record_event(
        workspace,
        enrollment=enrollment,
        type=kind,
        provider="drumbeat",
        provider_event_id=f"{kind}:{task.id}",
        step_id=step.id,
        channel=step.channel,
        occurred_at=now,
        metadata={"reason": reason} if reason else None,
    )
    advance([(enrollment.id, enrollment.instance_id, step.position)], now=now, actor=actor)
    db.session.commit()
    return task


def skip_overdue_tasks(now: datetime) -> int:
    """Auto-skip open tasks older than their campaign's `task_auto_skip_hours` setting (the worker calls this)."""
    rows = db.session.execute(
        sa.select(Task.id, Task.workspace_id, Task.due_at, CampaignEnrollment.instance_id)
        .join(CampaignEnrollment, CampaignEnrollment.id == Task.enrollment_id)
        .where(Task.status == TaskStatus.OPEN, Task.due_at < now)
    ).all()
    settings_of = SettingsCache()
    skipped = 0
    for task_id, workspace_id, due_at, instance_id in rows:
        try:
            hours = settings_of(instance_id).task_auto_skip_hours
        except InvalidSettings:
            continue
        if hours and due_at + timedelta(hours=hours) <= now:
            workspace = db.session.get(Workspace, workspace_id)
            finish_task(
                workspace, task_id, done=False, reason="auto-skipped: overdue", now=now, actor=lifecycle.Actor.WORKER
            )
            skipped += 1
    db.session.rollback()
    return skipped

"""LinkedIn and manual tasks, and the deliveries that need a person (unknown outcome)."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.schemas.common import NoOptions
from webapp.schemas.tasks import DeliveryOut, DeliveryQuery, ResolveDeliveryIn, TaskFinishIn, TaskOut, TaskQuery
from webapp.services import lifecycle, tasks
from webapp.services.sending import deliveries

TAG = "tasks"


def task_view(row) -> dict:
    task, contact, step, instance, message = row
    return {
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "due_at": task.due_at,
        "completed_at": task.completed_at,
        "enrollment_id": task.enrollment_id,
        "instance_id": instance.id,
        "instance_name": instance.name,
        "step_id": step.id,
        "step_number": step.position,
        "message": message,
        "contact": contact,
    }


@operation(bp, "GET", "/tasks", summary="List tasks", tag=TAG, query=TaskQuery, response=TaskOut, paginated=True)
def list_tasks(query: TaskQuery):
    """Filters: `status` (open by default), `due` (overdue, today, upcoming), `type`, `instance_id`."""
    rows, total = tasks.list_tasks(
        g.workspace,
        status=query.status,
        due=query.due,
        type=query.type,
        instance_id=query.instance_id,
        page=query.page,
        limit=query.limit,
    )
    return Page([task_view(row) for row in rows], total, query.page, query.limit)


def _finished(task_id: uuid.UUID) -> dict:
    rows, _ = tasks.list_tasks(g.workspace, status="all", task_id=task_id)
    return task_view(rows[0])


@operation(
    bp,
    "POST",
    "/tasks/<uuid:task_id>/complete",
    summary="Mark a task done",
    tag=TAG,
    body=TaskFinishIn,
    response=TaskOut,
    extra_errors=(409,),
)
def complete_task(task_id: uuid.UUID, body: TaskFinishIn):
    """The enrollment moves on to its next step."""
    tasks.finish_task(g.workspace, task_id, done=True, reason=body.note, actor=lifecycle.Actor.API)
    return _finished(task_id)


@operation(
    bp,
    "POST",
    "/tasks/<uuid:task_id>/skip",
    summary="Skip a task",
    tag=TAG,
    body=TaskFinishIn,
    response=TaskOut,
    extra_errors=(409,),
)
def skip_task(task_id: uuid.UUID, body: TaskFinishIn):
    """The skip is recorded on the enrollment's timeline and the enrollment moves on."""
    tasks.finish_task(g.workspace, task_id, done=False, reason=body.note or "skipped", actor=lifecycle.Actor.API)
    return _finished(task_id)


@operation(
    bp,
    "GET",
    "/deliveries",
    summary="List deliveries (unknown ones by default)",
    tag=TAG,
    query=DeliveryQuery,
    response=DeliveryOut,
    paginated=True,
)
def list_deliveries(query: DeliveryQuery):
    """A delivery is `unknown` when a worker stopped between sending and recording: resolve it."""
    items, total = deliveries.list_deliveries(g.workspace, status=query.status, page=query.page, limit=query.limit)
    return Page(items, total, query.page, query.limit)


@operation(
    bp,
    "POST",
    "/deliveries/<uuid:delivery_id>/resolve",
    summary="Resolve an unknown delivery",
    tag=TAG,
    body=ResolveDeliveryIn,
    response=DeliveryOut,
    extra_errors=(409,),
)
def resolve_delivery(delivery_id: uuid.UUID, body: ResolveDeliveryIn):
    return deliveries.resolve_unknown_delivery(g.workspace, delivery_id, sent=body.sent, actor=lifecycle.Actor.API)


@operation(
    bp,
    "POST",
    "/deliveries/<uuid:delivery_id>/retry",
    summary="Send a failed delivery again",
    tag=TAG,
    body=NoOptions,
    response=DeliveryOut,
    extra_errors=(409,),
)
def retry_delivery(delivery_id: uuid.UUID, body: NoOptions):
    """Its enrollment is active again and the step goes out at the worker's next run. 409 unless
    it failed, its campaign is not completed and the contact may still be written to."""
    return deliveries.retry_failed_delivery(g.workspace, delivery_id, actor=lifecycle.Actor.API)

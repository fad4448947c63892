"""Campaign instances, their status, and their performance."""

import uuid

from flask import current_app, g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.extensions import limiter
from webapp.schemas.analytics import PerformanceOut
from webapp.schemas.common import CloneIn
from webapp.schemas.instances import InstanceIn, InstanceOut, InstanceQuery, InstanceUpdateIn
from webapp.schemas.tasks import ResolveDeliveriesOut, ResolveDeliveryIn, ScheduleList, ScheduleQuery
from webapp.services import analytics, instances, lifecycle, schedule
from webapp.services.sending import deliveries

TAG = "instances"


@operation(
    bp,
    "POST",
    "/instances",
    summary="Create a campaign instance from a template",
    tag=TAG,
    body=InstanceIn,
    response=InstanceOut,
    status=201,
    extra_errors=(404,),
)
def create_instance(body: InstanceIn):
    return instances.create_instance(g.workspace, body)


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/clone",
    summary="Clone a campaign as a new draft",
    tag=TAG,
    body=CloneIn,
    body_optional=True,
    response=InstanceOut,
    status=201,
    extra_errors=(409,),
)
def clone_instance(instance_id: uuid.UUID, body: CloneIn):
    """A new draft campaign with the same template and settings, and no enrollments, events or
    sends; the body may name it (default "<name> (copy)", numbered when that name is taken).
    409 when the template has been deactivated since."""
    return instances.clone_instance(g.workspace, instance_id, name=body.name)


@operation(
    bp,
    "GET",
    "/instances",
    summary="List campaign instances",
    tag=TAG,
    query=InstanceQuery,
    response=InstanceOut,
    paginated=True,
)
def list_instances(query: InstanceQuery):
    items, total = instances.list_instances(
        g.workspace, status=query.status, search=query.search, page=query.page, limit=query.limit
    )
    return Page(items, total, query.page, query.limit)


@operation(bp, "GET", "/instances/<uuid:instance_id>", summary="Get a campaign instance", tag=TAG, response=InstanceOut)
def get_instance(instance_id: uuid.UUID):
    return instances.get_instance(g.workspace, instance_id)


@operation(
    bp,
    "PATCH",
    "/instances/<uuid:instance_id>",
    summary="Edit, schedule, launch, pause, resume or complete a campaign",
    tag=TAG,
    body=InstanceUpdateIn,
    response=InstanceOut,
    extra_errors=(404, 409, 422),
)
def update_instance(instance_id: uuid.UUID, body: InstanceUpdateIn):
    """Only the fields given change. Status: draft -> active (launch) -> paused <-> active ->
    completed; draft -> completed (cancel); an invalid transition is a 409 whose message lists the
    allowed ones. Settings that would leave the campaign unable to send are refused; a change of
    timing re-plans the waiting enrollments at once."""
    return instances.update_instance(g.workspace, instance_id, body, actor=lifecycle.Actor.API)


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/performance",
    summary="Campaign performance",
    tag=TAG,
    response=PerformanceOut,
)
# Below @operation: Flask-Limiter checks a decorated limit only when its own wrapper runs.
@limiter.limit(lambda: current_app.config["RATELIMIT_PERFORMANCE"], override_defaults=False)
def get_instance_performance(instance_id: uuid.UUID):
    """Enrollment counts, event totals and rates, per step, and a daily series."""
    return analytics.instance_performance(g.workspace, instance_id)


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/schedule",
    summary="What will go out when",
    tag=TAG,
    query=ScheduleQuery,
    response=ScheduleList,
)
def get_instance_schedule(instance_id: uuid.UUID, query: ScheduleQuery):
    """The next sends of the campaign, in time order, with the reason for any delay (send
    window, daily cap, paused campaign, waiting for a task)."""
    return ScheduleList(items=schedule.preview_schedule(g.workspace, instance_id, limit=query.limit))


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/deliveries/resolve",
    summary="Resolve a campaign's unknown deliveries at once",
    tag=TAG,
    body=ResolveDeliveryIn,
    response=ResolveDeliveriesOut,
)
def resolve_instance_deliveries(instance_id: uuid.UUID, body: ResolveDeliveryIn):
    """Every delivery of the campaign whose outcome is unknown (a worker stopped mid-send): all
    were sent (their enrollments move on), or none was (they go out again)."""
    resolved = deliveries.resolve_unknown_deliveries(
        g.workspace, instance_id, sent=body.sent, actor=lifecycle.Actor.API
    )
    return ResolveDeliveriesOut(resolved=resolved)

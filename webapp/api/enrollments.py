"""Enrolling contacts into an instance, and managing one enrollment."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.schemas.common import NoOptions, Query
from webapp.schemas.enrollments import (
    BulkEnrollmentIn,
    BulkEnrollmentOut,
    EnrollmentActionIn,
    EnrollmentActionOut,
    EnrollmentIn,
    EnrollmentOut,
    EnrollmentQuery,
    EnrollmentStatusIn,
)
from webapp.schemas.events import EventOut
from webapp.services import enrollments, lifecycle

TAG = "enrollments"


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/enrollments",
    summary="Enroll one contact",
    tag=TAG,
    body=EnrollmentIn,
    response=EnrollmentOut,
    status=201,
)
def create_enrollment(instance_id: uuid.UUID, body: EnrollmentIn):
    """By `contact_id`, or by `contact` data (created or updated by email). A suppressed or
    already enrolled contact is a 409, and so is a contact live (enrolled, active or paused) in
    another campaign of the workspace, unless `allow_other_campaigns` is true."""
    return enrollments.enroll_contact(g.workspace, instance_id, body)


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/enrollments/bulk",
    summary="Enroll up to 10,000 contacts",
    tag=TAG,
    body=BulkEnrollmentIn,
    response=BulkEnrollmentOut,
)
def create_enrollments_bulk(instance_id: uuid.UUID, body: BulkEnrollmentIn):
    """Answers with counts: enrolled, already enrolled, suppressed, in another campaign, and the
    invalid items by index with the reason. Suppressed contacts are never enrolled. A contact live
    (enrolled, active or paused) in another campaign of the workspace is not enrolled either,
    unless `allow_other_campaigns` is true: it is counted in `in_other_campaign` and listed in
    `skipped` by index, with the reason `in_other_campaign` and the other campaign's name."""
    return enrollments.enroll_contacts(
        g.workspace, instance_id, body.contacts, allow_other_campaigns=body.allow_other_campaigns
    )


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/enrollments/actions",
    summary="Pause, resume, unenroll, mark replied or move many enrollments",
    tag=TAG,
    body=EnrollmentActionIn,
    response=EnrollmentActionOut,
    extra_errors=(409,),
)
def act_on_enrollments(instance_id: uuid.UUID, body: EnrollmentActionIn):
    """The enrollments listed in `enrollment_ids` (each reported in `results`: changed, skipped
    with the reason, or not_found), or every one `filter` matches (the list's filters: status,
    search, missing), in one transaction. An enrollment not in a status the action applies to is
    skipped. `move` enrolls the live ones' contacts in `target_instance_id` and unenrolls them here
    (at most 10,000 at a time: 409 above that)."""
    return enrollments.act_on_enrollments(g.workspace, instance_id, body, actor=lifecycle.Actor.API)


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/enrollments",
    summary="List an instance's enrollments",
    tag=TAG,
    query=EnrollmentQuery,
    response=EnrollmentOut,
    paginated=True,
)
def list_enrollments(instance_id: uuid.UUID, query: EnrollmentQuery):
    items, total = enrollments.list_enrollments(
        g.workspace,
        instance_id,
        status=query.status,
        search=query.search,
        sort=query.sort,
        page=query.page,
        limit=query.limit,
        missing=query.missing,
    )
    return Page(items, total, query.page, query.limit)


@operation(bp, "GET", "/enrollments/<uuid:enrollment_id>", summary="Get an enrollment", tag=TAG, response=EnrollmentOut)
def get_enrollment(enrollment_id: uuid.UUID):
    return enrollments.get_enrollment(g.workspace, enrollment_id)


@operation(
    bp,
    "PATCH",
    "/enrollments/<uuid:enrollment_id>",
    summary="Pause or resume an enrollment",
    tag=TAG,
    body=EnrollmentStatusIn,
    response=EnrollmentOut,
    extra_errors=(409,),
)
def update_enrollment(enrollment_id: uuid.UUID, body: EnrollmentStatusIn):
    return enrollments.change_enrollment_status(g.workspace, enrollment_id, body.status, actor=lifecycle.Actor.API)


@operation(
    bp,
    "DELETE",
    "/enrollments/<uuid:enrollment_id>",
    summary="Unenroll",
    tag=TAG,
    response=EnrollmentOut,
    extra_errors=(409,),
)
def delete_enrollment(enrollment_id: uuid.UUID):
    """The enrollment becomes `removed` (final); its history stays."""
    return enrollments.unenroll(g.workspace, enrollment_id, actor=lifecycle.Actor.API)


@operation(
    bp,
    "POST",
    "/enrollments/<uuid:enrollment_id>/skip-wait",
    summary="Make an enrollment's next step due now",
    tag=TAG,
    body=NoOptions,
    response=EnrollmentOut,
    extra_errors=(409,),
)
def skip_wait(enrollment_id: uuid.UUID, body: NoOptions):
    """Skips the step's delay (or an out-of-office wait): the next step goes at the worker's next
    run, within the campaign's send window, caps and gaps. 409 unless the enrollment is active
    and waiting on a time."""
    return enrollments.skip_wait(g.workspace, enrollment_id, actor=lifecycle.Actor.API)


@operation(
    bp,
    "GET",
    "/enrollments/<uuid:enrollment_id>/events",
    summary="An enrollment's events",
    tag=TAG,
    query=Query,
    response=EventOut,
    paginated=True,
)
def list_enrollment_events(enrollment_id: uuid.UUID, query: Query):
    items, total = enrollments.list_enrollment_events(g.workspace, enrollment_id, page=query.page, limit=query.limit)
    return Page(items, total, query.page, query.limit)

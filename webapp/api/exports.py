"""CSV exports: contacts, a campaign's enrollments and its events, streamed as attachments."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import operation
from webapp.downloads import csv_download
from webapp.schemas.contacts import ContactFilter
from webapp.schemas.enrollments import EnrollmentFilter
from webapp.services import exports

TAG = "exports"
CSV = "text/csv"


@operation(
    bp, "GET", "/contacts/export", summary="Export contacts as CSV", tag=TAG, query=ContactFilter, media_type=CSV
)
def export_contacts(query: ContactFilter):
    """The contacts the list shows with the same `search` and `status`, ordered by email, one
    column per custom field. Cells that a spreadsheet would run as a formula start with `'`."""
    return csv_download(exports.export_contacts(g.workspace, search=query.search, status=query.status))


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/enrollments/export",
    summary="Export a campaign's enrollments as CSV",
    tag=TAG,
    query=EnrollmentFilter,
    media_type=CSV,
)
def export_enrollments(instance_id: uuid.UUID, query: EnrollmentFilter):
    """The enrollments the list shows with the same `status` and `search`, in the order they
    enrolled: contact, status, steps done, next action, last event."""
    return csv_download(exports.export_enrollments(g.workspace, instance_id, status=query.status, search=query.search))


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/events/export",
    summary="Export a campaign's events as CSV",
    tag=TAG,
    media_type=CSV,
)
def export_events(instance_id: uuid.UUID):
    """Every event of the campaign in time order: time, type, step, contact email, channel,
    provider and the key metadata (url, bounce_type, smtp_code, reason, snippet, message_id)."""
    return csv_download(exports.export_events(g.workspace, instance_id))

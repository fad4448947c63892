"""Contacts: the searchable list, one contact with its campaigns and activity, the create and edit
forms, suppression (unsubscribed, bounced, complained) and the workspace's suppression list."""

import json
import math
import uuid

from flask import Blueprint, flash, request, url_for
from pydantic import ValidationError

from webapp.downloads import csv_download
from webapp.errors import Conflict, ValidationFailed
from webapp.htmx import hx_redirect, render
from webapp.models.enums import ContactStatus
from webapp.schemas.common import TIMEZONE_SCHEMA
from webapp.schemas.contacts import ContactData, ContactQuery, ContactUpdate, SuppressionIn
from webapp.security import current_workspace, require_login
from webapp.services.contact_views import find_contact_by_email, list_contact_enrollments, list_suppressed_contacts
from webapp.services.contacts import (
    create_contact,
    delete_contact,
    get_contact,
    list_contacts,
    set_contact_status,
    update_contact,
)
from webapp.services.enrollments import list_enrollment_events
from webapp.services.exports import export_contacts
from webapp.web import errors_by_field
from webapp.web.forms import parse_form

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
bp.before_request(require_login)

PER_PAGE = 25
TIMELINE_LIMIT = 100
FIELDS = ("email", "first_name", "last_name", "company", "title", "linkedin_url", "timezone")
STATUS_LABELS = {
    ContactStatus.SUBSCRIBED: "Subscribed",
    ContactStatus.UNSUBSCRIBED: "Unsubscribed",
    ContactStatus.BOUNCED: "Bounced",
    ContactStatus.COMPLAINED: "Complained",
}
SUPPRESSED = (ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED, ContactStatus.COMPLAINED)
TIMEZONES = TIMEZONE_SCHEMA["enum"]


def _query(allowed_statuses=tuple(STATUS_LABELS)) -> ContactQuery:
    """The list's query string; a malformed value is dropped rather than refused."""
    args = {key: value for key, value in request.args.items() if value.strip()}
    if args.get("status") not in allowed_statuses:
        args.pop("status", None)
    try:
        return ContactQuery.model_validate(args)
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        return ContactQuery.model_validate({key: value for key, value in args.items() if key not in bad})


@bp.get("")
def index():
    """All contacts, searchable and filtered by status; htmx asks for the `rows` block."""
    query = _query()
    contacts, total = list_contacts(
        current_workspace(), search=query.search, status=query.status, page=query.page, limit=PER_PAGE
    )
    return render(
        "contacts/index.html",
        block="rows",
        contacts=contacts,
        total=total,
        page=query.page,
        total_pages=math.ceil(total / PER_PAGE),
        query=query,
        statuses=[("", "All statuses"), *STATUS_LABELS.items()],
    )


@bp.get("/export")
def export():
    """The contacts the list shows with the same search and status, as a CSV download."""
    query = _query()
    return csv_download(export_contacts(current_workspace(), search=query.search, status=query.status))


# Create and edit.


def _custom_fields_text(fields: dict | None) -> str:
    lines = []
    for name, value in (fields or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{name}: {' '.join(text.splitlines())}")
    return "\n".join(lines)


def _parse_custom_fields(text: str) -> dict:
    fields = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            message = f"Line {number}: write each custom field as name: value."
            raise ValidationFailed(message, details=[{"field": "custom_fields", "message": message}])
        fields[name.strip()[:64]] = value.strip()
    return fields


def _submitted(*, editing: bool) -> tuple[dict, dict, dict[str, list[str]]]:
    """The form as typed (to show again) and as data for the schema, plus errors found so far."""
    values = {name: request.form.get(name, "").strip() for name in FIELDS}
    values["custom_fields"] = request.form.get("custom_fields", "")
    values["custom_fields_original"] = request.form.get("custom_fields_original", "")
    data: dict = {name: values[name] or None for name in FIELDS}
    data["email"] = values["email"]
    errors: dict[str, list[str]] = {}
    # Editing leaves custom fields alone unless their text changed: values set through the API
    # (numbers, lists) keep their type.
    if not editing or values["custom_fields"].strip() != values["custom_fields_original"].strip():
        try:
            data["custom_fields"] = _parse_custom_fields(values["custom_fields"])
        except ValidationFailed as exc:
            errors.update(errors_by_field(exc.details))
    return values, data, errors


def _form_page(contact, values: dict, errors: dict, status: int = 200):
    return render(
        "contacts/form.html",
        block="contact_form",
        status=status,
        contact=contact,
        values=values,
        errors=errors,
        timezones=TIMEZONES,
    )


@bp.get("/new")
def new():
    """The form for a new contact."""
    return _form_page(None, {}, {})


@bp.post("")
def create():
    """Create a contact; errors come back beside their fields (422)."""
    values, data, errors = _submitted(editing=False)
    try:
        contact_data = parse_form(ContactData, data=data)
    except ValidationFailed as exc:
        errors = {**errors_by_field(exc.details), **errors}
    if errors:
        return _form_page(None, values, errors, 422)
    try:
        contact = create_contact(current_workspace(), contact_data)
    except Conflict as exc:
        return _form_page(None, values, {"email": [exc.message]}, 422)
    flash(f"Contact {contact.email} created.", "success")
    return hx_redirect(url_for("contacts.show", contact_id=contact.id))


@bp.get("/<uuid:contact_id>/edit")
def edit(contact_id: uuid.UUID):
    """The form to change a contact."""
    contact = get_contact(current_workspace(), contact_id)
    values = {name: getattr(contact, name) or "" for name in FIELDS}
    values["custom_fields"] = values["custom_fields_original"] = _custom_fields_text(contact.custom_fields)
    return _form_page(contact, values, {})


@bp.post("/<uuid:contact_id>/edit")
def update(contact_id: uuid.UUID):
    """Save a contact's changes; blank fields are cleared."""
    workspace = current_workspace()
    contact = get_contact(workspace, contact_id)
    values, data, errors = _submitted(editing=True)
    try:
        changes = parse_form(ContactUpdate, data=data)
    except ValidationFailed as exc:
        errors = {**errors_by_field(exc.details), **errors}
    if errors:
        return _form_page(contact, values, errors, 422)
    try:
        update_contact(workspace, contact.id, changes)
    except Conflict as exc:
        return _form_page(get_contact(workspace, contact_id), values, {"email": [exc.message]}, 422)
    flash("Contact saved.", "success")
    return hx_redirect(url_for("contacts.show", contact_id=contact_id))


# One contact.


def _timeline(workspace, enrollments) -> list[tuple]:
    """The contact's events in every campaign, newest first."""
    events = []
    for item in enrollments:
        found, _total = list_enrollment_events(workspace, item.enrollment.id, limit=TIMELINE_LIMIT)
        events.extend((event, item) for event in found)
    events.sort(key=lambda pair: pair[0].occurred_at, reverse=True)
    return events[:TIMELINE_LIMIT]


def _show_page(contact_id: uuid.UUID, status: int = 200, **context):
    workspace = current_workspace()
    contact = get_contact(workspace, contact_id)
    enrollments = list_contact_enrollments(workspace, contact.id)
    return render(
        "contacts/show.html",
        status=status,
        contact=contact,
        enrollments=enrollments,
        events=_timeline(workspace, enrollments),
        custom_fields=[
            (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
            for name, value in (contact.custom_fields or {}).items()
        ],
        suppressed_statuses=[(status, STATUS_LABELS[status]) for status in SUPPRESSED],
        **context,
    )


@bp.get("/<uuid:contact_id>")
def show(contact_id: uuid.UUID):
    """A contact: fields, suppression, campaigns and activity."""
    return _show_page(contact_id)


@bp.post("/<uuid:contact_id>/delete")
def delete(contact_id: uuid.UUID):
    """Delete a subscribed contact; suppressed ones stay (409 with the reason)."""
    workspace = current_workspace()
    contact = get_contact(workspace, contact_id)
    try:
        delete_contact(workspace, contact.id)
    except Conflict as exc:
        return _show_page(contact_id, 409, delete_error=exc.message)
    flash(f"Contact {contact.email} deleted.", "success")
    return hx_redirect(url_for("contacts.index"))


@bp.get("/<uuid:contact_id>/resubscribe")
def confirm_resubscribe(contact_id: uuid.UUID):
    """Ask before taking a contact off the suppression list."""
    contact = get_contact(current_workspace(), contact_id)
    return render("contacts/resubscribe.html", contact=contact)


@bp.post("/<uuid:contact_id>/status")
def set_status(contact_id: uuid.UUID):
    """Suppress a contact, or re-subscribe it once confirmed."""
    workspace = current_workspace()
    contact = get_contact(workspace, contact_id)
    status = request.form.get("status", "")
    if status == ContactStatus.SUBSCRIBED and request.form.get("confirm") != "yes":
        return render("contacts/resubscribe.html", contact=contact)
    try:
        body = parse_form(
            SuppressionIn, data={"status": status, "reason": request.form.get("reason", "").strip() or None}
        )
    except ValidationFailed as exc:
        return _show_page(contact_id, 422, suppression_errors=errors_by_field(exc.details))
    if body.status != ContactStatus.SUBSCRIBED and contact.is_suppressed:
        flash(f"{contact.email} is already on the suppression list ({contact.status}).", "info")
        return hx_redirect(url_for("contacts.show", contact_id=contact_id))
    set_contact_status(workspace, contact.id, status=body.status, reason=body.reason)
    if body.status == ContactStatus.SUBSCRIBED:
        flash(f"{contact.email} is subscribed again.", "success")
    else:
        flash(f"{contact.email} is on the suppression list ({body.status}).", "success")
    return hx_redirect(url_for("contacts.show", contact_id=contact_id))


# The suppression list.


def _suppressed_page(status: int = 200, block: str | None = None, **context):
    query = _query(SUPPRESSED)
    contacts, total = list_suppressed_contacts(
        current_workspace(), search=query.search, status=query.status, page=query.page, limit=PER_PAGE
    )
    context.setdefault("values", {})
    context.setdefault("errors", {})
    return render(
        "contacts/suppressed.html",
        block=block,
        status=status,
        contacts=contacts,
        total=total,
        page=query.page,
        total_pages=math.ceil(total / PER_PAGE),
        query=query,
        statuses=[("", "All suppressed"), *((status, STATUS_LABELS[status]) for status in SUPPRESSED)],
        suppressed_statuses=[(status, STATUS_LABELS[status]) for status in SUPPRESSED],
        **context,
    )


@bp.get("/suppressed")
def suppressed():
    """Contacts that never receive email; htmx asks for the `rows` block."""
    return _suppressed_page(block="rows")


@bp.post("/suppressed")
def suppress():
    """Put an address on the suppression list, creating its contact if needed."""
    workspace = current_workspace()
    values = {
        "email": request.form.get("email", "").strip(),
        "status": request.form.get("status") or ContactStatus.UNSUBSCRIBED,
        "reason": request.form.get("reason", "").strip(),
    }
    errors: dict[str, list[str]] = {}
    try:
        contact_data = parse_form(ContactData, data={"email": values["email"]})
    except ValidationFailed as exc:
        errors.update(errors_by_field(exc.details))
    try:
        body = parse_form(SuppressionIn, data={"status": values["status"], "reason": values["reason"] or None})
        if body.status == ContactStatus.SUBSCRIBED:
            errors["status"] = ["Choose unsubscribed, bounced or complained."]
    except ValidationFailed as exc:
        errors.update(errors_by_field(exc.details))
    if errors:
        return _suppressed_page(422, block="suppress_form", values=values, errors=errors)
    contact = find_contact_by_email(workspace, contact_data.email)
    if contact is not None and contact.is_suppressed:
        flash(f"{contact.email} is already on the suppression list ({contact.status}).", "info")
        return hx_redirect(url_for("contacts.suppressed"))
    if contact is None:
        try:
            contact = create_contact(workspace, contact_data)
        except Conflict:
            contact = find_contact_by_email(workspace, contact_data.email)
    set_contact_status(
        workspace, contact.id, status=body.status, reason=body.reason or "added to the suppression list manually"
    )
    flash(f"{contact.email} is on the suppression list ({body.status}).", "success")
    return hx_redirect(url_for("contacts.suppressed"))

"""Campaigns (instances): the list, a new campaign, and one campaign's page.

The campaign page answers one URL; htmx asks for its blocks (`enrollments`, a row, the header)
and loads the expensive panels lazily from their own URLs (performance, next sends), which are
also plain pages for browsers without JavaScript. Every query goes through the services, one
page at a time: the page sends the same 9 statements with 60 enrollments or 100,000 (their
time is the services' and the indexes' business; see bench/campaign_page.py).
"""

import math
import uuid
from datetime import datetime

from flask import Blueprint, flash, redirect, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from webapp.downloads import csv_download
from webapp.errors import Conflict, InvalidTransition, NotFound, Unprocessable, ValidationFailed
from webapp.htmx import hx_redirect, hx_trigger, is_htmx, render
from webapp.models.enums import EnrollmentStatus, InstanceStatus
from webapp.schemas.analytics import PerformanceOut, of_step
from webapp.schemas.common import Query
from webapp.schemas.enrollments import EnrollmentActionIn, EnrollmentFilter, EnrollmentQuery, EnrollmentStatusIn
from webapp.schemas.instances import InstanceIn, InstanceQuery, InstanceStatusIn, InstanceUpdateIn
from webapp.schemas.tasks import ResolveDeliveryIn, ScheduleQuery
from webapp.schemas.validation import validation_failed
from webapp.security import current_workspace, require_login, safe_next
from webapp.services import (
    analytics,
    enrollments,
    exports,
    instances,
    lifecycle,
    mailboxes,
    readiness,
    schedule,
    templates,
)
from webapp.services.sending import deliveries
from webapp.web import errors_by_field
from webapp.web.forms import form_data
from webapp.web.times import user_zone

bp = Blueprint("instances", __name__, url_prefix="/campaigns")
bp.before_request(require_login)

CAMPAIGNS_PER_PAGE = 20
ENROLLMENTS_PER_PAGE = 50
EVENTS_PER_PAGE = 50
ATTENTION_LIMIT = 5
SCHEDULE_PANEL = 10
SCHEDULE_PAGE = 50
TEMPLATE_CHOICES = 100
DAY_FIELD = "settings.send_window.days"
ENROLLMENT_SORTS = (
    ("-enrolled_at", "Newest first"),
    ("enrolled_at", "Oldest first"),
    ("email", "Email, A to Z"),
    ("-email", "Email, Z to A"),
    ("status", "Status"),
    ("next_action_at", "Next action, soonest first"),
    ("-next_action_at", "Next action, latest first"),
)
COMPLETE_QUESTION = (
    "Complete this campaign? Nothing more will be sent and its live enrollments end. This cannot be undone."
)
# The daily chart: emails sent, and contacts on the day they first opened, clicked, replied, bounced.
SERIES = (
    ("sent", "Emails sent"),
    ("opened", "Contacts who first opened"),
    ("clicked", "Contacts who first clicked"),
    ("replied", "Contacts who replied"),
    ("bounced", "Contacts who bounced"),
)
# The steps chart: contacts per step, with each rate of the contacts who received that step.
FUNNEL = (
    ("received", "Contacts who received the step", None),
    ("opened", "Contacts who opened", "open_rate"),
    ("clicked", "Contacts who clicked", "click_rate"),
    ("replied", "Contacts who replied", "reply_rate"),
)


def _query(model: type[BaseModel]) -> BaseModel:
    """The query string through `model`; blank values (an "All" option) count as absent."""
    args = {name: value for name, value in request.args.items() if value.strip()}
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def _validate(model: type[BaseModel], data: dict) -> BaseModel:
    # Form values are all strings: validate in lax mode (Input models are strict for JSON bodies).
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def _pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def _toast(response, message: str, level: str = "success"):
    return hx_trigger(response, "toast", {"message": message, "level": level})


def status_actions(status: str) -> list[dict]:
    """The buttons of the allowed transitions only, labelled for what they do from `status`."""
    actions = []
    for target in instances.allowed_transitions(status):
        if target == InstanceStatus.ACTIVE:
            label = "Launch" if status == InstanceStatus.DRAFT else "Resume"
        elif target == InstanceStatus.PAUSED:
            label = "Pause"
        else:
            label = "Complete"
        actions.append({"status": str(target), "label": label, "confirm": target == InstanceStatus.COMPLETED})
    return actions


# The row buttons' names for the lifecycle's one-at-a-time transitions.
# The dashboard's one-at-a-time actions: the form each posts (a status, or the unenroll route).
ENROLLMENT_ACTIONS = {
    "pause": {"name": "pause", "status": EnrollmentStatus.PAUSED},
    "resume": {"name": "resume", "status": EnrollmentStatus.ACTIVE},
    "reply": {"name": "mark-replied", "status": EnrollmentStatus.REPLIED},
    "remove": {"name": "unenroll", "status": None},
}


def enrollment_actions(status: str) -> tuple[dict, ...]:
    """The buttons for what a person may do to an enrollment in `status` (the lifecycle says)."""
    return tuple(
        {**ENROLLMENT_ACTIONS[t.name], "label": t.label} for t in lifecycle.actions(status, lifecycle.Actor.PERSON)
    )


def _here() -> str:
    return request.full_path.rstrip("?")


@bp.get("")
def index():
    """All campaigns, filtered by status and name."""
    query = _query(InstanceQuery)
    items, total = instances.list_instances(
        current_workspace(), status=query.status, search=query.search, page=query.page, limit=CAMPAIGNS_PER_PAGE
    )
    return render(
        "instances/index.html",
        block="rows",
        items=items,
        total=total,
        page=query.page,
        total_pages=_pages(total, CAMPAIGNS_PER_PAGE),
        query=query,
        statuses=[str(status) for status in InstanceStatus],
    )


def _new_form(*, errors: dict | None = None, status: int = 200):
    choices, _ = templates.list_templates(current_workspace(), is_active=True, limit=TEMPLATE_CHOICES)
    values = request.form if request.method == "POST" else request.args
    return render(
        "instances/new.html",
        block="campaign_form",
        status=status,
        choices=choices,
        values=values,
        days=values.getlist(DAY_FIELD),
        errors=errors or {},
    )


@bp.get("/new")
def new():
    """The form for a new campaign; `?template_id=` preselects a template."""
    return _new_form()


def _form_errors(details: list[dict]) -> dict[str, list[str]]:
    # A list item's error (`...days.0`) belongs to the list's field.
    errors: dict[str, list[str]] = {}
    for field, messages in errors_by_field(details).items():
        parts = field.split(".")
        while parts and parts[-1].isdigit():
            parts.pop()
        errors.setdefault(".".join(parts), []).extend(messages)
    return errors


@bp.post("")
def create():
    """Create a draft campaign from a template, or show the form again with its errors (422)."""
    try:
        body = _validate(InstanceIn, form_data(lists=(DAY_FIELD,)))
        instance = instances.create_instance(current_workspace(), body)
    except ValidationFailed as exc:
        return _new_form(errors=_form_errors(exc.details), status=422)
    except (NotFound, Conflict) as exc:
        return _new_form(errors={"template_id": [exc.message]}, status=422)
    flash(f"Campaign “{instance.name}” created as a draft: enroll contacts, then launch it.", "success")
    return hx_redirect(url_for(".show", instance_id=instance.id))


# The settings the campaign forms edit: on the edit form a blank one goes back to the template's.
FORM_SETTINGS = (
    "daily_cap",
    "timezone",
    "send_window",
    "skip_holidays",
    "track_opens",
    "track_clicks",
    "from_name",
    "from_email",
)


def _edit_values(instance) -> MultiDict:
    """The edit form's fields, from the campaign's own settings (not the template's)."""
    settings = instance.settings or {}
    window = settings.get("send_window") or {}
    values = MultiDict({"name": instance.name})
    for key in FORM_SETTINGS:
        value = settings.get(key)
        if key != "send_window" and value is not None:
            values[f"settings.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for key in ("start", "end", "timezone"):
        if window.get(key):
            values[f"settings.send_window.{key}"] = window[key]
    values.setlist(DAY_FIELD, [str(day) for day in window.get("days", [])])
    if instance.start_at is not None:
        values["start_at"] = instance.start_at.astimezone(user_zone()).strftime("%Y-%m-%dT%H:%M")
    return values


def _edit_form(instance, values, *, errors: dict | None = None, status: int = 200):
    return render(
        "instances/edit.html",
        block="edit_form",
        status=status,
        instance=instance,
        values=values,
        days=values.getlist(DAY_FIELD),
        errors=errors or {},
        zone=user_zone().key,
    )


@bp.get("/<uuid:instance_id>/edit")
def edit(instance_id: uuid.UUID):
    """The campaign's name, own settings and (for a draft) launch time."""
    instance = instances.get_instance(current_workspace(), instance_id)
    return _edit_form(instance, _edit_values(instance))


@bp.post("/<uuid:instance_id>/edit")
def update(instance_id: uuid.UUID):
    """Save the edit form; a change of timing re-plans the waiting contacts at once (the service)."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    data = form_data(lists=(DAY_FIELD,))
    given = data.get("settings", {})
    body = {"name": data.get("name", ""), "settings": {key: given.get(key) for key in FORM_SETTINGS}}
    if instance.status == InstanceStatus.DRAFT:
        body["start_at"] = _local_time(data.get("start_at"))
        body["confirm"] = request.form.get("confirm") == "yes"
    try:
        instance = instances.update_instance(workspace, instance_id, _validate(InstanceUpdateIn, body))
    except ValidationFailed as exc:
        return _edit_form(instance, request.form, errors=_form_errors(exc.details), status=422)
    except (NotFound, Conflict, Unprocessable) as exc:
        return _edit_form(instance, request.form, errors={"__all__": [exc.message]}, status=422)
    flash(f"“{instance.name}” saved.", "success")
    return hx_redirect(url_for(".show", instance_id=instance.id))


def _local_time(value: str | None) -> str | None:
    """A `datetime-local` field's value, read in the user's time zone, as ISO 8601 (None when blank)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the schema says what is wrong with it
    return moment.replace(tzinfo=moment.tzinfo or user_zone()).isoformat()


# The campaign page's bulk actions (services/enrollments.act_on_enrollments): value, label.
BULK_ACTIONS = (
    ("pause", "Pause"),
    ("resume", "Resume"),
    ("mark_replied", "Mark replied"),
    ("unenroll", "Unenroll"),
    ("move", "Move to the campaign chosen"),
)


@bp.post("/<uuid:instance_id>/enrollments/actions")
def act_on_enrollments(instance_id: uuid.UUID):
    """One action on the enrollments ticked, or on every one the list's filter matches."""
    workspace = current_workspace()
    instances.get_instance(workspace, instance_id)  # another workspace's: 404
    form = request.form
    body = {"action": form.get("action", ""), "target_instance_id": form.get("target_instance_id") or None}
    if form.get("scope") == "filter":
        body["filter"] = {key: form[key] for key in ("status", "search", "missing") if form.get(key)}
    else:
        body["enrollment_ids"] = form.getlist("enrollment_ids") or None
    next_url = safe_next(form.get("next"), default=url_for(".show", instance_id=instance_id))
    try:
        data = _validate(EnrollmentActionIn, body)
        report = enrollments.act_on_enrollments(workspace, instance_id, data, actor=lifecycle.Actor.PERSON)
    except (ValidationFailed, NotFound, Conflict) as exc:
        nothing_ticked = body.get("enrollment_ids") is None and "filter" not in body
        flash("Tick the enrollments first, or apply the action to all." if nothing_ticked else exc.message, "error")
        return hx_redirect(next_url)
    label = dict(BULK_ACTIONS)[report.action].split(" to ")[0].lower()
    flash(
        f"{label.capitalize()}: {report.changed:,} of {report.matched:,} changed; {report.skipped:,} skipped.",
        "success",
    )
    return hx_redirect(next_url)


def _enrollments_context(workspace, instance) -> dict:
    query = _query(EnrollmentQuery)
    rows, total = enrollments.list_enrollments(
        workspace,
        instance.id,
        status=query.status,
        search=query.search,
        sort=query.sort,
        page=query.page,
        limit=ENROLLMENTS_PER_PAGE,
        missing=query.missing,
    )
    return {
        "rows": rows,
        "enrollment_total": total,
        "enrollment_page": query.page,
        "enrollment_pages": _pages(total, ENROLLMENTS_PER_PAGE),
        "filters": query,
        "filtered": bool(query.status or query.search or query.missing),
        "sorts": ENROLLMENT_SORTS,
        "enrollment_statuses": [str(status) for status in EnrollmentStatus],
        "next_url": _here(),
        "enrollment_actions": enrollment_actions,
        "bulk_actions": BULK_ACTIONS,
        "move_targets": instances.move_targets(workspace, instance) if rows else [],
    }


def _attention_context(workspace, instance) -> dict:
    unknown, total, here = deliveries.unknown_deliveries(workspace, instance.id, limit=ATTENTION_LIMIT)
    return {
        "deliveries": unknown,
        "unknown_total": total,
        "unknown_here": here,
        "unavailable_mailboxes": mailboxes.unavailable_for(workspace, instance),
        "missing_data": readiness.paused_for_missing_data(instance),
    }


def _header_context(instance) -> dict:
    return {
        "instance": instance,
        "actions": status_actions(instance.status),
        "complete_question": COMPLETE_QUESTION,
        "is_active": instance.status == InstanceStatus.ACTIVE,
    }


@bp.get("/<uuid:instance_id>")
def show(instance_id: uuid.UUID):
    """One campaign: status controls, enrollments, and the lazily loaded panels."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    context = {**_header_context(instance), **_enrollments_context(workspace, instance)}
    if not is_htmx():
        context.update(_attention_context(workspace, instance))
    return render("instances/show.html", block="enrollments", **context)


@bp.post("/<uuid:instance_id>/status")
def change_status(instance_id: uuid.UUID):
    """Launch, pause, resume or complete; completing needs a confirmation, and so does a launch
    with the launch check's warnings (a launch it refuses goes to the launch check page)."""
    workspace = current_workspace()
    instances.get_instance(workspace, instance_id)
    body = _validate(InstanceStatusIn, {"status": request.form.get("status")})
    confirm = request.form.get("confirm") == "yes"
    if body.status == InstanceStatus.COMPLETED and not confirm:
        return hx_redirect(url_for(".confirm_complete", instance_id=instance_id))
    try:
        instance = instances.change_instance_status(workspace, instance_id, body.status, confirm=confirm)
    except (Conflict, Unprocessable) as exc:
        if isinstance(exc, InvalidTransition):
            raise
        # The launch check refused: its page shows the problems and asks to confirm warnings.
        if isinstance(exc, Unprocessable):
            flash("Check the warnings, then confirm the launch.", "warning")
        else:
            flash("The campaign cannot launch yet: fix the blocking problems first.", "error")
        return hx_redirect(url_for(".launch_check", instance_id=instance_id))
    message = {
        InstanceStatus.ACTIVE: f"“{instance.name}” is active: due steps go out at the next run.",
        InstanceStatus.PAUSED: f"“{instance.name}” is paused: nothing is sent until you resume it.",
        InstanceStatus.COMPLETED: f"“{instance.name}” is completed.",
    }[body.status]
    if is_htmx():
        response = render("instances/show.html", block="campaign_header", **_header_context(instance))
        hx_trigger(response, "campaign-status-changed")
        return _toast(response, message)
    flash(message, "success")
    return hx_redirect(url_for(".show", instance_id=instance_id))


@bp.post("/<uuid:instance_id>/clone")
def clone(instance_id: uuid.UUID):
    """Copy the campaign as a new draft (same template and settings, no contacts), then open it."""
    try:
        instance = instances.clone_instance(current_workspace(), instance_id)
    except Conflict as exc:
        flash(f"The campaign was not copied. {exc.message}", "error")
        return hx_redirect(url_for(".show", instance_id=instance_id))
    flash(f"Campaign copied as “{instance.name}”, a draft: enroll contacts, then launch it.", "success")
    return hx_redirect(url_for(".show", instance_id=instance.id))


@bp.get("/<uuid:instance_id>/complete")
def confirm_complete(instance_id: uuid.UUID):
    """Ask before completing (the confirmation for browsers without JavaScript)."""
    instance = instances.get_instance(current_workspace(), instance_id)
    if InstanceStatus.COMPLETED not in instances.allowed_transitions(instance.status):
        return redirect(url_for(".show", instance_id=instance_id), 303)
    return render("instances/confirm_complete.html", instance=instance, complete_question=COMPLETE_QUESTION)


def _owned_enrollment(workspace, instance_id: uuid.UUID, enrollment_id: uuid.UUID):
    enrollment = enrollments.get_enrollment(workspace, enrollment_id)
    if enrollment.instance_id != instance_id:
        raise NotFound(f"Enrollment {enrollment_id} not found.")
    return enrollment


def _row_response(enrollment, message: str):
    default = url_for(".show", instance_id=enrollment.instance_id)
    next_url = safe_next(request.form.get("next"), default=default)
    if is_htmx():
        response = render(
            "instances/show.html",
            block="enrollment_row",
            enrollment=enrollment,
            next_url=next_url,
            enrollment_actions=enrollment_actions,
        )
        return _toast(response, message)
    flash(message, "success")
    return hx_redirect(f"{next_url}#enrollment-{enrollment.id}")


@bp.post("/<uuid:instance_id>/enrollments/<uuid:enrollment_id>/status")
def change_enrollment_status(instance_id: uuid.UUID, enrollment_id: uuid.UUID):
    """Pause or resume one enrollment; htmx gets the updated row."""
    workspace = current_workspace()
    _owned_enrollment(workspace, instance_id, enrollment_id)
    body = _validate(EnrollmentStatusIn, {"status": request.form.get("status")})
    enrollment = enrollments.change_enrollment_status(workspace, enrollment_id, body.status)
    verb = {EnrollmentStatus.PAUSED: "paused", EnrollmentStatus.REPLIED: "marked replied"}.get(body.status, "resumed")
    return _row_response(enrollment, f"{enrollment.contact.email}: {verb}.")


@bp.post("/<uuid:instance_id>/enrollments/<uuid:enrollment_id>/unenroll")
def unenroll(instance_id: uuid.UUID, enrollment_id: uuid.UUID):
    """Remove one enrollment from the campaign (final); its history stays."""
    workspace = current_workspace()
    _owned_enrollment(workspace, instance_id, enrollment_id)
    enrollment = enrollments.unenroll(workspace, enrollment_id)
    return _row_response(enrollment, f"{enrollment.contact.email}: removed from the campaign.")


@bp.get("/<uuid:instance_id>/enrollments/export")
def export_enrollments(instance_id: uuid.UUID):
    """The enrollments the list shows with the same status and search, as a CSV download."""
    query = _query(EnrollmentFilter)
    return csv_download(
        exports.export_enrollments(current_workspace(), instance_id, status=query.status, search=query.search)
    )


@bp.get("/<uuid:instance_id>/events/export")
def export_events(instance_id: uuid.UUID):
    """Every event of the campaign, in time order, as a CSV download."""
    return csv_download(exports.export_events(current_workspace(), instance_id))


@bp.get("/<uuid:instance_id>/enrollments/<uuid:enrollment_id>")
def enrollment(instance_id: uuid.UUID, enrollment_id: uuid.UUID):
    """One enrollment's timeline: a drawer on the campaign page for htmx, a page otherwise."""
    workspace = current_workspace()
    found = enrollments.get_enrollment(workspace, enrollment_id)
    if found.instance_id != instance_id:
        # Links that only know the enrollment (e.g. an unknown delivery) land on its own campaign.
        return redirect(url_for(".enrollment", instance_id=found.instance_id, enrollment_id=enrollment_id), 303)
    query = _query(Query)
    events, total = enrollments.list_enrollment_events(workspace, enrollment_id, page=query.page, limit=EVENTS_PER_PAGE)
    return render(
        "instances/enrollment.html",
        block="timeline",
        instance=instances.get_instance(workspace, instance_id),
        enrollment=found,
        events=events,
        event_total=total,
        page=query.page,
        total_pages=_pages(total, EVENTS_PER_PAGE),
        drawer=is_htmx(),
        next_url=_here(),
        enrollment_actions=enrollment_actions,
        can_skip_wait=enrollments.waits_on_time(found),
        failed_delivery_id=deliveries.failed_delivery_id(found.id) if found.status == EnrollmentStatus.FAILED else None,
    )


@bp.post("/<uuid:instance_id>/enrollments/<uuid:enrollment_id>/skip-wait")
def skip_wait(instance_id: uuid.UUID, enrollment_id: uuid.UUID):
    """Make one enrollment's next step due now (the send window and caps still apply)."""
    workspace = current_workspace()
    _owned_enrollment(workspace, instance_id, enrollment_id)
    enrollment = enrollments.skip_wait(workspace, enrollment_id)
    return _row_response(enrollment, f"{enrollment.contact.email}: the next step is due now.")


@bp.post("/<uuid:instance_id>/deliveries/<uuid:delivery_id>/retry")
def retry_delivery(instance_id: uuid.UUID, delivery_id: uuid.UUID):
    """Send a failed step again: its enrollment is active again and goes at the worker's next run."""
    workspace = current_workspace()
    delivery = deliveries.retry_failed_delivery(workspace, delivery_id)
    enrollment = _owned_enrollment(workspace, instance_id, delivery.enrollment_id)
    return _row_response(enrollment, f"{enrollment.contact.email}: the failed step goes out again at the next run.")


def chart_data(performance: PerformanceOut) -> dict:
    """The numbers of the two charts, as the JSON that static/js/charts.js draws."""
    return {
        "daily": {
            "kind": "line",
            "labels": [point.date.isoformat() for point in performance.daily],
            "series": [
                {"key": key, "label": label, "data": [getattr(point, key) for point in performance.daily]}
                for key, label in SERIES
            ],
        },
        "funnel": {
            "kind": "funnel",
            "labels": [f"Step {step.step_number} ({step.channel})" for step in performance.steps],
            "series": [
                {
                    "key": key,
                    "label": label,
                    "data": [getattr(step.contacts, key) for step in performance.steps],
                    # The tooltip's words after each number: the rate and what it is of.
                    "notes": [
                        f"{getattr(step.rates, rate) * 100:.1f}% {of_step(step.step_number)}" if rate else ""
                        for step in performance.steps
                    ],
                }
                for key, label, rate in FUNNEL
            ],
        },
    }


@bp.get("/<uuid:instance_id>/performance")
def performance(instance_id: uuid.UUID):
    """Key numbers, the daily chart and the per-step funnel (the API's performance numbers)."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    numbers = analytics.instance_performance(workspace, instance_id)
    return render(
        "instances/performance.html",
        block="performance",
        instance=instance,
        perf=numbers,
        charts=chart_data(numbers),
        is_active=instance.status == InstanceStatus.ACTIVE,
    )


@bp.get("/<uuid:instance_id>/schedule")
def next_sends(instance_id: uuid.UUID):
    """What goes out next, and when, with the reason for any delay (`?limit=` more of it)."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    limit = _query(ScheduleQuery).limit if request.args.get("limit") else SCHEDULE_PANEL
    sends = schedule.preview_schedule(workspace, instance_id, limit=limit)
    return render(
        "instances/schedule.html", block="schedule", instance=instance, sends=sends, limit=limit, more=SCHEDULE_PAGE
    )


@bp.post("/<uuid:instance_id>/deliveries/<uuid:delivery_id>/resolve")
def resolve_delivery(instance_id: uuid.UUID, delivery_id: uuid.UUID):
    """Say what happened to a delivery whose outcome is unknown: it was sent, or send it again."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    body = _validate(ResolveDeliveryIn, {"sent": request.form.get("sent")})
    deliveries.resolve_unknown_delivery(workspace, delivery_id, sent=body.sent)
    message = (
        "Marked as sent: the enrollment moves on to its next step."
        if body.sent
        else "It will be sent again at the next run."
    )
    return _attention_response(workspace, instance, message)


@bp.post("/<uuid:instance_id>/deliveries/resolve")
def resolve_deliveries(instance_id: uuid.UUID):
    """Say what happened to every delivery of this campaign whose outcome is unknown."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    body = _validate(ResolveDeliveryIn, {"sent": request.form.get("sent")})
    count = deliveries.resolve_unknown_deliveries(workspace, instance_id, sent=body.sent)
    if body.sent:
        message = f"{count} {'delivery' if count == 1 else 'deliveries'} marked as sent: " + (
            "its enrollment moves on." if count == 1 else "their enrollments move on."
        )
    else:
        message = f"{count} {'delivery' if count == 1 else 'deliveries'} will be sent again at the next run."
    return _attention_response(workspace, instance, message)


def _attention_response(workspace, instance, message: str):
    if is_htmx():
        response = render(
            "instances/show.html", block="attention", instance=instance, **_attention_context(workspace, instance)
        )
        return _toast(response, message)
    flash(message, "success")
    return hx_redirect(url_for(".show", instance_id=instance.id))

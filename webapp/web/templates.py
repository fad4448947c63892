"""Templates: the list, and one template's page, the sequence builder (steps, settings, live preview).

Every view reads the template through the services first, so another workspace's ids are a 404
before any form is looked at. Mutations answer htmx with the changed fragment and browsers with a
303; invalid forms come back with their messages beside the fields and a 422.
"""

import functools
import re
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace

from flask import Blueprint, flash, request, url_for
from pydantic import BaseModel, ValidationError

from webapp.engine import render as renderer
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.htmx import hx_redirect, hx_trigger, is_htmx, render
from webapp.models import CampaignTemplate, SequenceStep, Workspace
from webapp.models.enums import Channel
from webapp.schemas.settings import SendWindow
from webapp.schemas.templates import (
    EmailStepIn,
    EmailStepUpdate,
    LinkedInStepIn,
    LinkedInStepUpdate,
    TemplateIn,
    TemplateQuery,
    TemplateUpdate,
)
from webapp.schemas.validation import validation_failed
from webapp.security import current_workspace, require_login
from webapp.services.contacts import get_contact, list_contacts
from webapp.services.sending import compose
from webapp.services.sending import settings as sending_settings
from webapp.services.sending.settings import DEFAULT_STOP_ON
from webapp.services.sequences import (
    add_email_step,
    add_linkedin_step,
    check_step_content,
    move_step,
    remove_step,
    update_email_step,
    update_linkedin_step,
)
from webapp.services.templates import (
    clone_template,
    create_template,
    delete_template,
    get_template,
    list_templates,
    update_template,
)
from webapp.web import errors_by_field
from webapp.web.forms import form_data

bp = Blueprint("templates", __name__, url_prefix="/templates")
bp.before_request(require_login)

CHANNELS = "any(email, linkedin)"
PREVIEW_CONTACTS = 50
NEW_EMAIL_PREVIEW = "new-email-step-preview"
PREVIEW_ID = re.compile(r"(new-email-step|step-[0-9a-f-]{36})-preview")
SAMPLE_CONTACT = SimpleNamespace(
    first_name="Alex",
    last_name="Martin",
    email="alex.martin@example.com",
    company="Northwind Traders",
    title="Head of Sales",
    linkedin_url="https://www.linkedin.com/in/alex-martin",
    timezone="Europe/Paris",
    custom_fields={},
)

TEMPLATE_LISTS = ("settings.send_window.days", "settings.stop_on")
TEMPLATE_FIELDS = (
    "name",
    "type",
    "description",
    "is_active",
    "settings",
    "settings.send_window",
    "settings.send_window.days",
    "settings.send_window.start",
    "settings.send_window.end",
    "settings.send_window.timezone",
    "settings.daily_cap",
    "settings.track_opens",
    "settings.track_clicks",
    "settings.stop_on",
)
# The settings the form edits; the service replaces `settings` whole, so the others are carried over.
FORM_SETTINGS = ("send_window", "daily_cap", "track_opens", "track_clicks", "stop_on")
STEP_FIELDS = {
    Channel.EMAIL: ("delay_days", "delay_hours", "subject", "body", "thread", "is_active"),
    Channel.LINKEDIN: ("delay_days", "delay_hours", "action_type", "message", "is_active"),
}
UI_ONLY_FIELDS = ("preview_contact", "preview_id")


@dataclass
class FormState:
    """What a form shows: the values (as typed, or from the database) and the messages per field."""

    values: dict = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    fields: tuple[str, ...] = ()

    @property
    def unplaced_errors(self) -> list[str]:
        """Messages for no field the form shows (they are listed at the top of the form)."""
        return [message for name, messages in self.errors.items() if name not in self.fields for message in messages]


@dataclass
class PreviewState:
    """A rendered email for one contact, or the problems that stopped it."""

    id: str
    contact_label: str = "a sample contact"
    result: renderer.Preview | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


class Previews(dict):
    """Preview states by element id; an id never rendered yet gets an empty preview."""

    def __missing__(self, preview_id: str) -> PreviewState:
        return PreviewState(id=preview_id)


def _validate(model: type[BaseModel], data: dict) -> BaseModel:
    # Form values are all strings: validate in lax mode (Input models are strict for JSON bodies).
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def _submitted(lists: tuple[str, ...] = ()) -> dict:
    """The form as typed, to show it again."""
    return {name: request.form.getlist(name) if name in lists else request.form.get(name, "") for name in request.form}


def _toast(response, message: str, level: str = "success"):
    return hx_trigger(response, "toast", {"message": message, "level": level})


@bp.get("")
def index():
    """The workspace's templates: search, filter by status, pages."""
    return _index()


@bp.post("")
def create():
    """Create a template from the "New template" form, then open it."""
    workspace = current_workspace()
    try:
        data = _validate(TemplateIn, _template_form_data())
        template = create_template(workspace, data)
    except ValidationFailed as exc:
        form = FormState(_submitted(TEMPLATE_LISTS), errors_by_field(exc.details), TEMPLATE_FIELDS)
        return _index(block="new_template", status=422, new_template=form)
    flash(f"Template “{template.name}” created. Add its first step below.", "success")
    return hx_redirect(url_for("templates.show", template_id=template.id))


def _index(*, block: str = "rows", status: int = 200, new_template: FormState | None = None):
    args = {name: value for name, value in request.args.items() if value != ""}
    query = _validate(TemplateQuery, args) if request.method == "GET" else TemplateQuery()
    items, total = list_templates(
        current_workspace(), search=query.search, is_active=query.is_active, page=query.page, limit=query.limit
    )
    return render(
        "templates/index.html",
        block=block,
        status=status,
        templates=items,
        total=total,
        total_pages=max(1, -(-total // query.limit)),
        query=query,
        filtered=bool(query.search) or query.is_active is not None,
        new_template=new_template or FormState(_new_template_values(), fields=TEMPLATE_FIELDS),
    )


@bp.get("/<uuid:template_id>")
def show(template_id: uuid.UUID):
    """The sequence builder."""
    return _show(get_template(current_workspace(), template_id))


@bp.post("/<uuid:template_id>")
def update(template_id: uuid.UUID):
    """Save the template's name, description, status and settings."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    data = _template_form_data(booleans=("is_active",))
    data.setdefault("name", "")
    data.setdefault("description", None)
    kept = {key: value for key, value in (template.settings or {}).items() if key not in FORM_SETTINGS}
    data["settings"] = {**kept, **data.get("settings", {})}
    try:
        template = update_template(workspace, template_id, _validate(TemplateUpdate, data))
    except ValidationFailed as exc:
        form = FormState(_submitted(TEMPLATE_LISTS), errors_by_field(exc.details), TEMPLATE_FIELDS)
        return _show(template, block="template_settings", status=422, settings_form=form, open_settings=True)
    if not is_htmx():
        flash("Template saved.", "success")
        return hx_redirect(url_for("templates.show", template_id=template_id))
    return _toast(_show(template, block="template_settings"), "Template saved.")


@bp.post("/<uuid:template_id>/delete")
def delete(template_id: uuid.UUID):
    """Delete the template, unless campaigns use it (409 with the reason beside the button)."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    try:
        delete_template(workspace, template_id)
    except Conflict:
        message = (
            "Campaigns use this template, so it can't be deleted. "
            "Deactivate it instead: untick “Active” in the settings and save."
        )
        return _show(template, block="template_delete", status=409, delete_error=message)
    flash(f"Template “{template.name}” deleted.", "success")
    return hx_redirect(url_for("templates.index"))


@bp.post("/<uuid:template_id>/clone")
def clone(template_id: uuid.UUID):
    """Copy the template with its settings and steps, then open the copy."""
    template = clone_template(current_workspace(), template_id)
    flash(f"Template copied as “{template.name}”: rename it in its settings.", "success")
    return hx_redirect(url_for("templates.show", template_id=template.id))


@bp.post("/<uuid:template_id>/steps/<any(email, linkedin):channel>")
def create_step(template_id: uuid.UUID, channel: str):
    """Append an email or LinkedIn step."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    schema, add = (EmailStepIn, add_email_step) if channel == Channel.EMAIL else (LinkedInStepIn, add_linkedin_step)
    try:
        step = add(workspace, template_id, _validate(schema, _step_form_data(channel, update=False)))
    except (ValidationFailed, Conflict) as exc:
        form = FormState(_submitted(), _step_errors(channel, exc), STEP_FIELDS[channel])
        previews = Previews()
        if channel == Channel.EMAIL:
            previews = _typed_previews(workspace, template, NEW_EMAIL_PREVIEW)
        response = _show(
            template,
            block=f"new_{channel}_step",
            status=422,
            open_form=channel,
            previews=previews,
            **{f"{channel}_form": form},
        )
        # The form asked to swap the whole sequence; with errors only the form itself changes.
        response.headers["HX-Retarget"] = f"#new-{channel}-step"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    message = f"Step {step.position} added."
    if not is_htmx():
        flash(message, "success")
        return hx_redirect(url_for("templates.show", template_id=template_id, _anchor=f"step-{step.id}"))
    return _toast(_show(get_template(workspace, template_id), block="sequence", open_form=channel), message)


@bp.get("/<uuid:template_id>/steps/<any(email, linkedin):channel>/<uuid:step_id>")
def show_step(template_id: uuid.UUID, channel: str, step_id: uuid.UUID):
    """One step as displayed (htmx, to cancel an edit); browsers go to it on the template's page."""
    template = get_template(current_workspace(), template_id)
    step = _find_step(template, step_id, channel)
    if not is_htmx():
        return hx_redirect(url_for("templates.show", template_id=template_id, _anchor=f"step-{step.id}"))
    return _show(template, block="step", step=step, focus_edit=True)


@bp.get("/<uuid:template_id>/steps/<any(email, linkedin):channel>/<uuid:step_id>/edit")
def edit_step(template_id: uuid.UUID, channel: str, step_id: uuid.UUID):
    """The step as a form, in place of its display."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    step = _find_step(template, step_id, channel)
    previews = Previews()
    if channel == Channel.EMAIL:
        preview_id = f"step-{step.id}-preview"
        previews[preview_id] = _preview(workspace, template, preview_id, step.subject, step.body, "")
    form = FormState(_step_values(step), fields=STEP_FIELDS[channel])
    return _show(template, block="step", step=step, edit_step_id=step.id, edit_form=form, previews=previews)


@bp.post("/<uuid:template_id>/steps/<any(email, linkedin):channel>/<uuid:step_id>")
def update_step(template_id: uuid.UUID, channel: str, step_id: uuid.UUID):
    """Save an edited step and show it again."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    step = _find_step(template, step_id, channel)
    if channel == Channel.EMAIL:
        schema, save = EmailStepUpdate, update_email_step
    else:
        schema, save = LinkedInStepUpdate, update_linkedin_step
    try:
        save(workspace, template_id, step_id, _validate(schema, _step_form_data(channel, update=True)))
    except (ValidationFailed, Conflict) as exc:
        form = FormState(_submitted(), _step_errors(channel, exc), STEP_FIELDS[channel])
        previews = Previews()
        if channel == Channel.EMAIL:
            previews = _typed_previews(workspace, template, f"step-{step.id}-preview")
        return _show(
            template, block="step", status=422, step=step, edit_step_id=step.id, edit_form=form, previews=previews
        )
    template = get_template(workspace, template_id)
    step = _find_step(template, step_id, channel)
    message = f"Step {step.position} saved."
    if not is_htmx():
        flash(message, "success")
        return hx_redirect(url_for("templates.show", template_id=template_id, _anchor=f"step-{step.id}"))
    return _toast(_show(template, block="step", step=step, focus_edit=True), message)


@bp.post("/<uuid:template_id>/steps/<any(email, linkedin):channel>/<uuid:step_id>/delete")
def delete_step(template_id: uuid.UUID, channel: str, step_id: uuid.UUID):
    """Delete a step; one that was already sent is deactivated instead (the service decides)."""
    workspace = current_workspace()
    step = _find_step(get_template(workspace, template_id), step_id, channel)
    position = step.position
    if remove_step(workspace, template_id, step_id, channel=channel):
        message, level = f"Step {position} deleted.", "success"
    else:
        message, level = f"Step {position} has already gone out, so it was deactivated instead of deleted.", "warning"
    if not is_htmx():
        flash(message, level)
        return hx_redirect(url_for("templates.show", template_id=template_id, _anchor="steps"))
    return _toast(_show(get_template(workspace, template_id), block="steps"), message, level)


@bp.post("/<uuid:template_id>/steps/<uuid:step_id>/move")
def move(template_id: uuid.UUID, step_id: uuid.UUID):
    """Move a step to `position` (Move up / Move down buttons, and drag and drop)."""
    workspace = current_workspace()
    get_template(workspace, template_id)
    position = request.form.get("position", type=int)
    if position is None or not 1 <= position <= 1000:
        raise ValidationFailed("position must be a step number: 1, 2, 3...")
    step = move_step(workspace, template_id, step_id, position=position)
    message = f"Step moved to position {step.position}."
    if not is_htmx():
        flash(message, "success")
        return hx_redirect(url_for("templates.show", template_id=template_id, _anchor=f"step-{step_id}"))
    direction = request.form.get("direction")
    response = _show(get_template(workspace, template_id), block="steps", moved=step_id, moved_direction=direction)
    return _toast(response, message)


@bp.post("/<uuid:template_id>/preview")
def preview(template_id: uuid.UUID):
    """The email as a contact would get it; htmx gets only the preview, 422 when the template is invalid."""
    workspace = current_workspace()
    template = get_template(workspace, template_id)
    preview_id = request.form.get("preview_id", "")
    if not PREVIEW_ID.fullmatch(preview_id):
        preview_id = NEW_EMAIL_PREVIEW
    state = _typed_previews(workspace, template, preview_id)[preview_id]
    status = 422 if state.errors else 200
    if is_htmx():
        return render("templates/_preview.html", status=status, preview=state)
    # Without JavaScript: the whole page again, with the form as typed and its preview.
    form = FormState(_submitted(), state.errors, STEP_FIELDS[Channel.EMAIL])
    previews = Previews({preview_id: state})
    if preview_id == NEW_EMAIL_PREVIEW:
        return _show(template, status=status, email_form=form, open_form=Channel.EMAIL, previews=previews)
    step = _find_step(template, uuid.UUID(preview_id.removeprefix("step-").removesuffix("-preview")), Channel.EMAIL)
    return _show(template, status=status, edit_step_id=step.id, edit_form=form, previews=previews)


def _show(template: CampaignTemplate, *, block: str | None = None, status: int = 200, **context):
    workspace = current_workspace()

    @functools.cache
    def preview_contacts() -> list:
        return list_contacts(workspace, limit=PREVIEW_CONTACTS)[0]

    context.setdefault("settings_form", FormState(_template_values(template), fields=TEMPLATE_FIELDS))
    context.setdefault("email_form", FormState(_new_step_values(template), fields=STEP_FIELDS[Channel.EMAIL]))
    context.setdefault("linkedin_form", FormState(_new_step_values(template), fields=STEP_FIELDS[Channel.LINKEDIN]))
    context.setdefault("previews", Previews())
    for name in ("edit_step_id", "edit_form", "open_form", "moved", "moved_direction", "delete_error"):
        context.setdefault(name, None)
    return render(
        "templates/show.html",
        block=block,
        status=status,
        tpl=template,
        steps=template.steps,
        step_count=len(template.steps),
        preview_contacts=preview_contacts,
        contact_label=_contact_label,
        **context,
    )


def _find_step(template: CampaignTemplate, step_id: uuid.UUID, channel: str) -> SequenceStep:
    for step in template.steps:
        if step.id == step_id and step.channel == channel:
            return step
    raise NotFound(f"Step {step_id} not found.")


def _template_form_data(booleans: tuple[str, ...] = ()) -> dict:
    data = form_data(
        lists=TEMPLATE_LISTS,
        booleans=("send_window_enabled", "settings.track_opens", "settings.track_clicks", *booleans),
    )
    data.setdefault("name", "")
    settings = data.setdefault("settings", {})
    if not data.pop("send_window_enabled"):
        settings["send_window"] = None  # send at any time
    return data


def _new_template_values() -> dict:
    window = SendWindow().model_dump()
    return {
        "type": "email",
        "send_window_enabled": True,
        "settings.send_window.days": [str(day) for day in window["days"]],
        "settings.send_window.start": window["start"],
        "settings.send_window.end": window["end"],
        "settings.stop_on": list(DEFAULT_STOP_ON),
    }


def _template_values(template: CampaignTemplate) -> dict:
    settings = template.settings or {}
    window = settings.get("send_window")
    shown = window or SendWindow().model_dump()
    stop_on = settings.get("stop_on")
    return {
        "name": template.name,
        "type": template.type,
        "description": template.description or "",
        "is_active": template.is_active,
        "send_window_enabled": window is not None,
        "settings.send_window.days": [str(day) for day in shown.get("days", [])],
        "settings.send_window.start": shown.get("start", ""),
        "settings.send_window.end": shown.get("end", ""),
        "settings.send_window.timezone": shown.get("timezone") or "",
        "settings.daily_cap": settings.get("daily_cap") or "",
        "settings.track_opens": settings.get("track_opens") is True,
        "settings.track_clicks": settings.get("track_clicks") is True,
        "settings.stop_on": list(DEFAULT_STOP_ON if stop_on is None else stop_on),
    }


def _new_step_values(template: CampaignTemplate) -> dict:
    return {"delay_days": 2 if template.steps else 0, "delay_hours": 0, "action_type": "connection_request"}


def _step_values(step: SequenceStep) -> dict:
    return {
        "delay_days": step.delay_days,
        "delay_hours": step.delay_hours,
        "subject": step.subject or "",
        "body": step.body or "",
        "thread": step.in_thread,
        "action_type": step.action,
        "message": step.body or "",
        "is_active": step.is_active,
    }


def _step_form_data(channel: str, *, update: bool) -> dict:
    booleans = ("thread",) if channel == Channel.EMAIL else ()
    data = form_data(booleans=(*booleans, "is_active") if update else booleans)
    for name in UI_ONLY_FIELDS:
        data.pop(name, None)
    if channel == Channel.EMAIL:
        # A cleared field is an error to show, not a field to leave unchanged.
        data.setdefault("subject", "")
        data.setdefault("body", "")
    elif update:
        data.setdefault("message", None)
    return data


def _step_errors(channel: str, exc: ValidationFailed) -> dict[str, list[str]]:
    errors = errors_by_field(exc.details)
    # A schema error stops before the service checks the template syntax: check it as well, so
    # every problem of the form shows at once.
    email = channel == Channel.EMAIL
    try:
        check_step_content(
            subject=request.form.get("subject") or None if email else None,
            body=request.form.get("body" if email else "message") or None,
        )
    except ValidationFailed as syntax:
        for name, messages in errors_by_field(syntax.details).items():
            errors.setdefault(name, messages)
    if not email and "body" in errors:
        errors["message"] = errors.pop("body")  # the service checks a LinkedIn message as the step's body
    return errors


def _typed_previews(workspace: Workspace, template: CampaignTemplate, preview_id: str) -> Previews:
    subject, body = request.form.get("subject", ""), request.form.get("body", "")
    contact = request.form.get("preview_contact", "")
    return Previews({preview_id: _preview(workspace, template, preview_id, subject, body, contact)})


def _preview(
    workspace: Workspace,
    template: CampaignTemplate,
    preview_id: str,
    subject: str | None,
    body: str | None,
    contact: str,
) -> PreviewState:
    person = SAMPLE_CONTACT
    if contact:
        try:
            person = get_contact(workspace, uuid.UUID(contact))
        except ValueError:
            raise NotFound(f"Contact {contact[:40]} not found.") from None
    state = PreviewState(id=preview_id)
    state.contact_label = _contact_label(person) if contact else f"a sample contact ({_contact_label(person)})"
    subject, body = subject or "", body or ""
    if not subject.strip() and not body.strip():
        return state
    try:
        check_step_content(subject=subject, body=body)
        state.result = compose.preview_email(subject, body, person, _sending_settings(workspace, template))
    except ValidationFailed as exc:
        state.errors = errors_by_field(exc.details)
    except renderer.TemplateError as exc:
        state.errors = {"__all__": [exc.message]}
    return state


def _sending_settings(workspace: Workspace, template: CampaignTemplate) -> sending_settings.Effective | None:
    try:
        return sending_settings.for_template(template, workspace)
    except sending_settings.InvalidSettings:
        return None  # the settings form says what is wrong; the preview still shows the text


def _contact_label(contact) -> str:
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return f"{name} <{contact.email}>" if name else contact.email

"""A launched campaign's own steps: "Edit steps for this campaign", with the contacts each
change concerns shown first. Plain forms (POST, then 303 back to the page with a message)."""

import uuid

from flask import Blueprint, flash, redirect, request, url_for

from webapp.errors import ServiceError, ValidationFailed
from webapp.htmx import render
from webapp.schemas.campaign_steps import CampaignEmailStepUpdate
from webapp.schemas.templates import EmailStepIn
from webapp.security import current_workspace, require_login
from webapp.services import campaign_steps, lifecycle
from webapp.web.forms import form_data, parse_form

bp = Blueprint("campaign_steps", __name__, url_prefix="/campaigns")
bp.before_request(require_login)


def _back(instance_id: uuid.UUID):
    return redirect(url_for("campaign_steps.index", instance_id=instance_id), code=303)


@bp.get("/<uuid:instance_id>/steps")
def index(instance_id: uuid.UUID):
    """The campaign's steps, each with the contacts waiting on it and not yet past it."""
    instance, steps = campaign_steps.list_campaign_steps(current_workspace(), instance_id)
    editable = instance.status in campaign_steps.EDITABLE
    return render("instances/steps.html", instance=instance, steps=steps, editable=editable)


@bp.post("/<uuid:instance_id>/steps")
def create(instance_id: uuid.UUID):
    """Add an email step to this campaign only."""
    try:
        data = parse_form(EmailStepIn)
        campaign_steps.add_campaign_step(current_workspace(), instance_id, data, actor=lifecycle.Actor.PERSON)
    except ServiceError as exc:
        if exc.status_code == 404:
            raise
        flash(exc.message, "error")
    else:
        flash("Step added to this campaign.", "success")
    return _back(instance_id)


@bp.post("/<uuid:instance_id>/steps/<uuid:step_id>")
def update(instance_id: uuid.UUID, step_id: uuid.UUID):
    """Change a step's delay or turn it off, for this campaign only."""
    workspace = current_workspace()
    try:
        step, _ = campaign_steps.get_campaign_step(workspace, instance_id, step_id)
        data = form_data()
        data["is_active"] = request.form.get("is_active") in ("on", "true", "1", "yes")
        if step.channel != "email":
            raise ValidationFailed("Change LinkedIn steps through the API for now.")
        body = parse_form(CampaignEmailStepUpdate, data)
        campaign_steps.update_campaign_step(
            workspace, instance_id, step_id, body.step_update(), waiting=body.waiting, actor=lifecycle.Actor.PERSON
        )
    except ServiceError as exc:
        if exc.status_code == 404:
            raise
        flash(exc.message, "error")
    else:
        flash("Step saved for this campaign.", "success")
    return _back(instance_id)


@bp.post("/<uuid:instance_id>/steps/<uuid:step_id>/delete")
def delete(instance_id: uuid.UUID, step_id: uuid.UUID):
    """Remove a step from this campaign; the contacts waiting on it skip it or stop."""
    try:
        removal = campaign_steps.remove_campaign_step(
            current_workspace(),
            instance_id,
            step_id,
            waiting=request.form.get("waiting") or None,
            actor=lifecycle.Actor.PERSON,
        )
    except ServiceError as exc:
        if exc.status_code == 404:
            raise
        flash(exc.message, "error")
    else:
        done = "Step removed" if removal.deleted else "Step turned off (it was sent already)"
        flash(f"{done}: {removal.skipped} contact(s) skipped it, {removal.stopped} stopped.", "success")
    return _back(instance_id)

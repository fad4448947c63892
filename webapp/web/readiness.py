"""Before a launch, on the campaign's pages: the launch check and test sends.

Both are panels of the campaign page, loaded lazily from their own URLs, which are also plain
pages for browsers without JavaScript. The launch itself stays the campaign's status form
(`instances.change_status`); a launch the check refuses lands on the launch check page.
"""

import uuid

from flask import current_app, request

from webapp.errors import BadGateway, Conflict, NotFound, Unprocessable, ValidationFailed
from webapp.extensions import limiter
from webapp.htmx import hx_trigger, is_htmx, render
from webapp.models.enums import InstanceStatus
from webapp.schemas.readiness import TestSendIn
from webapp.security import current_account, current_workspace
from webapp.services import enrollments, instances, readiness, trial_sends
from webapp.web import errors_by_field
from webapp.web.forms import form_data
from webapp.web.instances import _validate, bp

CONTACT_CHOICES = 25


@bp.get("/<uuid:instance_id>/launch")
def launch_check(instance_id: uuid.UUID):
    """The launch check: what blocks the launch, what needs a confirmation, and the Launch button."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    report = readiness.check_readiness(workspace, instance_id)
    return render(
        "instances/launch.html",
        block="readiness",
        instance=instance,
        report=report,
        is_draft=instance.status == InstanceStatus.DRAFT,
    )


def _test_send_form(instance, *, values=None, errors=None, result=None, failure=None, status=200):
    workspace = current_workspace()
    steps = trial_sends.email_steps(workspace, instance.id)
    rows, total = enrollments.list_enrollments(workspace, instance.id, sort="enrolled_at", limit=CONTACT_CHOICES)
    response = render(
        "instances/test_send.html",
        block="test_send",
        status=status,
        instance=instance,
        steps=[(step.position, f"Step {step.position}: {step.subject or '(in the thread)'}") for step in steps],
        contacts=[("", "The first contact enrolled" if total else "A sample contact")]
        + [(str(row.contact_id), row.contact.email) for row in rows],
        values=values or {"to": current_account().email},
        errors=errors or {},
        result=result,
        failure=failure,
    )
    if result is not None and is_htmx():
        hx_trigger(response, "toast", {"message": f"Test sent to {result.to}.", "level": "success"})
    return response


@bp.get("/<uuid:instance_id>/test-send")
def test_send_form(instance_id: uuid.UUID):
    """The test send form: a step, a contact to render it for, an address to send it to."""
    return _test_send_form(instances.get_instance(current_workspace(), instance_id))


@bp.post("/<uuid:instance_id>/test-send")
@limiter.limit(lambda: current_app.config["RATELIMIT_TEST_SEND"])
def test_send(instance_id: uuid.UUID):
    """Send the step as a test; the form again with the outcome (422 when it failed; 502 for a
    mail server that refused, to browsers without htmx)."""
    workspace = current_workspace()
    instance = instances.get_instance(workspace, instance_id)
    values = dict(request.form)
    data = form_data()
    data.pop("status", None)
    try:
        body = _validate(TestSendIn, {**data, "to": data.get("to") or current_account().email})
        result = trial_sends.send_test_email(
            workspace, instance_id, to=body.to, position=body.step, step_id=body.step_id, contact_id=body.contact_id
        )
    except ValidationFailed as exc:
        return _test_send_form(instance, values=values, errors=errors_by_field(exc.details), status=422)
    except (NotFound, Unprocessable, Conflict) as exc:
        return _test_send_form(instance, values=values, failure=exc.message, status=422)
    except BadGateway as exc:
        # htmx swaps a 422 in place (its configuration leaves 5xx answers unswapped).
        return _test_send_form(instance, values=values, failure=exc.message, status=422 if is_htmx() else 502)
    return _test_send_form(instance, values=values, result=result)

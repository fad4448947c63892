"""Before a launch: the launch check, and test sends of a campaign's steps."""

import uuid

from flask import current_app, g, url_for

from webapp.api import bp
from webapp.api.base import operation
from webapp.errors import ValidationFailed
from webapp.extensions import limiter
from webapp.schemas.readiness import ReadinessOut, TestSendIn, TestSendOut
from webapp.services import readiness, trial_sends

TAG = "instances"


def readiness_out(report: readiness.Readiness, link) -> ReadinessOut:
    """The report, each field missing a value linked (`link(name)`) to the contacts without it."""
    problems = {}
    for kind in ("blocking", "warnings"):
        problems[kind] = []
        for problem in getattr(report, kind):
            data = problem.as_dict()
            if problem.code == "missing_variables":
                variables = [{**v, "enrollments_url": link(v["name"])} for v in problem.details["variables"]]
                data["details"] = {**problem.details, "variables": variables}
            problems[kind].append(data)
    return ReadinessOut(ready=report.ready, **problems)


@operation(
    bp,
    "GET",
    "/instances/<uuid:instance_id>/readiness",
    summary="Launch check",
    tag=TAG,
    response=ReadinessOut,
)
def get_instance_readiness(instance_id: uuid.UUID):
    """What would stop the launch (`blocking`: no steps, no sender, a send window that never
    opens, a missing unsubscribe link...) and what needs a confirmation (`warnings`: contacts
    with no value for a field the steps use, suppressed contacts, contacts live in another
    campaign). Each problem has a `code`, a `message`, and a `count` of contacts where it
    concerns them; a missing field links to the enrollments without it (`missing=`)."""
    report = readiness.check_readiness(g.workspace, instance_id)
    return readiness_out(report, lambda name: url_for("api.list_enrollments", instance_id=instance_id, missing=name))


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/test-send",
    summary="Send a step as a test",
    tag=TAG,
    body=TestSendIn,
    response=TestSendOut,
    extra_errors=(404, 409, 422, 502),
)
@limiter.limit(lambda: current_app.config["RATELIMIT_TEST_SEND"], override_defaults=False)
def create_test_send(instance_id: uuid.UUID, body: TestSendIn):
    """Render an email step (`step_id`, or `step`: its position) for `contact_id` (default: the
    first contact enrolled, else a sample contact) and send it to `to` (default: the API key's
    user) through the campaign's sender, with `[Test]` before the subject. Nothing counts it: no
    delivery, no event, no change to any enrollment. A field with no value is a 422 naming it; a
    mail server that refuses or cannot be reached is a 502."""
    to = body.to or trial_sends.user_email(g.api_key.user_id)
    if to is None:
        raise ValidationFailed(
            "This API key belongs to no user: say where to send the test with `to`.",
            details=[{"field": "to", "message": "is required"}],
        )
    return trial_sends.send_test_email(
        g.workspace, instance_id, to=to, step_id=body.step_id, position=body.step, contact_id=body.contact_id
    )

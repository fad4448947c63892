"""A launched campaign's own steps (its copy of the template's, taken at launch)."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import operation, parse_body
from webapp.models.enums import Channel
from webapp.schemas.campaign_steps import (
    CampaignEmailStepUpdate,
    CampaignLinkedInStepUpdate,
    CampaignStepIn,
    CampaignStepOut,
    CampaignStepsOut,
    StepRemovalOut,
    StepRemovalQuery,
)
from webapp.services import campaign_steps, lifecycle

TAG = "instances"
STEP = "/instances/<uuid:instance_id>/steps/<uuid:step_id>"


@operation(
    bp, "GET", "/instances/<uuid:instance_id>/steps", summary="A campaign's steps", tag=TAG, response=CampaignStepsOut
)
def list_campaign_steps(instance_id: uuid.UUID):
    """The steps the campaign runs, each with the number of contacts waiting on it and not yet past
    it. A draft runs its template's steps (`follows_template`); a launched campaign its own copy."""
    instance, steps = campaign_steps.list_campaign_steps(g.workspace, instance_id)
    return CampaignStepsOut(
        follows_template=not instance.template.campaign_copy,
        steps=[CampaignStepOut.of(step, impact) for step, impact in steps],
    )


@operation(
    bp,
    "POST",
    "/instances/<uuid:instance_id>/steps",
    summary="Add a step to a launched campaign",
    tag=TAG,
    body=CampaignStepIn,
    response=CampaignStepOut,
    status=201,
    extra_errors=(404, 409),
)
def create_campaign_step(instance_id: uuid.UUID, body: CampaignStepIn):
    """The body of a template's email or LinkedIn step, with `channel`. Only this campaign changes;
    the contacts not yet past the new step's place get it. 409 for a draft (edit its template)."""
    step, impact = campaign_steps.add_campaign_step(g.workspace, instance_id, body.root, actor=lifecycle.Actor.API)
    return CampaignStepOut.of(step, impact)


@operation(
    bp,
    "PATCH",
    STEP,
    summary="Change a launched campaign's step",
    tag=TAG,
    raw_body=True,
    response=CampaignStepOut,
    extra_errors=(400, 404, 409),
)
def update_campaign_step(instance_id: uuid.UUID, step_id: uuid.UUID):
    """The fields of the step's channel. A new delay moves the due time of the contacts waiting on
    it. Deactivating (`is_active: false`) a step contacts wait on needs `waiting`: skip or stop."""
    step, _ = campaign_steps.get_campaign_step(g.workspace, instance_id, step_id)
    body = parse_body(CampaignEmailStepUpdate if step.channel == Channel.EMAIL else CampaignLinkedInStepUpdate)
    step, impact = campaign_steps.update_campaign_step(
        g.workspace, instance_id, step_id, body.step_update(), waiting=body.waiting, actor=lifecycle.Actor.API
    )
    return CampaignStepOut.of(step, impact)


@operation(
    bp,
    "DELETE",
    STEP,
    summary="Remove a launched campaign's step",
    tag=TAG,
    query=StepRemovalQuery,
    response=StepRemovalOut,
    extra_errors=(404, 409),
)
def delete_campaign_step(instance_id: uuid.UUID, step_id: uuid.UUID, query: StepRemovalQuery):
    """Deleted, or deactivated when it was sent to someone. Contacts waiting on it need
    `?waiting=skip` (on to the next step) or `?waiting=stop` (their sequence ends): without it, a
    409 gives their number."""
    return campaign_steps.remove_campaign_step(
        g.workspace, instance_id, step_id, waiting=query.waiting, actor=lifecycle.Actor.API
    )

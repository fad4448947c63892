"""Templates and their email and LinkedIn steps."""

import uuid

from flask import g

from webapp.api import bp
from webapp.api.base import Page, operation
from webapp.models.enums import Channel
from webapp.schemas.common import CloneIn
from webapp.schemas.templates import (
    EmailStepIn,
    EmailStepUpdate,
    LinkedInStepIn,
    LinkedInStepUpdate,
    StepOut,
    TemplateDetail,
    TemplateIn,
    TemplateOut,
    TemplateQuery,
    TemplateUpdate,
)
from webapp.services import sequences, templates

TAG = "templates"


@operation(
    bp,
    "POST",
    "/templates",
    summary="Create a template",
    tag=TAG,
    body=TemplateIn,
    response=TemplateDetail,
    status=201,
    extra_errors=(404,),
)
def create_template(body: TemplateIn):
    """404 when `settings.mailbox_ids` names a mailbox the workspace does not have."""
    return templates.create_template(g.workspace, body)


@operation(
    bp,
    "GET",
    "/templates",
    summary="List templates",
    tag=TAG,
    query=TemplateQuery,
    response=TemplateOut,
    paginated=True,
)
def list_templates(query: TemplateQuery):
    items, total = templates.list_templates(
        g.workspace, search=query.search, is_active=query.is_active, page=query.page, limit=query.limit
    )
    return Page(items, total, query.page, query.limit)


@operation(
    bp,
    "GET",
    "/templates/<uuid:template_id>",
    summary="Get a template with its steps",
    tag=TAG,
    response=TemplateDetail,
)
def get_template(template_id: uuid.UUID):
    return templates.get_template(g.workspace, template_id)


@operation(
    bp,
    "PUT",
    "/templates/<uuid:template_id>",
    summary="Update a template",
    tag=TAG,
    body=TemplateUpdate,
    response=TemplateDetail,
)
def update_template(template_id: uuid.UUID, body: TemplateUpdate):
    return templates.update_template(g.workspace, template_id, body)


@operation(bp, "DELETE", "/templates/<uuid:template_id>", summary="Delete a template", tag=TAG, extra_errors=(409,))
def delete_template(template_id: uuid.UUID):
    """A template that campaigns use cannot be deleted (409); deactivate it instead."""
    templates.delete_template(g.workspace, template_id)


@operation(
    bp,
    "POST",
    "/templates/<uuid:template_id>/clone",
    summary="Clone a template with its steps",
    tag=TAG,
    body=CloneIn,
    body_optional=True,
    response=TemplateDetail,
    status=201,
)
def clone_template(template_id: uuid.UUID, body: CloneIn):
    """A new template with the same settings and a copy of every step; the body may name it
    (default "<name> (copy)", numbered when that name is taken)."""
    return templates.clone_template(g.workspace, template_id, name=body.name)


@operation(
    bp,
    "POST",
    "/templates/<uuid:template_id>/sequences/email",
    summary="Add an email step",
    tag=TAG,
    body=EmailStepIn,
    response=StepOut,
    status=201,
    extra_errors=(409,),
)
def create_email_step(template_id: uuid.UUID, body: EmailStepIn):
    """Appends, or inserts at `step_number` and shifts the later steps. An empty subject makes the
    step a reply in the thread of the email before it; 409 when that leaves the first email without
    a subject of its own."""
    return sequences.add_email_step(g.workspace, template_id, body)


@operation(
    bp,
    "PUT",
    "/templates/<uuid:template_id>/sequences/email/<uuid:step_id>",
    summary="Update an email step",
    tag=TAG,
    body=EmailStepUpdate,
    response=StepOut,
    extra_errors=(409,),
)
def update_email_step(template_id: uuid.UUID, step_id: uuid.UUID, body: EmailStepUpdate):
    return sequences.update_email_step(g.workspace, template_id, step_id, body)


@operation(
    bp,
    "DELETE",
    "/templates/<uuid:template_id>/sequences/email/<uuid:step_id>",
    summary="Delete an email step",
    tag=TAG,
    response=None,
    extra_errors=(409,),
)
def delete_email_step(template_id: uuid.UUID, step_id: uuid.UUID):
    """A step that already has sends is deactivated rather than deleted."""
    sequences.remove_step(g.workspace, template_id, step_id, channel=Channel.EMAIL)


@operation(
    bp,
    "POST",
    "/templates/<uuid:template_id>/sequences/linkedin",
    summary="Add a LinkedIn step",
    tag=TAG,
    body=LinkedInStepIn,
    response=StepOut,
    status=201,
    extra_errors=(409,),
)
def create_linkedin_step(template_id: uuid.UUID, body: LinkedInStepIn):
    return sequences.add_linkedin_step(g.workspace, template_id, body)


@operation(
    bp,
    "PUT",
    "/templates/<uuid:template_id>/sequences/linkedin/<uuid:step_id>",
    summary="Update a LinkedIn step",
    tag=TAG,
    body=LinkedInStepUpdate,
    response=StepOut,
    extra_errors=(409,),
)
def update_linkedin_step(template_id: uuid.UUID, step_id: uuid.UUID, body: LinkedInStepUpdate):
    return sequences.update_linkedin_step(g.workspace, template_id, step_id, body)


@operation(
    bp,
    "DELETE",
    "/templates/<uuid:template_id>/sequences/linkedin/<uuid:step_id>",
    summary="Delete a LinkedIn step",
    tag=TAG,
    response=None,
    extra_errors=(409,),
)
def delete_linkedin_step(template_id: uuid.UUID, step_id: uuid.UUID):
    sequences.remove_step(g.workspace, template_id, step_id, channel=Channel.LINKEDIN)

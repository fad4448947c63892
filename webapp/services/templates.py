"""Campaign templates: the reusable sequences campaigns are launched from."""

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from webapp.errors import Conflict, NotFound
from webapp.extensions import db
from webapp.models import CampaignInstance, CampaignTemplate, SequenceStep, Workspace
from webapp.schemas.settings import settings_dict
from webapp.schemas.templates import TemplateIn, TemplateUpdate
from webapp.services.lookups import copied_columns, copy_name, get_owned, like_pattern, paginate
from webapp.services.mailboxes import checked_settings


def create_template(workspace: Workspace, data: TemplateIn) -> CampaignTemplate:
    template = CampaignTemplate(
        workspace_id=workspace.id,
        name=data.name,
        type=data.type,
        path_type=data.path_type,
        description=data.description,
        settings=checked_settings(workspace, settings_dict(data.settings)),
        is_active=data.is_active,
    )
    db.session.add(template)
    db.session.commit()
    return get_template(workspace, template.id)


def get_template(workspace: Workspace, template_id: uuid.UUID) -> CampaignTemplate:
    """The template with its steps loaded, or NotFound (a campaign's copy is not a template)."""
    template = db.session.scalar(
        sa.select(CampaignTemplate)
        .where(
            CampaignTemplate.id == template_id,
            CampaignTemplate.workspace_id == workspace.id,
            CampaignTemplate.campaign_copy.is_(False),
        )
        .options(selectinload(CampaignTemplate.steps))
    )
    if template is None:
        raise NotFound(f"Template {template_id} not found.")
    return template


def copy_template(template: CampaignTemplate, **changes) -> CampaignTemplate:
    """A new template with `template`'s settings and all its steps (every column, a column added
    later too), with `changes` applied to the copy (e.g. `name`, `campaign_copy=True`). Adds and
    flushes; the caller commits. Both a person's clone and a campaign's own copy at launch use it."""
    copy = CampaignTemplate(**copied_columns(template) | changes)
    db.session.add(copy)
    db.session.flush()
    steps = db.session.scalars(sa.select(SequenceStep).where(SequenceStep.template_id == template.id)).all()
    db.session.add_all(SequenceStep(**copied_columns(step) | {"template_id": copy.id}) for step in steps)
    db.session.flush()
    return copy


def clone_template(workspace: Workspace, template_id: uuid.UUID, *, name: str | None = None) -> CampaignTemplate:
    """A new template with the settings and every step of the template, named `name` or
    "<name> (copy)" (numbered when taken). NotFound for another workspace's id (or a campaign's copy)."""
    source = get_template(workspace, template_id)
    clone = copy_template(source, name=name or copy_name(CampaignTemplate, workspace, source.name))
    db.session.commit()
    return get_template(workspace, clone.id)


def list_templates(
    workspace: Workspace, *, search: str | None = None, is_active: bool | None = None, page: int = 1, limit: int = 20
) -> tuple[list[CampaignTemplate], int]:
    query = sa.select(CampaignTemplate).where(
        CampaignTemplate.workspace_id == workspace.id, CampaignTemplate.campaign_copy.is_(False)
    )
    if search:
        query = query.where(CampaignTemplate.name.ilike(like_pattern(search), escape="\\"))
    if is_active is not None:
        query = query.where(CampaignTemplate.is_active == is_active)
    return paginate(query.order_by(CampaignTemplate.created_at.desc(), CampaignTemplate.id), page=page, limit=limit)


def _owned_template(workspace: Workspace, template_id: uuid.UUID) -> CampaignTemplate:
    template = get_owned(CampaignTemplate, workspace, template_id)
    if template.campaign_copy:
        raise NotFound(f"Template {template_id} not found.")
    return template


def update_template(workspace: Workspace, template_id: uuid.UUID, data: TemplateUpdate) -> CampaignTemplate:
    template = _owned_template(workspace, template_id)
    changes = data.model_dump(exclude_unset=True, exclude={"settings"})
    for field, value in changes.items():
        if value is None and field in ("name", "type", "path_type", "is_active"):
            continue
        setattr(template, field, value)
    if "settings" in data.model_fields_set:
        template.settings = checked_settings(workspace, settings_dict(data.settings))
    db.session.commit()
    return get_template(workspace, template.id)


def delete_template(workspace: Workspace, template_id: uuid.UUID) -> None:
    """Delete a template and its steps. A template that campaigns use or were made from is a Conflict."""
    template = _owned_template(workspace, template_id)
    used = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(CampaignInstance)
        .where(sa.or_(CampaignInstance.template_id == template.id, CampaignInstance.source_template_id == template.id))
    )
    if used:
        raise Conflict(f"Template is used by {used} campaign(s); deactivate it instead (is_active: false).")
    db.session.delete(template)
    db.session.commit()

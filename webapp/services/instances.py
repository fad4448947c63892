"""Campaign instances and their status state machine.

draft -> active -> paused <-> active -> completed; draft -> completed (cancel).
Only an active instance sends.
"""

import copy
import uuid

import sqlalchemy as sa

from webapp.engine import policy
from webapp.errors import Conflict, InvalidTransition, NotFound
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, CampaignTemplate, SequenceStep, Workspace, utcnow
from webapp.models.enums import InstanceStatus
from webapp.schemas.instances import InstanceIn
from webapp.schemas.settings import settings_dict
from webapp.services import lifecycle
from webapp.services.lookups import copy_name, get_owned, like_pattern, paginate
from webapp.services.mailboxes import checked_settings

TRANSITIONS: dict[str, tuple[str, ...]] = {
    InstanceStatus.DRAFT: (InstanceStatus.ACTIVE, InstanceStatus.COMPLETED),
    InstanceStatus.ACTIVE: (InstanceStatus.PAUSED, InstanceStatus.COMPLETED),
    InstanceStatus.PAUSED: (InstanceStatus.ACTIVE, InstanceStatus.COMPLETED),
    InstanceStatus.COMPLETED: (),
}


def allowed_transitions(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def create_instance(workspace: Workspace, data: InstanceIn) -> CampaignInstance:
    """A draft campaign from one of the workspace's active templates."""
    template = _usable_template(workspace, data.template_id)
    instance = CampaignInstance(
        workspace_id=workspace.id,
        template_id=template.id,
        name=data.name,
        settings=checked_settings(workspace, settings_dict(data.settings)),
    )
    db.session.add(instance)
    db.session.commit()
    return instance


def _usable_template(workspace: Workspace, template_id: uuid.UUID) -> CampaignTemplate:
    """The workspace's template to start a campaign from: NotFound, or Conflict when inactive."""
    template = db.session.scalar(
        sa.select(CampaignTemplate).where(
            CampaignTemplate.id == template_id, CampaignTemplate.workspace_id == workspace.id
        )
    )
    if template is None:
        raise NotFound(f"Template {template_id} not found.")
    if not template.is_active:
        raise Conflict("Template is inactive; activate it before creating a campaign from it.")
    return template


def clone_instance(workspace: Workspace, instance_id: uuid.UUID, *, name: str | None = None) -> CampaignInstance:
    """A new draft campaign with the campaign's template and settings, named `name` or
    "<name> (copy)" (numbered when taken); no enrollments, events, deliveries or launch times.
    NotFound for another workspace's id; Conflict when the template has been deactivated since."""
    source = get_owned(CampaignInstance, workspace, instance_id)
    template = _usable_template(workspace, source.template_id)
    clone = CampaignInstance(
        workspace_id=workspace.id,
        template_id=template.id,
        name=name or copy_name(CampaignInstance, workspace, source.name),
        settings=copy.deepcopy(source.settings or {}),
    )
    db.session.add(clone)
    db.session.commit()
    return clone


def get_instance(workspace: Workspace, instance_id: uuid.UUID) -> CampaignInstance:
    return get_owned(CampaignInstance, workspace, instance_id)


def list_instances(
    workspace: Workspace, *, status: str | None = None, search: str | None = None, page: int = 1, limit: int = 20
) -> tuple[list[CampaignInstance], int]:
    query = sa.select(CampaignInstance).where(CampaignInstance.workspace_id == workspace.id)
    if status:
        query = query.where(CampaignInstance.status == status)
    if search:
        query = query.where(CampaignInstance.name.ilike(like_pattern(search), escape="\\"))
    return paginate(query.order_by(CampaignInstance.created_at.desc(), CampaignInstance.id), page=page, limit=limit)


def first_active_step(instance: CampaignInstance) -> SequenceStep | None:
    return db.session.scalar(
        sa.select(SequenceStep)
        .where(SequenceStep.template_id == instance.template_id, SequenceStep.is_active.is_(True))
        .order_by(SequenceStep.position)
        .limit(1)
    )


def change_instance_status(
    workspace: Workspace, instance_id: uuid.UUID, status: str, *, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> CampaignInstance:
    """Move the instance to `status`, or InvalidTransition (409) naming the allowed ones.

    The row is locked for the change, so two concurrent changes end in one consistent state.
    """
    instance = get_owned(CampaignInstance, workspace, instance_id, lock=True)
    allowed = allowed_transitions(instance.status)
    if status not in allowed:
        names = ", ".join(allowed) if allowed else "none (the campaign is completed)"
        raise InvalidTransition(
            f"Cannot change a {instance.status} campaign to {status}. Allowed: {names}.",
            details=[{"field": "status", "allowed": list(allowed)}],
        )
    now = utcnow()
    if status == InstanceStatus.ACTIVE:
        if instance.status == InstanceStatus.DRAFT:
            _launch(instance, now, actor)
        instance.paused_at = None
    elif status == InstanceStatus.PAUSED:
        instance.paused_at = now
    elif status == InstanceStatus.COMPLETED:
        instance.completed_at = now
        lifecycle.change(
            "end",
            actor=actor,
            where=[CampaignEnrollment.instance_id == instance.id],
            reason=lifecycle.Reason.CAMPAIGN_COMPLETED,
            now=now,
        )
    instance.status = status
    db.session.commit()
    return instance


def _launch(instance: CampaignInstance, now, actor: lifecycle.Actor) -> None:
    step = first_active_step(instance)
    if step is None:
        raise Conflict("The template has no active steps; add a step before launching.")
    instance.started_at = now
    lifecycle.change(
        "launch",
        actor=actor,
        where=[CampaignEnrollment.instance_id == instance.id],
        reason=None,
        now=now,
        next_action_at=policy.step_due(now, step),
    )

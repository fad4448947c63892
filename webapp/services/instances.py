"""Campaign instances and their status state machine.

draft -> active -> paused <-> active -> completed; draft -> completed (cancel).
Only an active instance sends.
"""

import copy
import logging
import uuid
from datetime import datetime

import sqlalchemy as sa

from webapp.engine import policy
from webapp.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, CampaignTemplate, SequenceStep, Workspace, utcnow
from webapp.models.enums import EnrollmentStatus, InstanceStatus
from webapp.schemas.instances import InstanceIn, InstanceUpdateIn
from webapp.schemas.settings import settings_dict
from webapp.services import lifecycle, readiness
from webapp.services.lookups import copy_name, get_owned, like_pattern, paginate
from webapp.services.mailboxes import checked_settings
from webapp.services.sending import settings as sending_settings
from webapp.services.templates import copy_template

log = logging.getLogger("drumbeat.instances")

# The settings that move send times: changing one re-plans the waiting enrollments.
TIMING_SETTINGS = ("send_window", "timezone", "daily_cap", "min_gap_seconds", "skip_holidays", "mailbox_ids")

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
        source_template_id=template.id,
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
            CampaignTemplate.id == template_id,
            CampaignTemplate.workspace_id == workspace.id,
            CampaignTemplate.campaign_copy.is_(False),
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
    if source.template.campaign_copy:  # launched: the clone takes the campaign's own steps as they are now
        template_id = copy_template(source.template, campaign_copy=True).id
        made_from = source.source_template_id
    else:
        template_id = made_from = _usable_template(workspace, source.template_id).id
    clone = CampaignInstance(
        workspace_id=workspace.id,
        template_id=template_id,
        source_template_id=made_from,
        name=name or copy_name(CampaignInstance, workspace, source.name),
        settings=copy.deepcopy(source.settings or {}),
    )
    db.session.add(clone)
    db.session.commit()
    return clone


def move_targets(workspace: Workspace, instance: CampaignInstance, *, limit: int = 100) -> list[sa.Row]:
    """The campaigns `instance`'s contacts can be moved to: the workspace's others not completed."""
    return db.session.execute(
        sa.select(CampaignInstance.id, CampaignInstance.name)
        .where(
            CampaignInstance.workspace_id == workspace.id,
            CampaignInstance.id != instance.id,
            CampaignInstance.status != InstanceStatus.COMPLETED,
        )
        .order_by(CampaignInstance.name, CampaignInstance.id)
        .limit(limit)
    ).all()


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
    workspace: Workspace,
    instance_id: uuid.UUID,
    status: str,
    *,
    actor: lifecycle.Actor = lifecycle.Actor.PERSON,
    confirm: bool = False,
) -> CampaignInstance:
    """Move the instance to `status`, or InvalidTransition (409) naming the allowed ones.

    A launch (draft to active) passes the launch check first (services/readiness.py): blocking
    problems refuse it (Conflict, 409), and so do warnings (Unprocessable, 422) unless `confirm`;
    the error's details list the problems. The row is locked for the change, so two concurrent
    changes end in one consistent state.
    """
    instance = get_owned(CampaignInstance, workspace, instance_id, lock=True)
    _transition(workspace, instance, status, utcnow(), actor, confirm=confirm)
    db.session.commit()
    return instance


def update_instance(
    workspace: Workspace,
    instance_id: uuid.UUID,
    data: InstanceUpdateIn,
    *,
    actor: lifecycle.Actor = lifecycle.Actor.PERSON,
    now: datetime | None = None,
) -> CampaignInstance:
    """Change the fields `data` gives, in one transaction on the locked row (two edits at once
    apply one after the other; neither is lost). Settings that would leave the campaign unable
    to send are refused (ValidationFailed) and change nothing. A change of timing re-plans the
    campaign's waiting enrollments in the same transaction, so the schedule shows the new times
    at once."""
    now = now or utcnow()
    instance = get_owned(CampaignInstance, workspace, instance_id, lock=True)
    try:
        _update(workspace, instance, data, actor, now)
    except Exception:
        db.session.rollback()  # nothing of a refused edit stays, not even in the session's objects
        raise
    db.session.commit()
    return instance


def _update(workspace: Workspace, instance: CampaignInstance, data: InstanceUpdateIn, actor, now: datetime) -> None:
    given = data.model_fields_set - {"confirm"}
    if instance.status == InstanceStatus.COMPLETED and given - {"status"}:
        raise Conflict("A completed campaign cannot be edited: clone it to run it again.")
    if "name" in given:
        instance.name = data.name
    retimed = False
    if "settings" in given:
        retimed = _edit_settings(workspace, instance, data.settings, now)
    if "start_at" in given:
        _schedule(workspace, instance, data.start_at, now, confirm=data.confirm)
    if data.status is not None:
        _transition(workspace, instance, data.status, now, actor, confirm=data.confirm)
    if retimed and instance.started_at is not None and instance.status != InstanceStatus.COMPLETED:
        replan_waiting(instance.id, now)


def _edit_settings(workspace: Workspace, instance: CampaignInstance, settings, now: datetime) -> bool:
    """Merge the settings given into the campaign's; True when the change moves send times."""
    before = dict(instance.settings or {})
    merged = {} if settings is None else {**before, **settings_dict(settings)}
    after = checked_settings(workspace, {key: value for key, value in merged.items() if value is not None})
    template_settings = db.session.scalar(
        sa.select(CampaignTemplate.settings).where(CampaignTemplate.id == instance.template_id)
    )
    try:
        rules = sending_settings.merge(workspace.settings, template_settings, after).rules
        policy.plan(now, now=now, rules=rules)
    except (sending_settings.InvalidSettings, policy.NoSendTime) as exc:
        raise Conflict(
            f"These settings would leave the campaign unable to send: {exc}.",
            details=[{"field": "settings", "message": str(exc)}],
        ) from exc
    instance.settings = after
    return any(before.get(key) != after.get(key) for key in TIMING_SETTINGS)


def _schedule(workspace: Workspace, instance: CampaignInstance, start_at, now: datetime, *, confirm: bool) -> None:
    """Set or cancel a draft's launch time; one is set only when the launch check lets it launch."""
    if start_at is not None:
        if instance.status != InstanceStatus.DRAFT:
            raise Conflict(f"Only a draft can be scheduled to launch; this campaign is {instance.status}.")
        if start_at <= now:
            raise Conflict(
                "The launch time must be in the future: launch now instead.",
                details=[{"field": "start_at", "message": "must be in the future"}],
            )
        _check_launch(workspace, instance, now, confirm=confirm)
    instance.start_at, instance.start_error = start_at, None


def replan_waiting(instance_id: uuid.UUID, now: datetime) -> int:
    """After a change of timing: the campaign's enrollments that the policy put off (a send window,
    a cap, a gap, a mailbox) are due again now, in one statement, so that the next look (the
    worker's or the schedule preview's) plans them with the new settings. Those waiting for a
    step's delay keep their time, and so do those waiting for an out-of-office return date: no
    setting moves either. Returns how many were re-planned."""
    return db.session.execute(
        sa.update(CampaignEnrollment)
        .where(
            CampaignEnrollment.instance_id == instance_id,
            CampaignEnrollment.status == EnrollmentStatus.ACTIVE,
            CampaignEnrollment.next_action_at > now,
            CampaignEnrollment.wait_reason.is_not(None),
            CampaignEnrollment.wait_reason.not_like(f"{policy.Delay.AWAY}%"),
        )
        .values(next_action_at=now, wait_reason=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def launch_scheduled(now: datetime, *, actor: lifecycle.Actor = lifecycle.Actor.WORKER) -> int:
    """Launch the drafts whose `start_at` has come (the worker calls this each run). One that
    cannot launch stays a draft, loses its `start_at` and says why in `start_error`. Each is
    taken by a guarded UPDATE first, so that of several workers exactly one launches it.
    Commits; returns how many launched."""
    due = db.session.scalars(
        sa.select(CampaignInstance.id).where(
            CampaignInstance.start_at <= now, CampaignInstance.status == InstanceStatus.DRAFT
        )
    ).all()
    launched = 0
    for instance_id in due:
        taken = db.session.execute(
            sa.update(CampaignInstance)
            .where(
                CampaignInstance.id == instance_id,
                CampaignInstance.status == InstanceStatus.DRAFT,
                CampaignInstance.start_at <= now,
            )
            .values(start_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not taken:  # launched, cancelled or taken by another worker meanwhile
            db.session.rollback()
            continue
        instance = db.session.get(CampaignInstance, instance_id, populate_existing=True)
        workspace = db.session.get(Workspace, instance.workspace_id)
        try:  # its warnings were confirmed when it was scheduled; what blocks it now still does
            _transition(workspace, instance, InstanceStatus.ACTIVE, now, actor, confirm=True)
            launched += 1
        except Conflict as exc:  # e.g. no step left to send
            instance.start_error = exc.message[:500]
            log.warning("scheduled launch refused", extra={"instance_id": str(instance_id), "error": exc.message})
        db.session.commit()
    return launched


def _transition(
    workspace: Workspace,
    instance: CampaignInstance,
    status: str,
    now: datetime,
    actor: lifecycle.Actor,
    *,
    confirm: bool = False,
) -> None:
    allowed = allowed_transitions(instance.status)
    if status not in allowed:
        names = ", ".join(allowed) if allowed else "none (the campaign is completed)"
        raise InvalidTransition(
            f"Cannot change a {instance.status} campaign to {status}. Allowed: {names}.",
            details=[{"field": "status", "allowed": list(allowed)}],
        )
    if status == InstanceStatus.ACTIVE:
        if instance.status == InstanceStatus.DRAFT:
            _check_launch(workspace, instance, now, confirm=confirm)
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
    instance.start_at, instance.start_error = None, None  # launched, or not a draft any more
    instance.status = status


def _check_launch(workspace: Workspace, instance: CampaignInstance, now, *, confirm: bool) -> None:
    report = readiness.readiness_of(workspace, instance, now=now)
    if report.blocking:
        reasons = " ".join(problem.message for problem in report.blocking)
        raise Conflict(f"The campaign cannot launch yet. {reasons}", details=report.error_details())
    if report.warnings and not confirm:
        reasons = " ".join(problem.message for problem in report.warnings)
        raise Unprocessable(
            f"Confirm the launch: {reasons} To launch anyway, send confirm: true with the status.",
            details=report.error_details(),
        )


def _launch(instance: CampaignInstance, now, actor: lifecycle.Actor) -> None:
    """The campaign takes its own copy of its template (settings and steps), so later edits of the
    template do not move it; a draft has no deliveries, events or tasks pointing at the old steps."""
    step = first_active_step(instance)
    if step is None:
        raise Conflict("The template has no active steps; add a step before launching.")
    if not instance.template.campaign_copy:
        instance.template_id = copy_template(instance.template, campaign_copy=True).id
    instance.started_at = now
    lifecycle.change(
        "launch",
        actor=actor,
        where=[CampaignEnrollment.instance_id == instance.id],
        reason=None,
        now=now,
        next_action_at=policy.step_due(now, step),
    )

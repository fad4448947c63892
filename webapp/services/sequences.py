"""Steps of a template: one ordered list per template, shown by channel in the API.

Positions are 1-based and dense. Inserting at a position shifts the later steps down;
removing closes the gap. A step that already has deliveries is deactivated instead of
deleted, so the send ledger and the analytics keep pointing at it.

The same functions edit a launched campaign's own steps (services/campaign_steps.py): with
`campaign_copy=True` they work on a campaign's copy (a template's id finds none), and with
`commit=False` they check and flush but leave the commit to that caller.
"""

import uuid

import sqlalchemy as sa

from webapp.engine import render
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignTemplate, Delivery, SequenceStep, Task, Workspace, utcnow
from webapp.models.enums import Channel, StepAction, TemplateType
from webapp.schemas.templates import EmailStepIn, EmailStepUpdate, LinkedInStepIn, LinkedInStepUpdate
from webapp.services.lookups import get_owned


def _locked_template(workspace: Workspace, template_id: uuid.UUID, campaign_copy: bool = False) -> CampaignTemplate:
    # The row lock serialises concurrent position changes of one template on PostgreSQL.
    template = get_owned(CampaignTemplate, workspace, template_id, lock=True)
    if template.campaign_copy != campaign_copy:
        raise NotFound(f"Template {template_id} not found.")
    return template


def _step_count(template: CampaignTemplate) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(SequenceStep).where(SequenceStep.template_id == template.id)
    )


def _shift(template: CampaignTemplate, *, start: int, end: int | None, by: int) -> None:
    condition = [SequenceStep.template_id == template.id, SequenceStep.position >= start]
    if end is not None:
        condition.append(SequenceStep.position <= end)
    db.session.execute(
        sa.update(SequenceStep)
        .where(*condition)
        .values(position=SequenceStep.position + by)
        .execution_options(synchronize_session=False)
    )


def _insert_position(template: CampaignTemplate, requested: int | None) -> int:
    count = _step_count(template)
    if requested is None or requested > count:
        return count + 1
    _shift(template, start=requested, end=None, by=1)
    return requested


def _touch(template: CampaignTemplate) -> None:
    template.updated_at = utcnow()


def add_email_step(
    workspace: Workspace, template_id: uuid.UUID, data: EmailStepIn, *, campaign_copy: bool = False, commit: bool = True
) -> SequenceStep:
    """Append an email step, or insert it at `step_number` and shift the later steps."""
    return _add_step(
        workspace,
        template_id,
        data,
        campaign_copy=campaign_copy,
        commit=commit,
        channel=Channel.EMAIL,
        action=StepAction.EMAIL,
        subject=data.subject or None,
        body=data.body,
        thread=data.thread,
    )


def add_linkedin_step(
    workspace: Workspace,
    template_id: uuid.UUID,
    data: LinkedInStepIn,
    *,
    campaign_copy: bool = False,
    commit: bool = True,
) -> SequenceStep:
    """Append a LinkedIn step, or insert it at `step_number` and shift the later steps."""
    return _add_step(
        workspace,
        template_id,
        data,
        campaign_copy=campaign_copy,
        commit=commit,
        channel=Channel.LINKEDIN,
        action=data.action_type,
        body=data.message,
    )


def _add_step(
    workspace: Workspace,
    template_id: uuid.UUID,
    data: EmailStepIn | LinkedInStepIn,
    *,
    campaign_copy: bool,
    commit: bool,
    **content,
) -> SequenceStep:
    template = _locked_template(workspace, template_id, campaign_copy)
    step = SequenceStep(
        template_id=template.id,
        position=_insert_position(template, data.step_number),
        delay_days=data.delay_days,
        delay_hours=data.delay_hours,
        is_active=data.is_active,
        **content,
    )
    return _save_new(template, step, commit=commit)


def check_step_content(**fields: str | None) -> None:
    """Reject content the sandboxed renderer would refuse, naming the field and the problem."""
    details = []
    for name, text in fields.items():
        if text is None:
            continue
        try:
            render.validate_template(text)
        except render.TemplateError as exc:
            details.append({"field": name, "message": exc.message})
    if details:
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ValidationFailed(f"Invalid template: {summary}", details=details)


CONNECTION_NOTE_CHARS = 300  # LinkedIn's limit on a connection request's note


def check_connection_note(action: str, message: str | None) -> None:
    """A connection request's note longer than LinkedIn takes is refused (naming `message`)."""
    if action == StepAction.CONNECTION_REQUEST and message and len(message) > CONNECTION_NOTE_CHARS:
        problem = f"at most {CONNECTION_NOTE_CHARS} characters on LinkedIn ({len(message)} given)"
        raise ValidationFailed(
            f"A connection request's note is {problem}.", details=[{"field": "message", "message": problem}]
        )


def _save_new(template: CampaignTemplate, step: SequenceStep, *, commit: bool) -> SequenceStep:
    check_step_content(subject=step.subject, body=step.body)
    check_connection_note(step.action, step.body)
    db.session.add(step)
    if template.type != TemplateType.MULTI_CHANNEL and template.type != step.channel:
        template.type = TemplateType.MULTI_CHANNEL
    _commit(template, commit=commit)
    return step


def _commit(template: CampaignTemplate, *, commit: bool = True) -> None:
    """Save a change of the template's steps. Every email step has a subject or goes in the thread
    of the email before it, and the first one starts a thread of its own."""
    db.session.flush()
    emails = db.session.scalars(
        sa.select(SequenceStep)
        .where(SequenceStep.template_id == template.id, SequenceStep.channel == Channel.EMAIL)
        .order_by(SequenceStep.position)
    ).all()
    problem = None
    if any(not step.in_thread and not (step.subject or "").strip() for step in emails):
        problem = "An email step needs a subject, or to be sent as a reply in the thread of the email before it."
    first = next((step for step in emails if step.is_active), None)
    if first is not None and first.in_thread:
        problem = "The first email step needs a subject of its own: there is no earlier email to reply to."
    if problem:
        db.session.rollback()
        raise Conflict(problem, details=[{"field": "subject", "message": problem}])
    _touch(template)
    if commit:
        db.session.commit()
    else:
        db.session.flush()


def _get_step(template: CampaignTemplate, step_id: uuid.UUID, channel: str) -> SequenceStep:
    step = db.session.scalar(
        sa.select(SequenceStep).where(SequenceStep.id == step_id, SequenceStep.template_id == template.id)
    )
    if step is None or step.channel != channel:
        raise NotFound(f"{channel.capitalize() if channel == 'email' else 'LinkedIn'} step {step_id} not found.")
    return step


def _move(template: CampaignTemplate, step: SequenceStep, requested: int) -> None:
    count = _step_count(template)
    target = min(requested, count)
    if target == step.position:
        return
    old = step.position
    step.position = 0  # out of the way while the others shift
    db.session.flush()
    if target > old:
        _shift(template, start=old + 1, end=target, by=-1)
    else:
        _shift(template, start=target, end=old - 1, by=1)
    step.position = target


def update_email_step(
    workspace: Workspace,
    template_id: uuid.UUID,
    step_id: uuid.UUID,
    data: EmailStepUpdate,
    *,
    campaign_copy: bool = False,
    commit: bool = True,
) -> SequenceStep:
    template = _locked_template(workspace, template_id, campaign_copy)
    step = _get_step(template, step_id, Channel.EMAIL)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("body", "") is None:
        changes.pop("body")  # an email step always has a body; a LinkedIn message may be cleared
    if changes.get("subject") == "":
        changes["subject"] = None  # a reply in the thread
        step.subject = None
    return _apply_update(template, step, changes, commit=commit)


def update_linkedin_step(
    workspace: Workspace,
    template_id: uuid.UUID,
    step_id: uuid.UUID,
    data: LinkedInStepUpdate,
    *,
    campaign_copy: bool = False,
    commit: bool = True,
) -> SequenceStep:
    template = _locked_template(workspace, template_id, campaign_copy)
    step = _get_step(template, step_id, Channel.LINKEDIN)
    changes = data.model_dump(exclude_unset=True)
    if "action_type" in changes:
        changes["action"] = changes.pop("action_type")
    if "message" in changes:
        changes["body"] = changes.pop("message")
    return _apply_update(template, step, changes, commit=commit)


def _apply_update(template: CampaignTemplate, step: SequenceStep, changes: dict, *, commit: bool) -> SequenceStep:
    check_step_content(subject=changes.get("subject"), body=changes.get("body"))
    check_connection_note(changes.get("action") or step.action, changes.get("body", step.body))
    requested = changes.pop("step_number", None)
    for field, value in changes.items():
        if value is None and field in ("delay_days", "delay_hours", "is_active", "action", "subject"):
            continue
        setattr(step, field, value)
    if requested is not None:
        _move(template, step, requested)
    _commit(template, commit=commit)
    return step


def move_step(workspace: Workspace, template_id: uuid.UUID, step_id: uuid.UUID, *, position: int) -> SequenceStep:
    """Move any step to `position` (1-based), shifting the steps in between."""
    template = _locked_template(workspace, template_id)
    step = db.session.scalar(
        sa.select(SequenceStep).where(SequenceStep.id == step_id, SequenceStep.template_id == template.id)
    )
    if step is None:
        raise NotFound(f"Step {step_id} not found.")
    _move(template, step, max(1, position))
    _commit(template)
    return step


def remove_step(
    workspace: Workspace,
    template_id: uuid.UUID,
    step_id: uuid.UUID,
    *,
    channel: str,
    campaign_copy: bool = False,
    commit: bool = True,
) -> bool:
    """Delete the step and close the gap; if it was ever sent, deactivate it instead.

    Returns True when the step was deleted, False when it was deactivated.
    """
    template = _locked_template(workspace, template_id, campaign_copy)
    step = _get_step(template, step_id, channel)
    used = db.session.scalar(sa.select(sa.exists().where(Delivery.step_id == step.id))) or db.session.scalar(
        sa.select(sa.exists().where(Task.step_id == step.id))
    )
    if used:
        step.is_active = False
        _commit(template, commit=commit)
        return False
    position = step.position
    db.session.delete(step)
    db.session.flush()
    _shift(template, start=position + 1, end=None, by=-1)
    _commit(template, commit=commit)
    return True

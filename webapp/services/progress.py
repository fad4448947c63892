"""Moving enrollments along their sequences. Helpers for the send pipeline and tasks: they
commit nothing; their callers do."""

import uuid
from datetime import datetime

import sqlalchemy as sa

from webapp.engine import policy
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, SequenceStep
from webapp.models.enums import EnrollmentStatus
from webapp.services import lifecycle
from webapp.services.bulk import update_each


class ActiveSteps:
    """Active steps per template, loaded once and reused."""

    def __init__(self):
        self._cache: dict[uuid.UUID, list[SequenceStep]] = {}

    def after(self, template_id: uuid.UUID, position: int) -> SequenceStep | None:
        """The first active step after `position`, or None when the sequence is done."""
        if template_id not in self._cache:
            self._cache[template_id] = list(
                db.session.scalars(
                    sa.select(SequenceStep)
                    .where(SequenceStep.template_id == template_id, SequenceStep.is_active.is_(True))
                    .order_by(SequenceStep.position)
                )
            )
        return next((s for s in self._cache[template_id] if s.position > position), None)


def advance(
    done: list[tuple[uuid.UUID, uuid.UUID, int]],
    *,
    now: datetime,
    actor: lifecycle.Actor,
    steps: ActiveSteps | None = None,
    by_template: bool = False,
) -> None:
    """Record a step done for each (enrollment id, campaign id, step position): the enrollment's
    next step is due after its delay, or the enrollment completes. Only active enrollments that
    had not done that step yet move (a reply recorded meanwhile keeps its final status; a step
    recorded twice moves nothing twice; a paused one records the step and stays paused). With
    `by_template` the second value is the template's id rather than the campaign's."""
    if not done:
        return
    steps = steps or ActiveSteps()
    templates = {key: key for _, key, _ in done} if by_template else _templates({key for _, key, _ in done})
    going_on, ending = [], []
    for enrollment_id, key, position in done:
        following = steps.after(templates[key], position)
        if following is None:
            ending.append((enrollment_id, position))
        else:
            going_on.append((enrollment_id, position, policy.step_due(now, following)))
    table = CampaignEnrollment.__table__

    def not_done_yet(values):
        return table.c.current_step < values["current_step"]

    update_each(
        lifecycle.statement("advance", actor=actor, reason=None, now=now),
        table.c.id,
        {"current_step": table.c.current_step, "next_action_at": table.c.next_action_at},
        going_on,
        where=not_done_yet,
    )
    update_each(
        lifecycle.statement("complete", actor=actor, reason=lifecycle.Reason.ALL_STEPS_DONE, now=now),
        table.c.id,
        {"current_step": table.c.current_step},
        ending,
        where=not_done_yet,
    )
    # A paused enrollment keeps its status but not the step a person did meanwhile (a task):
    # resumed, it goes on from the next one (or completes at the worker's next look).
    paused = sa.update(table).where(table.c.status == EnrollmentStatus.PAUSED).values(updated_at=now)
    update_each(
        paused,
        table.c.id,
        {"current_step": table.c.current_step, "next_action_at": table.c.next_action_at},
        going_on + [(enrollment_id, position, None) for enrollment_id, position in ending],
        where=not_done_yet,
    )


def _templates(instance_ids: set[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    rows = db.session.execute(
        sa.select(CampaignInstance.id, CampaignInstance.template_id).where(CampaignInstance.id.in_(instance_ids))
    )
    return {instance_id: template_id for instance_id, template_id in rows}

"""Moving an enrollment along its sequence. Helpers for the dispatcher and tasks: they flush
nothing and commit nothing; their callers do."""

import uuid
from datetime import datetime

import sqlalchemy as sa

from webapp.engine import scheduler
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, SequenceStep
from webapp.models.enums import EnrollmentStatus


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


def complete_enrollment(enrollment: CampaignEnrollment, now: datetime) -> None:
    enrollment.status, enrollment.status_reason = EnrollmentStatus.COMPLETED, "all steps done"
    enrollment.next_action_at, enrollment.completed_at, enrollment.updated_at = None, now, now


def advance_enrollment(
    enrollment: CampaignEnrollment, done: SequenceStep, now: datetime, steps: ActiveSteps | None = None
) -> None:
    """Record `done` as the enrollment's last step and schedule the next one, or complete it."""
    enrollment.current_step = done.position
    enrollment.updated_at = now
    template_id = db.session.scalar(
        sa.select(CampaignInstance.template_id).where(CampaignInstance.id == enrollment.instance_id)
    )
    following = (steps or ActiveSteps()).after(template_id, done.position)
    if following is None:
        complete_enrollment(enrollment, now)
        return
    enrollment.status_reason = None
    enrollment.next_action_at = scheduler.next_due(now, following)

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey
from webapp.models.enums import TaskStatus


class Task(UUIDPrimaryKey, Timestamps, Base):
    """A LinkedIn or manual step waiting for a person."""

    __tablename__ = "tasks"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    enrollment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_enrollments.id", ondelete="CASCADE"))
    step_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("sequence_steps.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(30))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(20), default=TaskStatus.OPEN)
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step_id"),
        sa.Index("ix_tasks_workspace_status_due", "workspace_id", "status", "due_at"),
    )

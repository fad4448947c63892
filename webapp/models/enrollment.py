import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, UUIDPrimaryKey, utcnow
from webapp.models.contact import Contact
from webapp.models.enums import EnrollmentStatus


class CampaignEnrollment(UUIDPrimaryKey, Base):
    """A contact's journey through one instance. `current_step` counts the steps done."""

    __tablename__ = "campaign_enrollments"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    instance_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_instances.id", ondelete="CASCADE"))
    contact_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default=EnrollmentStatus.ENROLLED)
    status_reason: Mapped[str | None] = mapped_column(sa.String(255))
    current_step: Mapped[int] = mapped_column(default=0)
    next_action_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Why the worker last put off the next step (send window, cap, mailbox...); shown by the preview.
    wait_reason: Mapped[str | None] = mapped_column(sa.String(255))
    # The mailbox every message to this contact comes from: chosen at the first send, then kept.
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="RESTRICT"))

    contact: Mapped[Contact] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        sa.UniqueConstraint("instance_id", "contact_id"),
        # Covers the per-status counts of the performance endpoint and the status filter of lists.
        sa.Index("ix_campaign_enrollments_instance_status", "instance_id", "status"),
        # The worker's due queries, follow-ups first: each walks only its own rows, in order.
        sa.Index(
            "ix_campaign_enrollments_due_follow_ups",
            "next_action_at",
            "id",
            postgresql_where=sa.text("status = 'active' AND current_step > 0"),
            sqlite_where=sa.text("status = 'active' AND current_step > 0"),
        ),
        sa.Index(
            "ix_campaign_enrollments_due_first_steps",
            "next_action_at",
            "id",
            postgresql_where=sa.text("status = 'active' AND current_step = 0"),
            sqlite_where=sa.text("status = 'active' AND current_step = 0"),
        ),
        # The enrollments list's default order, and the "what will go out when" preview.
        sa.Index("ix_campaign_enrollments_instance_enrolled", "instance_id", "enrolled_at", "id"),
        sa.Index("ix_campaign_enrollments_instance_next", "instance_id", "next_action_at", "id"),
    )

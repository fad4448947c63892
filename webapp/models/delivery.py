import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey, utcnow
from webapp.models.enums import DeliveryStatus


class Delivery(UUIDPrimaryKey, Timestamps, Base):
    """The send ledger: one row per (enrollment, step) makes a step go out at most once."""

    __tablename__ = "deliveries"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    enrollment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_enrollments.id", ondelete="CASCADE"))
    step_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("sequence_steps.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(sa.String(20), default=DeliveryStatus.CLAIMED)
    claimed_until: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    sent_at: Mapped[datetime | None]
    # Set for a transient failure: the step is claimed again at this time.
    retry_at: Mapped[datetime | None]
    # The sending address, for per-sender daily caps; the mailbox, when the campaign sends from one.
    sender: Mapped[str | None] = mapped_column(sa.String(320))
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="SET NULL"))
    # What the contact got, for a follow-up in the same thread: the subject, and the References
    # chain (this message's own Message-ID last).
    subject: Mapped[str | None] = mapped_column(sa.Text)
    thread_references: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step_id"),
        sa.Index("ix_deliveries_status_claimed_until", "status", "claimed_until"),
        sa.Index("ix_deliveries_sender_created", "sender", "created_at"),
        sa.Index("ix_deliveries_mailbox_created", "mailbox_id", "created_at"),
    )


class OutboxMessage(UUIDPrimaryKey, Base):
    """A message "sent" by the embedded outbox transport: stored instead of leaving the machine."""

    __tablename__ = "outbox_messages"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    message_id: Mapped[str] = mapped_column(sa.String(255))
    from_email: Mapped[str] = mapped_column(sa.String(320))
    to_email: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str] = mapped_column(sa.Text)
    raw: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_outbox_messages_workspace_created", "workspace_id", "created_at"),)

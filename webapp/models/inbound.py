import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey


class InboundMessage(UUIDPrimaryKey, Timestamps, Base):
    """A message read in a mailbox: a reply, an automatic answer, a bounce, or something else.
    Kept whether or not it matched a send of ours, so nothing read is dropped silently."""

    __tablename__ = "inbound_messages"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    mailbox_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uidvalidity: Mapped[int] = mapped_column(sa.BigInteger)
    uid: Mapped[int] = mapped_column(sa.BigInteger)
    message_id: Mapped[str | None] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(20))  # InboundKind
    from_email: Mapped[str | None] = mapped_column(sa.String(320))
    from_name: Mapped[str | None] = mapped_column(sa.String(255))
    subject: Mapped[str] = mapped_column(sa.Text, default="")
    received_at: Mapped[datetime]
    snippet: Mapped[str] = mapped_column(sa.Text, default="")
    bounce_type: Mapped[str | None] = mapped_column(sa.String(10))
    status_code: Mapped[str | None] = mapped_column(sa.String(20))
    return_date: Mapped[date | None]
    # What it answers, when it matched a send of ours.
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    enrollment_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("campaign_enrollments.id", ondelete="SET NULL")
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("contacts.id", ondelete="SET NULL"))
    lead_status: Mapped[str | None] = mapped_column(sa.String(20))  # LeadStatus, set by a person

    __table_args__ = (
        # Each message of a mailbox folder is read once, whatever the number of workers.
        sa.UniqueConstraint("mailbox_id", "uidvalidity", "uid"),
        # The same message in two mailboxes of the workspace counts once.
        sa.Index(
            "ix_inbound_messages_workspace_message_id",
            "workspace_id",
            "message_id",
            unique=True,
            postgresql_where=sa.text("message_id IS NOT NULL"),
            sqlite_where=sa.text("message_id IS NOT NULL"),
        ),
        sa.Index("ix_inbound_messages_workspace_kind_received", "workspace_id", "kind", "received_at"),
    )

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, UUIDPrimaryKey, utcnow


class CampaignEvent(UUIDPrimaryKey, Base):
    """Something that happened to an enrollment: sent, opened, replied... Raw payload kept."""

    __tablename__ = "campaign_events"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    instance_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_instances.id", ondelete="CASCADE"))
    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("campaign_enrollments.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(sa.String(20), default="email")
    type: Mapped[str] = mapped_column(sa.String(20))
    provider: Mapped[str] = mapped_column(sa.String(30))
    provider_event_id: Mapped[str] = mapped_column(sa.String(255))
    occurred_at: Mapped[datetime]
    meta: Mapped[dict] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "provider", "provider_event_id"),
        # A campaign's events in time order: the CSV export walks it batch by batch (keyset).
        sa.Index("ix_campaign_events_instance_occurred", "instance_id", "occurred_at", "id"),
    )


class EventRollup(Base):
    """Daily event counts per instance and step, kept up to date on ingestion.

    `step_id` is the nil UUID for events without a step. `type` is an event type for raw
    counts, `unique_step:<type>` for enrollments counted once per step, and `unique:<type>`
    (nil step) for enrollments counted once per instance.
    """

    __tablename__ = "event_rollups"

    instance_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("campaign_instances.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    n: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class EventFirst(Base):
    """First occurrence of a countable event per enrollment and step (nil step = any step)."""

    __tablename__ = "event_firsts"

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("campaign_enrollments.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(20), primary_key=True)

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey
from webapp.models.enums import InstanceStatus
from webapp.models.template import CampaignTemplate


class CampaignInstance(UUIDPrimaryKey, Timestamps, Base):
    """A launched (or launchable) copy of a template: a campaign."""

    __tablename__ = "campaign_instances"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    template_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_templates.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(20), default=InstanceStatus.DRAFT)
    settings: Mapped[dict] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # A draft launches by itself at `start_at` (the worker does it); `start_error` says why it could not.
    start_at: Mapped[datetime | None]
    start_error: Mapped[str | None] = mapped_column(sa.String(500))

    template: Mapped[CampaignTemplate] = relationship(lazy="select")

    __table_args__ = (
        sa.Index("ix_campaign_instances_workspace_status", "workspace_id", "status"),
        sa.Index(
            "ix_campaign_instances_start_at",
            "start_at",
            postgresql_where=sa.text("start_at IS NOT NULL"),
            sqlite_where=sa.text("start_at IS NOT NULL"),
        ),
    )

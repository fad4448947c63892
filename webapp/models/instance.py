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
    # The steps and default settings the campaign runs on: its template while a draft, its own
    # copy of it once launched (so later template edits do not move it).
    template_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_templates.id", ondelete="RESTRICT"))
    # The template the campaign was made from.
    source_template_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("campaign_templates.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(20), default=InstanceStatus.DRAFT)
    settings: Mapped[dict] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # A draft launches by itself at `start_at` (the worker does it); `start_error` says why it could not.
    start_at: Mapped[datetime | None]
    start_error: Mapped[str | None] = mapped_column(sa.String(500))

    template: Mapped[CampaignTemplate] = relationship(lazy="select", foreign_keys=[template_id])
    source_template: Mapped[CampaignTemplate | None] = relationship(lazy="select", foreign_keys=[source_template_id])

    __table_args__ = (
        sa.Index("ix_campaign_instances_workspace_status", "workspace_id", "status"),
        sa.Index(
            "ix_campaign_instances_start_at",
            "start_at",
            postgresql_where=sa.text("start_at IS NOT NULL"),
            sqlite_where=sa.text("start_at IS NOT NULL"),
        ),
    )

    @property
    def made_from_id(self) -> uuid.UUID:
        """The template the campaign was made from (its own copy's id only if that template is gone)."""
        return self.source_template_id or self.template_id

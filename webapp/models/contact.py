import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey
from webapp.models.enums import ContactStatus


class Contact(UUIDPrimaryKey, Timestamps, Base):
    """A person to reach. `status` is the workspace-wide suppression state."""

    __tablename__ = "contacts"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    # Always stored lower-cased (the check below holds it), so uniqueness is case-insensitive everywhere.
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str | None] = mapped_column(sa.String(255))
    last_name: Mapped[str | None] = mapped_column(sa.String(255))
    company: Mapped[str | None] = mapped_column(sa.String(255))
    title: Mapped[str | None] = mapped_column(sa.String(255))
    linkedin_url: Mapped[str | None] = mapped_column(sa.String(500))
    timezone: Mapped[str | None] = mapped_column(sa.String(64))
    custom_fields: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default=ContactStatus.SUBSCRIBED)
    status_reason: Mapped[str | None] = mapped_column(sa.String(255))

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "email"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.Index("ix_contacts_workspace_status", "workspace_id", "status"),
    )

    @property
    def is_suppressed(self) -> bool:
        return self.status != ContactStatus.SUBSCRIBED

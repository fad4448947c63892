import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, JSONType, Timestamps, UUIDPrimaryKey
from webapp.models.enums import PathType


class CampaignTemplate(UUIDPrimaryKey, Timestamps, Base):
    """A reusable sequence: ordered steps plus default settings."""

    __tablename__ = "campaign_templates"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(20))
    path_type: Mapped[str] = mapped_column(sa.String(20), default=PathType.STRUCTURED)
    description: Mapped[str | None] = mapped_column(sa.Text)
    settings: Mapped[dict] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    # A campaign's own copy, taken at launch: never listed or shown as a template.
    campaign_copy: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    steps: Mapped[list["SequenceStep"]] = relationship(
        order_by="SequenceStep.position", cascade="all, delete-orphan", lazy="raise_on_sql", passive_deletes=True
    )


def in_thread(step) -> bool:
    """Whether an email step (anything with `thread` and `subject`) goes in the thread of the
    email before it: when it says so, and by default when its subject is empty."""
    return step.thread if step.thread is not None else not (step.subject or "").strip()


class SequenceStep(UUIDPrimaryKey, Timestamps, Base):
    """One step of a template. `position` is 1-based and dense over the template's steps."""

    __tablename__ = "sequence_steps"

    template_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("campaign_templates.id", ondelete="CASCADE"))
    position: Mapped[int]
    channel: Mapped[str] = mapped_column(sa.String(20))
    action: Mapped[str] = mapped_column(sa.String(30))
    delay_days: Mapped[int] = mapped_column(default=0)
    delay_hours: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str | None] = mapped_column(sa.Text)
    body: Mapped[str | None] = mapped_column(sa.Text)
    variants: Mapped[list | None] = mapped_column(JSONType)
    # An email step in the thread of the email step before it ("Re: ..."): None means so when the
    # subject is empty.
    thread: Mapped[bool | None]
    is_active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (sa.Index("ix_sequence_steps_template_position", "template_id", "position"),)

    @property
    def in_thread(self) -> bool:
        return in_thread(self)

    @property
    def message(self) -> str | None:
        """LinkedIn steps keep their message in `body`."""
        return self.body if self.channel == "linkedin" else None

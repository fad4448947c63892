import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, JSONType, Timestamps, UUIDPrimaryKey


class ContactImport(UUIDPrimaryKey, Timestamps, Base):
    """An uploaded CSV file and its progress. The worker processes large files in chunks."""

    __tablename__ = "contact_imports"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    # Enroll into this campaign; None imports contacts only (or suppressions, by `kind`).
    instance_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("campaign_instances.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(20), default="enroll")
    filename: Mapped[str] = mapped_column(sa.String(255))
    encoding: Mapped[str] = mapped_column(sa.String(30), default="utf-8-sig")
    delimiter: Mapped[str] = mapped_column(sa.String(1), default=",")
    has_header: Mapped[bool] = mapped_column(default=True)
    # Also enroll contacts live in another campaign (the import's option; off by default).
    allow_other_campaigns: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Column index (as a string) -> field: email, first_name, ..., custom:<name>.
    mapping: Mapped[dict] = mapped_column(default=dict)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    error: Mapped[str | None] = mapped_column(sa.Text)
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    enrolled: Mapped[int] = mapped_column(default=0)
    already_enrolled: Mapped[int] = mapped_column(default=0)
    suppressed: Mapped[int] = mapped_column(default=0)
    # Skipped: live in another campaign (unless allow_other_campaigns).
    in_other_campaign: Mapped[int] = mapped_column(default=0, server_default="0")
    contacts_created: Mapped[int] = mapped_column(default=0)
    invalid_count: Mapped[int] = mapped_column(default=0)
    # [{"row": n, "reason": "..."}], capped; the count above is exact.
    invalid_rows: Mapped[list] = mapped_column(JSONType, default=list)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_contact_imports_status_created", "status", "created_at"),)

    @property
    def progress(self) -> int:
        """Percent of rows processed."""
        return (
            100 if self.status == "done" else int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0
        )

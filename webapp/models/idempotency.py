import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps


class IdempotencyKey(Timestamps, Base):
    """A replayable response for an `Idempotency-Key` header, kept 24 hours."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[dict | None]

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "key"),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey
from webapp.models.enums import MailboxState


class Mailbox(UUIDPrimaryKey, Timestamps, Base):
    """One of the team's own email accounts: campaigns send from it (SMTP) and hear replies in it
    (IMAP). Passwords are stored encrypted (webapp/crypto.py) and never leave the services."""

    __tablename__ = "mailboxes"

    workspace_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    from_name: Mapped[str | None] = mapped_column(sa.String(100))
    from_email: Mapped[str] = mapped_column(sa.String(320))

    smtp_host: Mapped[str] = mapped_column(sa.String(255))
    smtp_port: Mapped[int]
    smtp_security: Mapped[str] = mapped_column(sa.String(10))  # none | starttls | ssl
    smtp_username: Mapped[str | None] = mapped_column(sa.String(320))
    smtp_password_encrypted: Mapped[str | None] = mapped_column(sa.Text)

    imap_host: Mapped[str | None] = mapped_column(sa.String(255))  # None: replies are not read here
    imap_port: Mapped[int | None]
    imap_security: Mapped[str | None] = mapped_column(sa.String(10))
    imap_username: Mapped[str | None] = mapped_column(sa.String(320))
    imap_password_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    imap_folder: Mapped[str] = mapped_column(sa.String(255), default="INBOX")

    daily_cap: Mapped[int | None]
    min_gap_seconds: Mapped[int | None]
    # Ramp-up: `ramp_start` messages on `ramp_started_on`, `ramp_increase` more each day after, up to
    # the daily cap.
    ramp_start: Mapped[int | None]
    ramp_increase: Mapped[int | None]
    ramp_started_on: Mapped[date | None]
    signature: Mapped[str | None] = mapped_column(sa.Text)

    state: Mapped[str] = mapped_column(sa.String(10), default=MailboxState.ACTIVE)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_error_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    # After repeated temporary failures of its server the worker rests it until then.
    send_paused_until: Mapped[datetime | None]

    # Reading the inbox: the folder's UIDVALIDITY and the last UID read, and a lease so that one
    # worker reads a mailbox at a time.
    imap_uidvalidity: Mapped[int | None] = mapped_column(sa.BigInteger)
    imap_last_uid: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    inbox_read_at: Mapped[datetime | None]
    inbox_claimed_until: Mapped[datetime | None]
    # The last read's failure (cleared by a read that works); sending does not depend on it.
    inbox_error: Mapped[str | None] = mapped_column(sa.Text)
    inbox_error_at: Mapped[datetime | None]

    __table_args__ = (sa.UniqueConstraint("workspace_id", "from_email"),)

    @property
    def has_smtp_password(self) -> bool:
        return bool(self.smtp_password_encrypted)

    @property
    def has_imap_password(self) -> bool:
        return bool(self.imap_password_encrypted)

    @property
    def reads_replies(self) -> bool:
        return bool(self.imap_host)

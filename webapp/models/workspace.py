import base64
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, Timestamps, UUIDPrimaryKey


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Workspace(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(sa.String(255))
    # Sender defaults: send_window, timezone, daily_cap, min_gap_seconds, tracking domain.
    settings: Mapped[dict] = mapped_column(default=dict)
    webhook_secret: Mapped[str] = mapped_column(sa.String(100), default=new_webhook_secret)
    # Credentials our provider webhooks verify with: {"sendgrid": {"public_key"}, "mailgun":
    # {"signing_key"}, "postmark": {"username", "password"}}. Never serialized by the API.
    provider_settings: Mapped[dict] = mapped_column(default=dict)

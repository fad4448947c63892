"""Mailboxes: the team's own email accounts. Passwords are write-only: given on create or update,
never returned (`has_password` says whether one is stored)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from webapp.engine.mailer import HeaderInjection, check_header_value
from webapp.schemas.common import Email, Input, Output, Query, UUIDStr, int_range

Security = Literal["none", "starttls", "ssl"]
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=HOST_PATTERN)]
Secret = Annotated[str, Field(min_length=1, max_length=1000)]


def _header_safe(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        check_header_value(value, "the sender name")
    except HeaderInjection as exc:
        raise ValueError(str(exc)) from None
    return value.strip() or None


# No control character and no "=?" (what mailer.check_header_value refuses), without a lookahead.
_SAFE = r"[^=\x00-\x1f\x7f-\x9f\u2028\u2029]"
HEADER_SAFE_PATTERN = rf"^(?:{_SAFE}|=+{_SAFE.replace('[^=', '[^=?')})*=*$"
SenderName = Annotated[
    str, Field(max_length=100, json_schema_extra={"pattern": HEADER_SAFE_PATTERN}), AfterValidator(_header_safe)
]
MailboxName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(lambda v: v.strip() or v)]


class SmtpIn(Input):
    host: Host
    port: int_range(1, 65535) = 587
    security: Security = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: Secret | None = Field(default=None, description="Write-only.")


class ImapIn(Input):
    host: Host
    port: int_range(1, 65535) = 993
    security: Security = "ssl"
    username: str | None = Field(default=None, max_length=320)
    password: Secret | None = Field(default=None, description="Write-only.")
    folder: str = Field(default="INBOX", min_length=1, max_length=255)


class RampIn(Input):
    start: int_range(1, 10_000) = Field(description="Messages allowed on the first day.")
    increase: int_range(1, 10_000) = Field(
        description="How many more each following day, up to the daily cap (when the mailbox has one)."
    )


class MailboxIn(Input):
    name: MailboxName
    from_name: SenderName | None = None
    from_email: Email
    smtp: SmtpIn
    imap: ImapIn | None = Field(default=None, description="Where replies arrive; null: replies are not read.")
    daily_cap: int_range(1, 100_000) | None = None
    min_gap_seconds: int_range(0, 86_400) | None = None
    ramp: RampIn | None = None
    signature: str | None = Field(default=None, max_length=5000, description="Markdown added under each email.")


class SmtpUpdate(Input):
    host: Host | None = None
    port: int_range(1, 65535) | None = None
    security: Security | None = None
    username: str | None = Field(default=None, max_length=320)
    password: Secret | None = Field(default=None, description="Write-only.")


class ImapUpdate(SmtpUpdate):
    folder: str | None = Field(default=None, min_length=1, max_length=255)


class MailboxUpdate(Input):
    """Only the fields given change; `imap: null` stops reading replies, `ramp: null` ends the ramp-up."""

    name: MailboxName | None = None
    from_name: SenderName | None = None
    from_email: Email | None = None
    smtp: SmtpUpdate | None = None
    imap: ImapUpdate | None = None
    daily_cap: int_range(1, 100_000) | None = None
    min_gap_seconds: int_range(0, 86_400) | None = None
    ramp: RampIn | None = None
    signature: str | None = Field(default=None, max_length=5000)
    state: Literal["active", "paused"] | None = Field(
        default=None, description="Pause sending from it, or make it active again (also after a failure)."
    )


class MailboxQuery(Query):
    state: Literal["active", "paused", "failing"] | None = None


class ServerOut(Output):
    host: str
    port: int
    security: str
    username: str | None
    has_password: bool


class ImapOut(ServerOut):
    folder: str
    read_at: datetime | None = Field(description="When the inbox was last read.")
    error: str | None = Field(description="Why the last read failed; null when it worked.")
    error_at: datetime | None


class RampOut(Output):
    start: int
    increase: int
    started_on: str | None


class MailboxOut(Output):
    id: UUIDStr
    name: str
    from_name: str | None
    from_email: str
    smtp: ServerOut
    imap: ImapOut | None
    daily_cap: int | None
    min_gap_seconds: int | None
    ramp: RampOut | None
    signature: str | None
    state: str
    last_error: str | None
    last_error_at: datetime | None
    last_checked_at: datetime | None
    resting_until: datetime | None = Field(
        description="Its server kept failing: nothing is sent from it until then (the worker tries again)."
    )
    sent_today: int = Field(description="Messages claimed or sent today (the workspace's day).")
    cap_today: int | None = Field(description="Today's cap, ramp-up included; null: no cap.")
    created_at: datetime
    updated_at: datetime


class MailboxCheckIn(Input):
    servers: list[Literal["smtp", "imap"]] = Field(
        default=["smtp", "imap"], min_length=1, max_length=2, description="Which logins to try; `{}`: both."
    )


class CheckResult(Output):
    ok: bool
    error: str | None


class MailboxCheckOut(Output):
    smtp: CheckResult | None = Field(description="null when not asked for.")
    imap: CheckResult | None = Field(description="null when the mailbox reads no replies.")

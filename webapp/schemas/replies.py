"""The Inbox: replies and other messages read in the mailboxes."""

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from webapp.schemas.common import Input, Output, Query, UUIDStr

LEAD_STATUSES = ("interested", "not_interested", "meeting_booked", "wrong_person")


class ReplyQuery(Query):
    kind: Literal["reply", "auto_reply", "bounce", "other"] | None = Field(
        default=None, description="Default: replies and auto-replies."
    )
    lead_status: Literal["interested", "not_interested", "meeting_booked", "wrong_person", "none"] | None = Field(
        default=None, description="`none`: replies no one has given a status yet."
    )
    instance_id: UUIDStr | None = None
    matched: bool | None = Field(default=None, description="false: messages that answer none of our sends.")


class ReplyUpdate(Input):
    lead_status: Literal["interested", "not_interested", "meeting_booked", "wrong_person"] | None = Field(
        description="null clears it."
    )


class ReplyOut(Output):
    id: UUIDStr
    kind: str
    received_at: datetime
    from_email: str | None
    from_name: str | None
    subject: str
    snippet: str
    lead_status: str | None
    bounce_type: str | None
    return_date: date | None = Field(description="For an out-of-office answer: the day they are back.")
    mailbox_id: UUIDStr
    mailbox_name: str
    contact_id: UUIDStr | None = Field(description="null: it answers none of our sends.")
    contact_email: str | None
    enrollment_id: UUIDStr | None
    instance_id: UUIDStr | None
    instance_name: str | None
    step_number: int | None

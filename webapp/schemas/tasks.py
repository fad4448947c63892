from datetime import datetime
from typing import Literal

from pydantic import Field

from webapp.schemas.common import Input, Output, Query, UUIDStr


class TaskQuery(Query):
    status: Literal["open", "done", "skipped", "all"] = "open"
    due: Literal["overdue", "today", "upcoming"] | None = None
    type: Literal["connection_request", "message", "profile_visit", "inmail", "task"] | None = None
    instance_id: UUIDStr | None = None


class TaskFinishIn(Input):
    note: str | None = Field(default=None, max_length=1000)


class TaskContact(Output):
    id: UUIDStr
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    linkedin_url: str | None


class TaskOut(Output):
    id: UUIDStr
    type: str
    status: str
    due_at: datetime
    completed_at: datetime | None
    enrollment_id: UUIDStr
    instance_id: UUIDStr
    instance_name: str
    step_id: UUIDStr
    step_number: int
    message: str | None
    contact: TaskContact


class DeliveryQuery(Query):
    status: Literal["claimed", "sending", "sent", "failed", "unknown", "retry"] | None = "unknown"


class DeliveryOut(Output):
    id: UUIDStr
    enrollment_id: UUIDStr
    step_id: UUIDStr
    status: str
    message_id: str | None
    attempts: int
    error: str | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ResolveDeliveryIn(Input):
    sent: bool = Field(description="True: the message did go out (the enrollment moves on). False: send it again.")


class ResolveDeliveriesOut(Output):
    resolved: int = Field(description="How many unknown deliveries were resolved.")


class ScheduleQuery(Query):
    limit: int = Field(50, ge=1, le=500)


class ScheduledSend(Output):
    enrollment_id: UUIDStr
    contact_email: str
    step_number: int
    channel: str
    due_at: datetime | None
    reason: str | None


class ScheduleList(Output):
    items: list[ScheduledSend]

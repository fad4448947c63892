from datetime import date

from pydantic import BaseModel, Field

from webapp.schemas.common import UUIDStr


class Totals(BaseModel):
    enrolled: int
    active: int
    completed: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    replied: int
    bounced: int
    unsubscribed: int


class Rates(BaseModel):
    open_rate: float
    click_rate: float
    reply_rate: float
    bounce_rate: float
    unsubscribe_rate: float


class StepCounts(BaseModel):
    sent: int
    delivered: int
    opened: int
    clicked: int
    replied: int
    bounced: int
    unsubscribed: int


class StepPerformance(BaseModel):
    step_id: UUIDStr
    step_number: int
    channel: str
    action_type: str
    subject: str | None
    is_active: bool
    totals: StepCounts
    rates: Rates


class DailyPoint(BaseModel):
    date: date
    sent: int
    opened: int
    clicked: int
    replied: int
    bounced: int


class PerformanceOut(BaseModel):
    instance_id: UUIDStr
    status: str
    statuses: dict[str, int]
    totals: Totals
    rates: Rates
    steps: list[StepPerformance]
    daily: list[DailyPoint]
    leads: dict[str, int] = Field(
        description="Contacts by the lead status of their reply (interested, not_interested, meeting_booked, "
        "wrong_person), set in the Inbox."
    )

from datetime import date

from pydantic import BaseModel, Field

from webapp.schemas.common import UUIDStr

# What each per-contact rate is out of: the words the API descriptions, the tables and the chart
# tooltips all use. A step's rates are all out of the contacts who received that step.
OF_EMAILED = "of contacts emailed"
OF_CONTACTED = "of contacts contacted"
RATE_BASES = {
    "open_rate": OF_EMAILED,
    "click_rate": OF_EMAILED,
    "reply_rate": OF_CONTACTED,
    "bounce_rate": OF_EMAILED,
    "unsubscribe_rate": OF_EMAILED,
}


def of_step(step_number: int) -> str:
    return f"of contacts who received step {step_number}"


class Totals(BaseModel):
    """Message and event counts (opened and clicked: contacts); the per-contact numbers are in `contacts`."""

    enrolled: int
    active: int
    completed: int
    sent: int = Field(description="Messages sent.")
    delivered: int = Field(description="Delivery events.")
    opened: int = Field(description="Contacts who opened at least one message.")
    clicked: int = Field(description="Contacts who clicked at least one link.")
    replied: int = Field(description="Reply events.")
    bounced: int = Field(description="Bounce events.")
    unsubscribed: int = Field(description="Unsubscribe and complaint events.")


class Contacts(BaseModel):
    """Contacts counted once each: the numerators and denominators of `rates`."""

    contacted: int = Field(description="Contacts with at least one step done, on any channel.")
    emailed: int = Field(description="Contacts sent at least one email.")
    opened: int = Field(description="Contacts who opened at least one email.")
    clicked: int = Field(description="Contacts who clicked at least one link.")
    replied: int = Field(description="Contacts who replied.")
    bounced: int = Field(description="Contacts with at least one bounce.")
    unsubscribed: int = Field(description="Contacts who unsubscribed or complained.")


def _rate_field(numerator: str, base: str):
    return Field(description=f"{numerator}, {base}, as a fraction (0.25 is 25%).")


class Rates(BaseModel):
    """Per contact: each rate is contacts who did it, out of the contacts it could happen to."""

    open_rate: float = _rate_field("Contacts who opened", OF_EMAILED)
    click_rate: float = _rate_field("Contacts who clicked", OF_EMAILED)
    reply_rate: float = _rate_field("Contacts who replied", OF_CONTACTED)
    bounce_rate: float = _rate_field("Contacts who bounced", OF_EMAILED)
    unsubscribe_rate: float = _rate_field("Contacts who unsubscribed or complained", OF_EMAILED)


_OF_THIS_STEP = "of contacts who received this step"


class StepRates(BaseModel):
    """Per contact, all out of the contacts who received this step."""

    open_rate: float = _rate_field("Contacts who opened this step", _OF_THIS_STEP)
    click_rate: float = _rate_field("Contacts who clicked in this step", _OF_THIS_STEP)
    reply_rate: float = _rate_field("Contacts who replied to this step", _OF_THIS_STEP)
    bounce_rate: float = _rate_field("Contacts whose message of this step bounced", _OF_THIS_STEP)
    unsubscribe_rate: float = _rate_field("Contacts who unsubscribed from this step", _OF_THIS_STEP)


class StepCounts(BaseModel):
    """Message and event counts of this step (opened and clicked: contacts)."""

    sent: int
    delivered: int
    opened: int
    clicked: int
    replied: int
    bounced: int
    unsubscribed: int


class StepContacts(BaseModel):
    """Contacts counted once each for this step: the numerators and denominator of its `rates`."""

    received: int = Field(description="Contacts who received this step (email sent or task done).")
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
    contacts: StepContacts
    rates: StepRates


class DailyPoint(BaseModel):
    """One UTC day: messages sent, and contacts who opened, clicked, replied or bounced for the first time."""

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
    contacts: Contacts
    rates: Rates
    steps: list[StepPerformance]
    daily: list[DailyPoint]
    leads: dict[str, int] = Field(
        description="Contacts by the lead status of their reply (interested, not_interested, meeting_booked, "
        "wrong_person), set in the Inbox."
    )

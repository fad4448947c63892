from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from webapp.schemas.common import Input, Name, Output, Query, UUIDStr, int_range
from webapp.schemas.settings import CampaignSettings

TemplateTypeField = Literal["email", "linkedin", "multi_channel"]
PathTypeField = Literal["structured", "dynamic"]
LinkedInAction = Literal["connection_request", "message", "profile_visit", "inmail"]

MAX_SUBJECT = 998
MAX_BODY = 64 * 1024
ONE_LINE = {"pattern": r"^[^\r\n\x00]*$"}  # documents _one_line below


class TemplateIn(Input):
    name: Name
    type: TemplateTypeField = "email"
    path_type: PathTypeField = "structured"
    description: str | None = Field(default=None, max_length=5000)
    settings: CampaignSettings | None = None
    is_active: bool = True


class TemplateUpdate(Input):
    name: Name | None = None
    type: TemplateTypeField | None = None
    path_type: PathTypeField | None = None
    description: str | None = Field(default=None, max_length=5000)
    settings: CampaignSettings | None = None
    is_active: bool | None = None


class TemplateQuery(Query):
    search: str | None = Field(default=None, max_length=255)
    is_active: bool | None = None


class _StepCommon(Input):
    step_number: int_range(1, 1000) | None = Field(default=None, description="1-based position; omitted = append")
    delay_days: int_range(0, 365) = 0
    delay_hours: int_range(0, 23) = 0
    is_active: bool = True


THREAD = Field(
    default=None,
    description="Send in the thread of the previous email (Re: its subject, same mailbox). Default: when the "
    "subject is empty.",
)


class EmailStepIn(_StepCommon):
    subject: str = Field(
        default="", max_length=MAX_SUBJECT, json_schema_extra=ONE_LINE, description="Empty: a reply in the thread."
    )
    body: str = Field(min_length=1, max_length=MAX_BODY)
    thread: bool | None = THREAD

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\x00"):
            raise ValueError("subject must be a single line")
        return value


class EmailStepUpdate(Input):
    step_number: int_range(1, 1000) | None = None
    delay_days: int_range(0, 365) | None = None
    delay_hours: int_range(0, 23) | None = None
    subject: str | None = Field(default=None, max_length=MAX_SUBJECT, json_schema_extra=ONE_LINE)
    # Omit to keep the body; an email step always has one, so null is not accepted.
    body: str = Field(default=None, min_length=1, max_length=MAX_BODY)
    is_active: bool | None = None
    thread: bool | None = THREAD

    _one_line = field_validator("subject")(EmailStepIn._one_line.__func__)


class LinkedInStepIn(_StepCommon):
    action_type: LinkedInAction
    message: str | None = Field(default=None, max_length=8000)


class LinkedInStepUpdate(Input):
    step_number: int_range(1, 1000) | None = None
    delay_days: int_range(0, 365) | None = None
    delay_hours: int_range(0, 23) | None = None
    action_type: LinkedInAction | None = None
    message: str | None = Field(default=None, max_length=8000)
    is_active: bool | None = None


class StepFields(Output):
    """A step as every listing shows it (a template's, or a campaign's own)."""

    id: UUIDStr
    step_number: int = Field(validation_alias="position")
    channel: str
    action_type: str = Field(validation_alias="action")
    delay_days: int
    delay_hours: int
    subject: str | None
    body: str | None
    message: str | None
    thread: bool = Field(validation_alias="in_thread", description="Sent in the thread of the previous email.")
    is_active: bool
    created_at: datetime
    updated_at: datetime


class StepOut(StepFields):
    template_id: UUIDStr


class TemplateOut(Output):
    id: UUIDStr
    name: str
    type: str
    path_type: str
    description: str | None
    settings: dict
    is_active: bool
    created_at: datetime
    updated_at: datetime


class TemplateDetail(TemplateOut):
    steps: list[StepOut]

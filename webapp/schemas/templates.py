from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from webapp.schemas.common import Input, Name, Output, Query, UUIDStr
from webapp.schemas.settings import CampaignSettings

TemplateTypeField = Literal["email", "linkedin", "multi_channel"]
PathTypeField = Literal["structured", "dynamic"]
LinkedInAction = Literal["connection_request", "message", "profile_visit", "inmail"]

MAX_SUBJECT = 998
MAX_BODY = 64 * 1024


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
    step_number: int | None = Field(default=None, ge=1, le=1000, description="1-based position; omitted = append")
    delay_days: int = Field(default=0, ge=0, le=365)
    delay_hours: int = Field(default=0, ge=0, le=23)
    is_active: bool = True


class EmailStepIn(_StepCommon):
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT)
    body: str = Field(min_length=1, max_length=MAX_BODY)

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\x00"):
            raise ValueError("subject must be a single line")
        return value


class EmailStepUpdate(Input):
    step_number: int | None = Field(default=None, ge=1, le=1000)
    delay_days: int | None = Field(default=None, ge=0, le=365)
    delay_hours: int | None = Field(default=None, ge=0, le=23)
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT)
    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY)
    is_active: bool | None = None

    _one_line = field_validator("subject")(EmailStepIn._one_line.__func__)


class LinkedInStepIn(_StepCommon):
    action_type: LinkedInAction
    message: str | None = Field(default=None, max_length=8000)


class LinkedInStepUpdate(Input):
    step_number: int | None = Field(default=None, ge=1, le=1000)
    delay_days: int | None = Field(default=None, ge=0, le=365)
    delay_hours: int | None = Field(default=None, ge=0, le=23)
    action_type: LinkedInAction | None = None
    message: str | None = Field(default=None, max_length=8000)
    is_active: bool | None = None


class StepOut(Output):
    id: UUIDStr
    template_id: UUIDStr
    step_number: int = Field(validation_alias="position")
    channel: str
    action_type: str = Field(validation_alias="action")
    delay_days: int
    delay_hours: int
    subject: str | None
    body: str | None
    message: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


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

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webapp.schemas.common import Email, Input, JsonObject, Output, Query, TimeZone, UUIDStr

ContactStatusField = Literal["subscribed", "unsubscribed", "bounced", "complained"]


# An http(s) URL without spaces or control characters; "" clears the field. The same pattern is
# in the OpenAPI document, so Python's and ECMAScript's \s differ only outside what it excludes.
LINKEDIN_PATTERN = r"^(https?://[^\s\x00-\x1f\x7f-\x9f\ufeff]*)?$"
LinkedInUrl = Annotated[str, Field(max_length=500, json_schema_extra={"pattern": LINKEDIN_PATTERN})]


def _linkedin(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(LINKEDIN_PATTERN, value):
        raise ValueError("must be an http(s) URL")
    return value


class ContactData(Input):
    """A contact as given by a person, a script or a CSV row."""

    email: Email
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=255)
    linkedin_url: LinkedInUrl | None = None
    timezone: TimeZone | None = None
    custom_fields: JsonObject | None = None

    _url = field_validator("linkedin_url")(classmethod(lambda cls, v: _linkedin(v)))


class ContactUpdate(Input):
    email: Email | None = None
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=255)
    linkedin_url: LinkedInUrl | None = None
    timezone: TimeZone | None = None
    custom_fields: JsonObject | None = None

    _url = field_validator("linkedin_url")(classmethod(lambda cls, v: _linkedin(v)))


class SuppressionIn(Input):
    status: ContactStatusField
    reason: str | None = Field(default=None, max_length=255)


class ContactFilter(BaseModel):
    """The contacts list's filters, which the CSV export honours too."""

    model_config = ConfigDict(extra="ignore")

    search: str | None = Field(default=None, max_length=255)
    status: ContactStatusField | None = None


class ContactQuery(Query, ContactFilter):
    pass


class ContactOut(Output):
    id: UUIDStr
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    linkedin_url: str | None
    timezone: str | None
    custom_fields: dict
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime


class SuppressionOut(Output):
    id: UUIDStr
    email: str
    status: str
    status_reason: str | None
    suppressed: bool = Field(validation_alias="is_suppressed")

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from webapp.schemas.common import Email, Input, JsonObject, Output, Query, TimeZone, UUIDStr

ContactStatusField = Literal["subscribed", "unsubscribed", "bounced", "complained"]


def _linkedin(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValueError("must be an http(s) URL")
    return value


class ContactData(Input):
    """A contact as given by a person, a script or a CSV row."""

    email: Email
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=255)
    linkedin_url: str | None = Field(default=None, max_length=500)
    timezone: TimeZone | None = None
    custom_fields: JsonObject | None = None

    _url = field_validator("linkedin_url")(classmethod(lambda cls, v: _linkedin(v)))


class ContactUpdate(Input):
    email: Email | None = None
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=255)
    linkedin_url: str | None = Field(default=None, max_length=500)
    timezone: TimeZone | None = None
    custom_fields: JsonObject | None = None

    _url = field_validator("linkedin_url")(classmethod(lambda cls, v: _linkedin(v)))


class SuppressionIn(Input):
    status: ContactStatusField
    reason: str | None = Field(default=None, max_length=255)


class ContactQuery(Query):
    search: str | None = Field(default=None, max_length=255)
    status: ContactStatusField | None = None


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

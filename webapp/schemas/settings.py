"""Campaign settings: template defaults, overridden per instance (ARCHITECTURE.md section 4)."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from webapp.engine.holidays import supported_codes
from webapp.schemas.common import TimeZone, UUIDStr, int_range

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class SendWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    days: list[int_range(1, 7)] = Field(
        default=[1, 2, 3, 4, 5], min_length=1, max_length=7, description="ISO weekdays, 1 = Monday"
    )
    start: HHMM = Field(default="09:00", examples=["09:00"])
    end: HHMM = Field(default="17:00", examples=["17:00"], description="Must differ from start.")
    timezone: TimeZone | None = None

    @model_validator(mode="after")
    def _distinct_bounds(self):
        if self.start == self.end:
            raise ValueError("send window start and end must differ")
        self.days = sorted(set(self.days))
        return self


COUNTRY_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"


def _country(value: str | None) -> str | None:
    if value is None:
        return value
    if not re.fullmatch(COUNTRY_PATTERN, value):
        raise ValueError("must be an ISO country code such as US or DE-BY")
    if value not in supported_codes():
        raise ValueError(f"there is no holiday calendar for {value}")
    return value


HolidayCountry = Annotated[
    str,
    AfterValidator(_country),
    WithJsonSchema({"type": "string", "enum": list(supported_codes()), "description": "A holiday calendar."}),
]


class CampaignSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    send_window: SendWindow | None = None
    timezone: TimeZone | None = None
    daily_cap: int_range(1, 100_000) | None = None
    min_gap_seconds: int_range(0, 86_400) | None = None
    skip_holidays: HolidayCountry | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    stop_on: list[Literal["reply", "bounce", "unsubscribe"]] | None = Field(default=None, max_length=3)
    from_name: str | None = Field(default=None, max_length=100)
    from_email: str | None = Field(default=None, max_length=320)
    task_auto_skip_hours: int_range(1, 24 * 90) | None = None
    mailbox_ids: list[UUIDStr] | None = Field(
        default=None,
        max_length=50,
        description="Send from these mailboxes (each contact keeps the one it got first); none: the default sender.",
    )


def settings_dict(settings: CampaignSettings | None) -> dict:
    return settings.model_dump(mode="json", exclude_unset=True) if settings else {}

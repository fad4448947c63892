"""Campaign settings: template defaults, overridden per instance (ARCHITECTURE.md section 4)."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from webapp.schemas.common import TimeZone

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]


class SendWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default=[1, 2, 3, 4, 5], min_length=1, max_length=7, description="ISO weekdays, 1 = Monday"
    )
    start: HHMM = "09:00"
    end: HHMM = "17:00"
    timezone: TimeZone | None = None

    @model_validator(mode="after")
    def _distinct_bounds(self):
        if self.start == self.end:
            raise ValueError("send window start and end must differ")
        self.days = sorted(set(self.days))
        return self


def _country(value: str | None) -> str | None:
    if value is None:
        return value
    if not re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", value):
        raise ValueError("must be an ISO country code such as US or DE-BY")
    return value


class CampaignSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_window: SendWindow | None = None
    timezone: TimeZone | None = None
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    min_gap_seconds: int | None = Field(default=None, ge=0, le=86_400)
    skip_holidays: Annotated[str | None, AfterValidator(_country)] = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    stop_on: list[Literal["reply", "bounce", "unsubscribe"]] | None = Field(default=None, max_length=3)
    from_name: str | None = Field(default=None, max_length=100)
    from_email: str | None = Field(default=None, max_length=320)
    task_auto_skip_hours: int | None = Field(default=None, ge=1, le=24 * 90)


def settings_dict(settings: CampaignSettings | None) -> dict:
    return settings.model_dump(mode="json", exclude_unset=True) if settings else {}

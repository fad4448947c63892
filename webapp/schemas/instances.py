from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from webapp.schemas.common import AwareDatetime, Input, Name, Output, Query, UUIDStr
from webapp.schemas.settings import CampaignSettings


class InstanceIn(Input):
    template_id: UUIDStr
    name: Name
    settings: CampaignSettings | None = None


class InstanceStatusIn(Input):
    status: Literal["active", "paused", "completed"]
    confirm: bool = Field(
        default=False,
        description="Launch despite the launch check's warnings (GET /instances/:id/readiness). A launch with "
        "warnings and without it is a 422; blocking problems are a 409 either way.",
    )


class InstanceUpdateIn(Input):
    """Only the fields given change. Each `settings` key given replaces the campaign's own value;
    a key set to null goes back to the template's value, and `settings: null` drops them all.
    A change of timing (window, zone, cap, gap, holidays, mailboxes) re-plans the waiting
    enrollments at once. `status` launches, pauses, resumes or completes; `start_at` makes a
    draft launch by itself at that time (null cancels it)."""

    name: Name | SkipJsonSchema[None] = None
    settings: CampaignSettings | None = None
    status: Literal["active", "paused", "completed"] | SkipJsonSchema[None] = None
    start_at: AwareDatetime | None = Field(default=None, description="Launch a draft at this time (ISO 8601).")
    confirm: bool = Field(
        default=False,
        description="Launch (or schedule the launch) despite the launch check's warnings "
        "(GET /instances/:id/readiness). Without it, warnings are a 422; blocking problems are a 409 either way.",
    )

    @model_validator(mode="after")
    def _no_nulls(self):
        for name in ("name", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class InstanceQuery(Query):
    status: Literal["draft", "active", "paused", "completed"] | None = None
    search: str | None = Field(default=None, max_length=255)


class InstanceOut(Output):
    id: UUIDStr
    template_id: UUIDStr = Field(
        validation_alias="made_from_id",
        description="The template the campaign was made from. Once launched, the campaign runs on its own copy of "
        "its steps: see GET /instances/:id/steps.",
    )
    name: str
    status: str
    settings: dict
    started_at: datetime | None
    paused_at: datetime | None
    completed_at: datetime | None
    start_at: datetime | None = Field(description="When a draft launches by itself; null: when someone launches it.")
    start_error: str | None = Field(description="Why the scheduled launch did not happen.")
    created_at: datetime
    updated_at: datetime

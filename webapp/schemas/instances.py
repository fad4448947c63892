from datetime import datetime
from typing import Literal

from pydantic import Field

from webapp.schemas.common import Input, Name, Output, Query, UUIDStr
from webapp.schemas.settings import CampaignSettings


class InstanceIn(Input):
    template_id: UUIDStr
    name: Name
    settings: CampaignSettings | None = None


class InstanceStatusIn(Input):
    status: Literal["active", "paused", "completed"]


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
    created_at: datetime
    updated_at: datetime

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
    confirm: bool = Field(
        default=False,
        description="Launch despite the launch check's warnings (GET /instances/:id/readiness). A launch with "
        "warnings and without it is a 422; blocking problems are a 409 either way.",
    )


class InstanceQuery(Query):
    status: Literal["draft", "active", "paused", "completed"] | None = None
    search: str | None = Field(default=None, max_length=255)


class InstanceOut(Output):
    id: UUIDStr
    template_id: UUIDStr
    name: str
    status: str
    settings: dict
    started_at: datetime | None
    paused_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

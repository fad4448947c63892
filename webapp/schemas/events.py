from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel, model_validator

from webapp.schemas.common import AwareDatetime, Email, Input, JsonObject, Output, UUIDStr

EventTypeField = Literal["sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed", "complained"]
MAX_BATCH = 1000


class EventIn(Input):
    """One event in our documented format."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["enrollment_id"], "properties": {"enrollment_id": {"type": "string"}}},
                {
                    "required": ["email", "instance_id"],
                    "properties": {"email": {"type": "string"}, "instance_id": {"type": "string"}},
                },
            ]
        }
    )

    provider_event_id: str = Field(min_length=1, max_length=255)
    type: EventTypeField
    enrollment_id: UUIDStr | None = None
    email: Email | None = None
    instance_id: UUIDStr | None = None
    step_id: UUIDStr | None = None
    channel: Literal["email", "linkedin"] = "email"
    occurred_at: AwareDatetime | None = None
    metadata: JsonObject | None = None

    @model_validator(mode="after")
    def _target(self):
        if self.enrollment_id is None and (self.email is None or self.instance_id is None):
            raise ValueError("give enrollment_id, or email and instance_id")
        return self


class EventBatchIn(Input):
    events: list[Any] = Field(
        min_length=1, max_length=MAX_BATCH, json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}}
    )


class EventWebhookIn(RootModel[EventIn | EventBatchIn]):
    """The webhook body: one event, or a batch. Documents the body that api/events.py parses by hand."""


class WebhookResultOut(Output):
    received: int
    stored: int
    duplicates: int
    skipped: list[dict]


class EventOut(Output):
    id: UUIDStr
    enrollment_id: UUIDStr
    instance_id: UUIDStr
    step_id: UUIDStr | None
    channel: str
    type: str
    provider: str
    provider_event_id: str
    occurred_at: datetime
    metadata: dict = Field(validation_alias="meta")
    created_at: datetime

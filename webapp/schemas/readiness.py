"""The launch check and test sends of a campaign."""

from pydantic import ConfigDict, Field, model_validator

from webapp.schemas.common import Email, Input, Output, UUIDStr, int_range


class ProblemOut(Output):
    code: str = Field(
        description="no_steps, no_sender, mailboxes_unavailable, invalid_settings, window_never_opens, "
        "invalid_template, no_subject, missing_sender_name, unsubscribe_missing, missing_variables, "
        "suppressed_contacts, in_other_campaigns"
    )
    message: str
    count: int | None = Field(default=None, description="How many of the campaign's live contacts it concerns.")
    details: dict | None = None


class ReadinessOut(Output):
    ready: bool = Field(description="No blocking problem: the campaign may launch (warnings need a confirmation).")
    blocking: list[ProblemOut]
    warnings: list[ProblemOut]


class TestSendIn(Input):
    """One email step of the campaign, rendered for a contact and sent to `to` (default: the API
    key's user) as a test: not counted, not recorded on any enrollment."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["step_id"], "properties": {"step_id": {"type": "string"}}},
                {"required": ["step"], "properties": {"step": {"type": "integer"}}},
            ]
        }
    )

    step_id: UUIDStr | None = None
    step: int_range(1, 1000) | None = Field(default=None, description="The step's position (1-based).")
    contact_id: UUIDStr | None = Field(
        default=None, description="Render for this contact (default: the first enrolled, else a sample contact)."
    )
    to: Email | None = None

    @model_validator(mode="after")
    def _one_step(self):
        if (self.step_id is None) == (self.step is None):
            raise ValueError("give exactly one of step_id or step")
        return self


class TestSendOut(Output):
    to: str
    sender: str
    subject: str
    step: int
    contact_email: str | None = Field(description="The contact rendered for; null for the sample contact.")
    stored_in_outbox: bool = Field(description="MAIL_TRANSPORT=outbox: kept in the Outbox, not sent.")

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from webapp.schemas.common import Input, Output, Query, UUIDStr
from webapp.schemas.contacts import ContactData
from webapp.services.merge_fields import FIELD_PATTERN, is_contact_field

MAX_BULK = 10_000
ALLOW_OTHER_CAMPAIGNS = (
    "Also enroll a contact who is live (enrolled, active or paused) in another campaign of the "
    "workspace. Without it, such a contact is not enrolled: a 409 for a single enrollment, an item "
    "skipped with the reason `in_other_campaign` in a bulk one."
)


class EnrollmentIn(Input):
    """Enroll an existing contact by id, or a contact by its data (created or updated by email)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["contact_id"], "properties": {"contact_id": {"type": "string"}}},
                {"required": ["contact"], "properties": {"contact": {"type": "object"}}},
            ]
        }
    )

    contact_id: UUIDStr | None = None
    contact: ContactData | None = None
    allow_other_campaigns: bool = Field(
        default=False,
        description=ALLOW_OTHER_CAMPAIGNS + " In a bulk request it applies to its item; the request's own "
        "`allow_other_campaigns` applies to every item.",
    )

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.contact_id is None) == (self.contact is None):
            raise ValueError("give exactly one of contact_id or contact")
        return self


class BulkEnrollmentIn(Input):
    contacts: list[Any] = Field(
        min_length=1,
        max_length=MAX_BULK,
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"$ref": "#/components/schemas/EnrollmentIn"},
                    {
                        "allOf": [{"$ref": "#/components/schemas/ContactData"}],
                        "properties": {"allow_other_campaigns": {"type": "boolean"}},
                    },
                ]
            }
        },
        description=f"Up to {MAX_BULK} items, each shaped like a single enrollment request "
        '(`{"contact_id": ...}` or `{"contact": {...}}`) or a plain contact (`{"email": ..., "first_name": ...}`), '
        "with its own `allow_other_campaigns` if needed. Invalid items are reported by index and row with "
        "a reason for people; the valid ones are enrolled.",
    )
    allow_other_campaigns: bool = Field(default=False, description=ALLOW_OTHER_CAMPAIGNS)


class EnrollmentStatusIn(Input):
    status: Literal["paused", "active", "replied"] = Field(
        description="`replied`: the contact answered another way (phone, LinkedIn); stops it for good."
    )


EnrollmentStatusName = Literal[
    "enrolled", "active", "paused", "completed", "replied", "bounced", "unsubscribed", "failed", "removed"
]


def _merge_field(value: str | None) -> str | None:
    if value is not None and not is_contact_field(value):
        raise ValueError("must be a contact's merge field, e.g. first_name or custom.industry")
    return value


# The `missing=` filter of the enrollments list, its export and bulk actions.
MissingField = Annotated[
    str | None,
    Field(
        json_schema_extra={"pattern": FIELD_PATTERN},
        description="Only contacts with no value for this merge field (`first_name`, `custom.industry`...), "
        "as the launch check names them.",
    ),
    AfterValidator(_merge_field),
]


class EnrollmentFilter(BaseModel):
    """The enrollments list's filters, which the CSV export honours too."""

    model_config = ConfigDict(extra="ignore")

    status: EnrollmentStatusName | None = None
    search: str | None = Field(default=None, max_length=255)


class EnrollmentQuery(Query, EnrollmentFilter):
    sort: Literal[
        "enrolled_at", "-enrolled_at", "email", "-email", "status", "-status", "next_action_at", "-next_action_at"
    ] = "-enrolled_at"
    missing: MissingField = None


class ContactBrief(Output):
    id: UUIDStr
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    status: str


class EnrollmentOut(Output):
    id: UUIDStr
    instance_id: UUIDStr
    contact_id: UUIDStr
    contact: ContactBrief | None = None
    status: str
    status_reason: str | None
    current_step: int
    next_action_at: datetime | None
    enrolled_at: datetime
    completed_at: datetime | None
    updated_at: datetime


class InvalidItem(Output):
    index: int = Field(description="The item's position in `contacts`, from 0.")
    row: int = Field(description="The item's number, from 1 (an import's file row).")
    reason: str = Field(
        description="For people, naming the row: `row 2: email is not a valid address`, `row 3 repeats row 1`."
    )


class SkippedItem(Output):
    """A valid item that was not enrolled, and why."""

    index: int = Field(description="The item's position in `contacts`, from 0.")
    reason: Literal["in_other_campaign"] = Field(
        description="`in_other_campaign`: the contact is live (enrolled, active or paused) in another campaign "
        "of the workspace; send `allow_other_campaigns: true` to enroll it anyway."
    )
    detail: str = Field(description="For people: which campaign, e.g. `live in campaign 'Q3 outreach'`.")


class EnrollResultOut(Output):
    enrollment: EnrollmentOut
    created: bool


class BulkEnrollmentOut(Output):
    """Every item is counted once: enrolled + already_enrolled + suppressed + in_other_campaign
    + the invalid items = the items sent."""

    enrolled: int
    already_enrolled: int
    suppressed: int
    in_other_campaign: int = Field(
        description="Contacts not enrolled because they are live in another campaign (each one is in `skipped`)."
    )
    invalid: list[InvalidItem]
    skipped: list[SkippedItem] = Field(
        description="The valid items not enrolled for a reason of their own, by index: `in_other_campaign`."
    )
    contacts_created: int


class EnrollmentSelection(Input):
    """Which enrollments a bulk action takes: the filters of the enrollments list (all of them match)."""

    status: EnrollmentStatusName | None = None
    search: str | None = Field(default=None, max_length=255)
    missing: MissingField = None


class EnrollmentActionIn(Input):
    """One action on many of a campaign's enrollments: those listed in `enrollment_ids`, or every
    one the `filter` matches (`{}`: all of them). `move` needs `target_instance_id`."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["enrollment_ids"]}, {"required": ["filter"]}]})

    action: Literal["pause", "resume", "unenroll", "mark_replied", "move"]
    enrollment_ids: Annotated[list[UUIDStr], Field(min_length=1, max_length=10_000)] | SkipJsonSchema[None] = None
    filter: EnrollmentSelection | SkipJsonSchema[None] = None
    target_instance_id: UUIDStr | None = Field(
        default=None, description="For `move` (needed: 409 without it): the campaign they go to. Ignored otherwise."
    )

    @model_validator(mode="after")
    def _one_selection(self):
        if (self.enrollment_ids is None) == (self.filter is None):
            raise ValueError("give either enrollment_ids or filter")
        return self


class EnrollmentActionResult(Output):
    enrollment_id: UUIDStr
    outcome: Literal["changed", "skipped", "not_found"]
    reason: str | None = None


class EnrollmentActionOut(Output):
    action: str
    matched: int = Field(description="Enrollments the selection or filter found in this campaign.")
    changed: int
    skipped: int = Field(description="Found, but not in a status the action applies to (or, for a move, not movable).")
    results: list[EnrollmentActionResult] = Field(
        description="One per enrollment id given (none for a filter): changed, skipped with the reason, or not_found."
    )

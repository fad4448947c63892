"""Status and type vocabularies. Stored as strings; the state machines live in services
(the enrollment's in services/lifecycle.py)."""

from enum import StrEnum


class ContactStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class TemplateType(StrEnum):
    EMAIL = "email"
    LINKEDIN = "linkedin"
    MULTI_CHANNEL = "multi_channel"


class PathType(StrEnum):
    STRUCTURED = "structured"
    DYNAMIC = "dynamic"


class Channel(StrEnum):
    EMAIL = "email"
    LINKEDIN = "linkedin"


class StepAction(StrEnum):
    EMAIL = "email"
    CONNECTION_REQUEST = "connection_request"
    MESSAGE = "message"
    PROFILE_VISIT = "profile_visit"
    INMAIL = "inmail"
    TASK = "task"


class InstanceStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class EnrollmentStatus(StrEnum):
    ENROLLED = "enrolled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    FAILED = "failed"
    REMOVED = "removed"


class EventType(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    # Recorded by Drumbeat itself, never accepted from outside.
    AUTO_REPLIED = "auto_replied"  # an out-of-office or other automatic answer, read in the mailbox
    TASK_COMPLETED = "task_completed"
    TASK_SKIPPED = "task_skipped"


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"  # leased by a worker, not tried yet
    SENDING = "sending"  # its SMTP transaction is under way
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RETRY = "retry"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    SKIPPED = "skipped"


class MailboxState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # by a person
    FAILING = "failing"  # the server refused the login or the sender: a person must look


class InboundKind(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    OTHER = "other"


class LeadStatus(StrEnum):
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    MEETING_BOOKED = "meeting_booked"
    WRONG_PERSON = "wrong_person"

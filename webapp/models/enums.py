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

"""Postmark webhooks: one JSON record per request (`RecordType` Delivery, Bounce, SpamComplaint,
Open, Click, SubscriptionChange), authenticated only by HTTP basic auth.

Postmark does not sign its webhooks: the username and password in the webhook URL are the whole
proof of origin, so they are compared in constant time and the password is long (see
services.providers). Postmark sends no event id: ours is `MessageID:RecordType:<timestamp>`, with
the record's own timestamp field, so a redelivered record is stored once.

Answers: 200 when accepted; 401 with a Basic challenge for an unknown workspace, a workspace
without Postmark credentials, or wrong credentials (Postmark retries, so events sent while the
credentials are being fixed are not lost); 400 for a malformed record; 503 when the database is
down.

What the sender configures in Postmark: Servers > (server) > Webhooks, the URL
`https://<username>:<password>@<host>/webhooks/postmark/<workspace id>` with the record types
wanted, and the same username and password saved in Drumbeat. Postmark's `MessageID` is its own
id, so messages should carry our delivery id as metadata (over SMTP: the header
`X-PM-Metadata-drumbeat_delivery_id: <delivery id>`); `drumbeat_message_id` metadata, a
`Message-ID` or `X-Drumbeat-Delivery-Id` entry in `Headers`, or a `MessageID` we stored also work.
"""

import hmac

from werkzeug.datastructures import Authorization

from webapp.errors import Unauthorized, ValidationFailed
from webapp.services.providers import ProviderEvent
from webapp.webhooks.payloads import Parsed, event_id, iso_time, pick, text

CHALLENGE = 'Basic realm="Drumbeat webhooks", charset="UTF-8"'
DELIVERY_METADATA = "drumbeat_delivery_id"
MESSAGE_ID_METADATA = "drumbeat_message_id"
DELIVERY_HEADER = "x-drumbeat-delivery-id"

HARD = {"bounce_type": "hard"}
SOFT = {"bounce_type": "soft"}
TIMESTAMP_FIELDS = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}
EVENTS = {"Delivery": "delivered", "Open": "opened", "Click": "clicked", "SpamComplaint": "complained"}
# Bounce `Type`s: the address is gone (hard) or the record is not a bounce at all; any other
# type (SoftBounce, Transient, DnsError, Blocked, DMARCPolicy, Unknown, ...) is a soft bounce.
HARD_BOUNCES = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
NOT_BOUNCES = {"AutoResponder", "AddressChange", "Subscribe", "ChallengeVerification", "OpenRelayTest"}
METADATA = {
    "MessageID": "postmark_message_id",
    "MessageStream": "message_stream",
    "ID": "bounce_id",
    "Type": "bounce_kind",
    "TypeCode": "type_code",
    "Description": "description",
    "Details": "details",
    "Inactive": "inactive",
    "OriginalLink": "url",
    "ClickLocation": "click_location",
    "FirstOpen": "first_open",
    "Platform": "platform",
    "UserAgent": "user_agent",
    "Origin": "origin",
    "SuppressionReason": "suppression_reason",
}


def verify(settings: dict, headers) -> None:
    """Check the basic-auth credentials, or raise Unauthorized."""
    auth = Authorization.from_header(headers.get("Authorization"))
    if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
        raise Unauthorized("Missing basic auth credentials.")
    # Both compared every time, so the answer's timing does not tell which one was wrong.
    user_ok = hmac.compare_digest(auth.username.encode(), settings["username"].encode())
    password_ok = hmac.compare_digest(auth.password.encode(), settings["password"].encode())
    if not (user_ok & password_ok):
        raise Unauthorized("Invalid webhook credentials.")


def _map(record: dict) -> tuple[str, dict] | None:
    kind = record["RecordType"]
    if kind == "Bounce":
        bounce = record.get("Type")
        if bounce == "SpamComplaint":
            return "complained", {}
        if bounce == "Unsubscribe":
            return "unsubscribed", {}
        if bounce in NOT_BOUNCES:
            return None
        # `Inactive`: Postmark deactivated the address and will not send to it again.
        return "bounced", HARD if bounce in HARD_BOUNCES or record.get("Inactive") is True else SOFT
    if kind == "SubscriptionChange":
        # A suppression for a hard bounce or a complaint arrives as its own Bounce/SpamComplaint
        # record too; only a manual suppression (the recipient unsubscribed) is news.
        if record.get("SuppressSending") is True and record.get("SuppressionReason") == "ManualSuppression":
            return "unsubscribed", {}
        return None
    return (EVENTS[kind], {}) if kind in EVENTS else None


def _header(record: dict, name: str) -> str | None:
    headers = record.get("Headers")
    for header in headers if isinstance(headers, list) else ():
        if isinstance(header, dict) and str(header.get("Name", "")).lower() == name:
            return text(header.get("Value"), 998)
    return None


def parse(payload) -> Parsed:
    """Map one Postmark record onto ours; ValidationFailed if it is malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("RecordType"), str):
        raise ValidationFailed("Postmark posts one JSON object with a RecordType.")
    parsed = Parsed(received=1)
    mapped = _map(payload)
    if mapped is None:
        parsed.ignored = 1
        return parsed
    postmark_id = text(payload.get("MessageID"), 100)
    if not postmark_id:
        raise ValidationFailed(f"A {payload['RecordType']} record needs a MessageID.")
    timestamp = text(payload.get(TIMESTAMP_FIELDS.get(payload["RecordType"], "")), 64) or ""
    stable_id = event_id(f"{postmark_id}:{payload['RecordType']}:{timestamp}")
    metadata = payload.get("Metadata") if isinstance(payload.get("Metadata"), dict) else {}
    message_id = text(metadata.get(MESSAGE_ID_METADATA), 998) or _header(payload, "message-id")
    type_, extra = mapped
    parsed.events.append(
        ProviderEvent(
            event_id=stable_id,
            type=type_,
            occurred_at=iso_time(timestamp),
            delivery_id=text(metadata.get(DELIVERY_METADATA), 64) or _header(payload, DELIVERY_HEADER),
            message_id=message_id or postmark_id,
            metadata={"provider_event": payload["RecordType"], **extra, **pick(payload, METADATA)},
        )
    )
    return parsed

"""Mailgun webhooks: `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`,
where `signature` is hex HMAC-SHA256 of `timestamp + token` with the webhook signing key.

The signature sits inside the body, so the raw body is parsed first, and it covers only the
timestamp and the token, not the event data. Mailgun asks receivers to remember used tokens; we
keep no token table (it would need a migration), so instead a timestamp further than
`WEBHOOK_TOLERANCE_SECONDS` from now is rejected, and events are deduplicated on `event-data.id`.
A captured signature could therefore be reused with other event data inside that window: a
token table is the remaining fix.

Answers: 200 when accepted; 406 (Mailgun does not retry) for a rejection that will not get better:
unknown workspace, missing, invalid or stale signature, malformed event data; 401 (Mailgun retries
for about 8 hours) when the workspace has no signing key yet, so events sent while the key is being
set up are not lost; 503 when the database is down (Mailgun retries).

What the sender configures in Mailgun: Sending > Webhooks, the URL
`/webhooks/mailgun/<workspace id>` for each event type, and the HTTP webhook signing key saved in
Drumbeat (`{"signing_key": ...}`). Events are matched by the Message-ID we send (Mailgun reports
it in `event-data.message.headers.message-id` for every event type); a user variable
`drumbeat_delivery_id` (over SMTP: `X-Mailgun-Variables: {"drumbeat_delivery_id": "<id>"}`) is
used first when present.
"""

import hashlib
import hmac
import time

from webapp.errors import ServiceError
from webapp.services.providers import ProviderEvent
from webapp.webhooks.payloads import Parsed, event_id, pick, text, unix_time

DELIVERY_VARIABLE = "drumbeat_delivery_id"
MAX_TOKEN = 200


class Rejected(ServiceError):
    """406: Mailgun's code for "rejected, do not retry"."""

    status_code = 406
    error = "Not Acceptable"


HARD = {"bounce_type": "hard"}
SOFT = {"bounce_type": "soft"}
# accepted (our worker records `sent` itself), rejected, stored and list events are not tracked.
EVENTS = {
    "delivered": ("delivered", {}),
    "opened": ("opened", {}),
    "clicked": ("clicked", {}),
    "complained": ("complained", {}),
    "unsubscribed": ("unsubscribed", {}),
}
# Mailgun drops mail to addresses on its own suppression lists with these reasons.
SUPPRESSED = {
    "suppress-bounce": ("bounced", HARD),
    "suppress-unsubscribe": ("unsubscribed", {}),
    "suppress-complaint": ("complained", {}),
}
METADATA = {"severity": "severity", "reason": "reason", "url": "url", "ip": "ip", "log-level": "log_level"}
STATUS_METADATA = {"code": "code", "message": "response", "description": "description", "attempt-no": "attempt"}


def sign(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def verify(signing_key: str, payload, *, tolerance: int, now: float | None = None) -> None:
    """Check the body's signature object, or raise Rejected (406)."""
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise Rejected("Missing Mailgun signature.")
    timestamp, token = signature.get("timestamp"), signature.get("token")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not (isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise Rejected("Invalid Mailgun signature timestamp.")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        raise Rejected("Invalid Mailgun signature token.")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise Rejected("Stale webhook: the timestamp is outside the accepted window.")
    expected = sign(signing_key, timestamp, token).encode()
    # `parent-signature` is the same HMAC with the parent account's key (events of a subaccount).
    candidates = [signature.get("signature"), signature.get("parent-signature")]
    valid = [
        hmac.compare_digest(c.lower().encode(), expected) for c in candidates if isinstance(c, str) and c.isascii()
    ]
    if not any(valid):
        raise Rejected("Invalid webhook signature.")


def _map(data: dict) -> tuple[str, dict] | None:
    kind = data.get("event")
    if kind == "failed":
        suppressed = SUPPRESSED.get(data.get("reason")) if isinstance(data.get("reason"), str) else None
        return suppressed or ("bounced", HARD if data.get("severity") == "permanent" else SOFT)
    return EVENTS.get(kind) if isinstance(kind, str) else None


def parse(payload: dict) -> Parsed:
    """Map one signed Mailgun event onto ours; Rejected (406) if `event-data` is malformed."""
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise Rejected("Malformed Mailgun payload: event-data must be an object.")
    parsed = Parsed(received=1)
    mapped = _map(data)
    if mapped is None:
        parsed.ignored = 1
        return parsed
    mailgun_id = event_id(data.get("id"))
    if mailgun_id is None:
        raise Rejected("Malformed Mailgun payload: event-data.id is required.")
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    message_id = text(headers.get("message-id"), 998)
    type_, extra = mapped
    metadata = {"provider_event": data["event"], **extra, **pick(data, METADATA), **pick(status, STATUS_METADATA)}
    if message_id:
        metadata["message_id"] = message_id[:255]
    parsed.events.append(
        ProviderEvent(
            event_id=mailgun_id,
            type=type_,
            occurred_at=unix_time(data.get("timestamp")),
            delivery_id=text(variables.get(DELIVERY_VARIABLE), 64),
            message_id=message_id,
            metadata=metadata,
        )
    )
    return parsed

"""SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 over `timestamp + raw body`.

SendGrid posts a JSON array of events and signs the exact bytes it sends: the signature is
checked on `request.get_data()` before any parsing, since re-serialised JSON does not verify.

SendGrid documents no freshness window for the signed timestamp, and retries for up to 24 hours,
so no window is enforced: a replayed batch is harmless because events are deduplicated on
`sg_event_id` (a replay stores nothing new).

What the sender configures in SendGrid: Settings > Mail Settings > Event Webhook, the URL
`/webhooks/sendgrid/<workspace id>`, "Signed Event Webhook" on, and the verification key saved
in Drumbeat (`set_provider_settings(workspace, "sendgrid", {"public_key": ...})`). Messages should
carry the custom argument `drumbeat_delivery_id` (over SMTP: `X-SMTPAPI: {"unique_args":
{"drumbeat_delivery_id": "<delivery id>"}}`): only delivery-side events (processed, delivered,
deferred, bounce, dropped) carry `smtp-id`; engagement events (open, click, spamreport,
unsubscribe) are matched by the custom argument alone.
"""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from webapp.errors import Unauthorized, ValidationFailed
from webapp.services.providers import ProviderEvent, load_sendgrid_key
from webapp.webhooks.payloads import Parsed, event_id, pick, unix_time

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DELIVERY_ARG = "drumbeat_delivery_id"

HARD = {"bounce_type": "hard"}
SOFT = {"bounce_type": "soft"}
# processed (our worker records `sent` itself), deferred and group_resubscribe are not tracked.
EVENTS = {
    "delivered": ("delivered", {}),
    "open": ("opened", {}),
    "click": ("clicked", {}),
    "spamreport": ("complained", {}),
    "unsubscribe": ("unsubscribed", {}),
    "group_unsubscribe": ("unsubscribed", {}),
}
# A drop names the suppression list that stopped the message; other drops did not reach the
# recipient either, so they count as soft bounces (no suppression).
DROPPED = {
    "bounced address": ("bounced", HARD),
    "invalid": ("bounced", HARD),
    "unsubscribed address": ("unsubscribed", {}),
    "spam reporting address": ("complained", {}),
}
METADATA = {
    "sg_message_id": "sg_message_id",
    "smtp-id": "message_id",
    "reason": "reason",
    "status": "status",
    "response": "response",
    "type": "bounce_kind",
    "bounce_classification": "bounce_classification",
    "attempt": "attempt",
    "url": "url",
    "useragent": "user_agent",
    "ip": "ip",
    "sg_machine_open": "machine_open",
    "asm_group_id": "asm_group_id",
}


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The signature header value SendGrid would send (used by tests and local tools)."""
    return base64.b64encode(private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def verify(public_key: str, headers, body: bytes) -> None:
    """Check the signature headers against the raw `body`, or raise Unauthorized."""
    signature = headers.get(SIGNATURE_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not (signature and timestamp):
        raise Unauthorized(f"Missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header.")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Unauthorized(f"Invalid {TIMESTAMP_HEADER} header.")
    try:
        key = load_sendgrid_key(public_key)
    except ValueError as exc:
        raise Unauthorized("The SendGrid verification key is misconfigured.") from exc
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise Unauthorized("Invalid webhook signature.") from exc


def _map(item: dict) -> tuple[str, dict] | None:
    kind = item.get("event")
    if kind == "bounce":
        # `type` is "bounce" for a rejection by the receiving server, "blocked" (or "expired")
        # for a temporary refusal; payloads from before the field existed were bounces.
        return "bounced", HARD if str(item.get("type") or "bounce").lower() == "bounce" else SOFT
    if kind == "dropped":
        return DROPPED.get(str(item.get("reason") or "").strip().lower(), ("bounced", SOFT))
    return EVENTS.get(kind) if isinstance(kind, str) else None


def parse(payload) -> Parsed:
    """Map SendGrid's array of events onto ours; ValidationFailed if it is not an array."""
    if not isinstance(payload, list):
        raise ValidationFailed("SendGrid posts a JSON array of events.")
    parsed = Parsed(received=len(payload))
    for item in payload:
        if not isinstance(item, dict):
            parsed.invalid += 1
            continue
        mapped = _map(item)
        if mapped is None:
            parsed.ignored += 1
            continue
        sg_event_id = event_id(item.get("sg_event_id"))
        if sg_event_id is None:
            parsed.invalid += 1
            continue
        type_, extra = mapped
        delivery_id = item.get(DELIVERY_ARG)
        parsed.events.append(
            ProviderEvent(
                event_id=sg_event_id,
                type=type_,
                occurred_at=unix_time(item.get("timestamp")),
                delivery_id=delivery_id if isinstance(delivery_id, str) else None,
                message_id=item.get("smtp-id") if isinstance(item.get("smtp-id"), str) else None,
                metadata={"provider_event": item["event"], **extra, **pick(item, METADATA)},
            )
        )
    return parsed

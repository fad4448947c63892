"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{raw body}` with the workspace's `whsec_` secret."""

import base64
import binascii
import hashlib
import hmac
import time

from webapp.errors import Unauthorized


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def require_headers(headers) -> tuple[str, str, str]:
    """The three signature headers, or Unauthorized naming them."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise Unauthorized("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    return msg_id, timestamp, signatures


def verify(secret: str, headers, body: bytes, *, tolerance: int, now: float | None = None) -> str:
    """Check the signature headers against `body`; return the webhook id or raise Unauthorized."""
    msg_id, timestamp, signatures = require_headers(headers)
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Unauthorized("Invalid webhook-timestamp header.")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise Unauthorized("Stale webhook: the timestamp is outside the accepted window.")
    try:
        expected = sign(secret, msg_id, int(timestamp), body).split(",", 1)[1]
    except (binascii.Error, ValueError) as exc:
        raise Unauthorized("Webhook secret is misconfigured.") from exc
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise Unauthorized("Invalid webhook signature.")

"""Email providers (SendGrid, Mailgun, Postmark): the credentials their webhooks are verified with,
and the intake of their events once verified.

Credentials live in `Workspace.provider_settings`, one object per provider; they are never returned
by the API nor written to logs. Provider events reach `services.events.ingest_events` through
`ingest_provider_events`, which finds the delivery each event is about, scoped to the workspace.
"""

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)
from pydantic import ValidationError

from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.models import Delivery, Workspace
from webapp.schemas.events import EventIn
from webapp.services.events import ingest_events

PROVIDERS = {
    "sendgrid": ("public_key",),
    "mailgun": ("signing_key",),
    "postmark": ("username", "password"),
}
MAX_SECRET_LENGTH = 1000
MIN_POSTMARK_PASSWORD = 16
_CHUNK = 1000


def load_sendgrid_key(value: str) -> ec.EllipticCurvePublicKey:
    """The SendGrid verification key as shown in the dashboard (base64 DER) or as PEM.

    Raises ValueError unless it is an EC public key on P-256, the curve SendGrid signs with.
    """
    text = value.strip()
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError("is not a public key (paste the base64 verification key, or a PEM block)") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("must be an ECDSA P-256 public key")
    return key


def _text(values: dict, name: str, errors: list[dict]) -> str | None:
    value = values.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append({"field": name, "message": "is required"})
        return None
    value = value.strip()
    # Line breaks only inside a PEM block.
    allowed = "\r\n" if name == "public_key" else ""
    if len(value) > MAX_SECRET_LENGTH or any(
        (ord(char) < 32 or ord(char) == 127) and char not in allowed for char in value
    ):
        errors.append({"field": name, "message": f"must be at most {MAX_SECRET_LENGTH} printable characters"})
        return None
    return value


def _clean(provider: str, values: dict) -> dict:
    errors = [
        {"field": name, "message": "is not a setting of this provider"}
        for name in values
        if name not in PROVIDERS[provider]
    ]
    clean = {name: _text(values, name, errors) for name in PROVIDERS[provider]}
    if provider == "sendgrid" and clean["public_key"]:
        try:
            key = load_sendgrid_key(clean["public_key"])
        except ValueError as exc:
            errors.append({"field": "public_key", "message": str(exc)})
        else:
            # Stored in the dashboard's own form, whichever form was pasted.
            der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            clean["public_key"] = base64.b64encode(der).decode()
    if provider == "postmark":
        if clean["username"] and ":" in clean["username"]:
            errors.append({"field": "username", "message": "must not contain ':' (HTTP basic auth)"})
        if clean["password"] and len(clean["password"]) < MIN_POSTMARK_PASSWORD:
            # Basic auth is Postmark's only proof of origin: the password is the whole secret.
            errors.append({"field": "password", "message": f"must be at least {MIN_POSTMARK_PASSWORD} characters"})
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(f"Invalid {provider} settings: {summary}", details=errors)
    return clean


def set_provider_settings(workspace: Workspace, provider: str, values: dict) -> None:
    """Validate and store the webhook credentials of one provider, replacing the previous ones.

    SendGrid: `public_key` (the Signed Event Webhook verification key; must load as an ECDSA P-256
    public key). Mailgun: `signing_key` (the HTTP webhook signing key). Postmark: `username` and
    `password` (put in the webhook URL as basic auth; the password has at least 16 characters).
    Raises ValidationFailed for an unknown provider, a missing, unknown or invalid value.
    """
    if provider not in PROVIDERS:
        raise ValidationFailed(f"Unknown provider '{str(provider)[:40]}': use one of {', '.join(PROVIDERS)}.")
    if not isinstance(values, dict):
        raise ValidationFailed(f"Settings for {provider} must be an object.")
    clean = _clean(provider, values)
    # A new dict, so the JSON column is seen as changed.
    workspace.provider_settings = {**(workspace.provider_settings or {}), provider: clean}
    db.session.commit()


def get_provider_settings(workspace: Workspace, provider: str) -> dict | None:
    """The stored credentials of `provider`, or None when the workspace has not configured it."""
    settings = (workspace.provider_settings or {}).get(provider)
    names = PROVIDERS.get(provider)
    if not names or not isinstance(settings, dict) or not all(settings.get(name) for name in names):
        return None
    return dict(settings)


@dataclass(frozen=True)
class ProviderEvent:
    """A provider's event in our vocabulary, before we know which delivery it is about.

    `delivery_id` is our delivery id when the sender passed it along (custom argument, variable or
    metadata); `message_id` is the Message-ID the provider reports, with or without angle brackets.
    """

    event_id: str
    type: str
    occurred_at: datetime | None = None
    delivery_id: str | None = None
    message_id: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class ProviderIntake:
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0


def _message_id_forms(value: str) -> list[str]:
    core = value.strip().strip("<>").strip()
    return [f"<{core}>", core] if core else []


def _delivery_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip()) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        return None


def _message_id_uuid(message_id: str | None) -> uuid.UUID | None:
    """The delivery id in a Message-ID of ours, `<delivery-uuid@domain>`."""
    local, at, _domain = (message_id or "").strip().strip("<>").partition("@")
    return _delivery_uuid(local) if at else None


def _find_deliveries(workspace: Workspace, events: list[ProviderEvent]) -> list[sa.Row | None]:
    """For each event, the (enrollment_id, step_id) of its delivery in `workspace`, or None."""
    ids = {i for e in events for i in (_delivery_uuid(e.delivery_id), _message_id_uuid(e.message_id)) if i}
    message_ids = {form for e in events if e.message_id for form in _message_id_forms(e.message_id)}
    columns = (Delivery.id, Delivery.message_id, Delivery.enrollment_id, Delivery.step_id)
    base = sa.select(*columns).where(Delivery.workspace_id == workspace.id)
    by_id, by_message_id = {}, {}
    id_list, message_id_list = list(ids), list(message_ids)
    for start in range(0, len(id_list), _CHUNK):
        for row in db.session.execute(base.where(Delivery.id.in_(id_list[start : start + _CHUNK]))):
            by_id[row.id] = row
    for start in range(0, len(message_id_list), _CHUNK):
        for row in db.session.execute(base.where(Delivery.message_id.in_(message_id_list[start : start + _CHUNK]))):
            by_message_id[row.message_id] = row
    found = []
    for event in events:
        row = by_id.get(_delivery_uuid(event.delivery_id))
        for form in _message_id_forms(event.message_id or ""):
            row = row or by_message_id.get(form)
        found.append(row or by_id.get(_message_id_uuid(event.message_id)))
    return found


def ingest_provider_events(workspace: Workspace, provider: str, events: list[ProviderEvent]) -> ProviderIntake:
    """Match verified provider events to their deliveries, then store and apply them in one
    `ingest_events` call (one transaction; deduplicated by the provider's event id).

    A delivery is found, within `workspace` only, by the delivery id the sender passed along, else
    by the Message-ID we stored when sending, else by the delivery id inside a Message-ID of ours.
    Events that match no delivery, or that do not validate, are skipped and counted, not stored.
    """
    intake = ProviderIntake()
    batch = []
    for event, delivery in zip(events, _find_deliveries(workspace, events), strict=True):
        if delivery is None:
            intake.skipped += 1
            continue
        try:
            batch.append(
                EventIn(
                    provider_event_id=event.event_id,
                    type=event.type,
                    enrollment_id=delivery.enrollment_id,
                    step_id=delivery.step_id,
                    occurred_at=event.occurred_at,
                    metadata=event.metadata,
                )
            )
        except ValidationError:
            intake.skipped += 1
    if batch:
        result = ingest_events(workspace, batch, provider=provider)
        intake.stored, intake.duplicates = result.stored, result.duplicates
        intake.skipped += len(result.skipped)
    return intake

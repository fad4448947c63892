"""What the provider adapters share: the parse result, JSON parsing and field clean-up.

Every value in a provider payload is untrusted text: metadata keeps a short list of fields per
provider, strings cut to `MAX_TEXT` characters, never the recipient's address nor the whole payload.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from webapp.errors import ServiceError, ValidationFailed
from webapp.services.providers import ProviderEvent

MAX_TEXT = 500
MAX_EVENT_ID = 255


@dataclass
class Parsed:
    """A payload mapped onto our events. `ignored`: types we do not track; `invalid`: events of a
    tracked type that cannot be stored (no usable event id)."""

    received: int = 0
    events: list[ProviderEvent] = field(default_factory=list)
    ignored: int = 0
    invalid: int = 0


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes, error: type[ServiceError] = ValidationFailed):
    """The body as JSON, or `error` with a readable reason."""
    if not body.strip():
        raise error("Request body is required.")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise error(f"Malformed JSON: {reason}") from exc


def text(value, limit: int = MAX_TEXT) -> str | None:
    """A scalar as a string of at most `limit` characters; None for anything else."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    return str(value)[:limit]


def event_id(value) -> str | None:
    """A provider event id we can deduplicate on: a non-empty string of at most 255 characters."""
    if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID:
        return value
    return None


def unix_time(value) -> datetime | None:
    """Seconds since the epoch (int, float or digits) as an aware UTC datetime, or None."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, UTC) if 0 < seconds < 1e11 else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def iso_time(value) -> datetime | None:
    """An ISO 8601 date-time (any number of fractional digits; no offset means UTC), or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def pick(source: dict, names: dict[str, str]) -> dict:
    """`{our name: source[their name]}` for the scalar fields present in `source`, strings cut short."""
    picked = {}
    for theirs, ours in names.items():
        value = source.get(theirs)
        if isinstance(value, bool | int | float):
            picked[ours] = value
        elif (cleaned := text(value)) is not None:
            picked[ours] = cleaned
    return picked

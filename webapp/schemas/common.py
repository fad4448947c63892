"""Shared field types and helpers for every schema."""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

MAX_JSON_BYTES = 10 * 1024
MAX_JSON_DEPTH = 5

# Deliberately simple and fast (bulk requests validate 10,000 addresses): one @, no spaces or
# control characters, a dotted domain of letters, digits and hyphens. Unicode local parts pass.
_EMAIL_RE = re.compile(
    r"[^\s@\"(),:;<>\[\\\]\x00-\x1f\x7f]{1,64}@(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalize_email(value: str) -> str:
    """Lower-case and strip an address, or raise ValueError with a readable reason."""
    if not isinstance(value, str):
        raise ValueError("email must be a string")
    email = value.strip().lower()
    if not email:
        raise ValueError("email is required")
    if len(email) > 320 or not _EMAIL_RE.fullmatch(email) or ".." in email:
        raise ValueError(f"'{value[:80]}' is not a valid email address")
    return email


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1 if level > 1 else level


def check_json_limits(value: Any) -> Any:
    if value is None:
        return value
    if len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_JSON_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_BYTES // 1024} KB of JSON")
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"must not be nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return value
    if value not in _TIMEZONES:
        raise ValueError(f"unknown time zone '{value[:64]}' (use an IANA name such as Europe/Paris)")
    return value


_TIMEZONES = frozenset(available_timezones())


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone offset, e.g. 2026-01-31T09:00:00Z")
    return value.astimezone(UTC)


Email = Annotated[str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(normalize_email)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_limits)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]
AwareDatetime = Annotated[datetime, AfterValidator(aware)]
UUIDStr = Annotated[
    uuid.UUID, PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string", "format": "uuid"})
]
Name = Annotated[
    str, Field(min_length=1, max_length=255), BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)
]
OptionalText = Annotated[str | None, Field(default=None, max_length=255)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are an error, strings are not coerced from numbers."""

    model_config = ConfigDict(extra="forbid", strict=False, str_max_length=100_000)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(20, ge=1, le=100)


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    totalPages: int


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    return ZoneInfo(name or fallback)

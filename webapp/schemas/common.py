"""Shared field types and helpers for every schema."""

import functools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

MAX_JSON_BYTES = 10 * 1024
MAX_JSON_DEPTH = 5

# Deliberately simple and fast (bulk requests validate 10,000 addresses): one @, no spaces or
# control characters, a dotted domain of letters, digits and hyphens. The local part is ASCII: an
# address with non-ASCII characters before the @ needs SMTPUTF8, which the mailer does not speak.
# The domain may be internationalised (IDN): it is checked in its ASCII (punycode) form, and
# stored in its Unicode form, so `anna@xn--bcher-kva.de` and `anna@BÜCHER.de` are one contact,
# `anna@bücher.de`, shown as people type it; the mailer sends to the punycode form. Both
# conversions use Python's "idna" codec, as the mailer does, so they agree.
# The local part lists the printable ASCII characters it may use, so that Python and ECMAScript
# read it alike: the OpenAPI document carries the same pattern (EMAIL_PATTERN, with upper case and
# the Unicode form of domains).
_EMAIL_LOCAL = r"[\x21\x23-\x27\x2a\x2b\x2d-\x39\x3d\x3f\x41-\x5a\x5e-\x7e]{1,64}"
_EMAIL_DOMAIN = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
# No separate limit on the domain's length: the document could not state it (JSON Schema has no
# lookahead that generators handle), and the address as a whole is bounded by max_length.
_EMAIL_RE = re.compile(f"{_EMAIL_LOCAL}@{_EMAIL_DOMAIN}")
# The document's domain: the same, with letters beyond ASCII (an IDN in Unicode form); whether
# they make a valid IDN is beyond a pattern, and said in the description.
_IDN = r"a-zA-Z0-9\u00a1-\uffff"
_DOC_DOMAIN = (
    rf"(?:[{_IDN}](?:[{_IDN}-]{{0,61}}[{_IDN}])?\.)+(?:[a-zA-Z\u00a1-\uffff]{{2,63}}|xn--[a-zA-Z0-9-]{{1,59}})"
)
EMAIL_PATTERN = f"^{_EMAIL_LOCAL}@{_DOC_DOMAIN}$"

# The error types of normalize_email, for callers that word the problem their own way.
EMAIL_REQUIRED = "email_required"
EMAIL_INVALID = "email_invalid"
EMAIL_NON_ASCII_LOCAL = "email_non_ascii_local"


def normalize_email(value: str) -> str:
    """Lower-case and strip an address, with its domain in Unicode form (see above), or raise
    ValueError (a PydanticCustomError of type EMAIL_REQUIRED, EMAIL_INVALID or
    EMAIL_NON_ASCII_LOCAL) with a readable reason."""
    if not isinstance(value, str):
        raise PydanticCustomError(EMAIL_INVALID, "email must be a string")
    email = value.strip().lower()
    if not email:
        raise PydanticCustomError(EMAIL_REQUIRED, "email is required")
    local, _, domain = email.rpartition("@")
    if not local.isascii():
        raise PydanticCustomError(
            EMAIL_NON_ASCII_LOCAL,
            "'{value}' has non-ASCII characters before the @, which mail servers cannot be relied on to "
            "deliver to; only the part after the @ may have them",
            {"value": value[:80]},
        )
    ascii_domain = domain
    if not domain.isascii() or "xn--" in domain:
        domain, ascii_domain = _idn_domain(domain)
        email = f"{local}@{domain}"
    if len(email) > 320 or not _EMAIL_RE.fullmatch(f"{local}@{ascii_domain}") or ".." in email:
        raise PydanticCustomError(EMAIL_INVALID, "'{value}' is not a valid email address", {"value": value[:80]})
    return email


@functools.lru_cache(maxsize=4096)
def _idn_domain(domain: str) -> tuple[str, str]:
    """(Unicode form, ASCII form) of an internationalised domain; ("", "") when it is none."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
        return ascii_domain.encode("ascii").decode("idna"), ascii_domain
    except UnicodeError:
        return "", ""


def check_json_limits(value: Any) -> Any:
    """`value` if it nests at most MAX_JSON_DEPTH deep and its JSON takes at most MAX_JSON_BYTES.

    One iterative walk measures the depth (so a value nested thousands deep cannot overflow the
    stack) and an upper bound of the size: 6 bytes a character covers every escape and UTF-8
    sequence. Only a value whose bound is over the limit is serialised to be measured exactly."""
    if value is None:
        return value
    bound, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            bound += 6 * len(item) + 3  # quotes and a separator
        elif isinstance(item, dict | list):
            if level > MAX_JSON_DEPTH:
                raise ValueError(f"must not be nested deeper than {MAX_JSON_DEPTH} levels")
            bound += 2
            if isinstance(item, dict):
                bound += sum(6 * len(key) + 4 for key in item)
                item = item.values()
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool):
            bound += item.bit_length() // 3 + 3  # decimal digits, a sign and a separator
        else:
            bound += 25  # a float's repr, true, false or null
    if (
        bound > MAX_JSON_BYTES
        and len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_JSON_BYTES
    ):
        raise ValueError(f"must be at most {MAX_JSON_BYTES // 1024} KB of JSON")
    return value


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return value
    if value not in _TIMEZONES:
        raise ValueError(f"unknown time zone '{value[:64]}' (use an IANA name such as Europe/Paris)")
    return value


_TIMEZONES = frozenset(available_timezones())
# The JSON schema lists every zone; the OpenAPI document keeps one copy, as a component.
TIMEZONE_SCHEMA = {"type": "string", "enum": sorted(_TIMEZONES), "description": "An IANA time zone name."}


def _json_integer(value: Any) -> Any:
    # JSON Schema counts 35.0 as an integer; strings and booleans stay errors (Input is strict).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _datetime_text(value: Any) -> Any:
    # JSON has no date type: a date-time is an ISO 8601 string, never a number of seconds.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-01-31T09:00:00Z")
    return value


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone offset, e.g. 2026-01-31T09:00:00Z")
    return value.astimezone(UTC)


Email = Annotated[
    str,
    # The pattern, not `format: email`, which has no internationalised domains.
    Field(
        max_length=320,
        json_schema_extra={
            "pattern": EMAIL_PATTERN,
            "description": "An email address: ASCII before the @; the domain may be internationalised (a valid "
            "IDN, such as bücher.de), and is stored in its Unicode form.",
        },
    ),
    AfterValidator(normalize_email),
]
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(check_json_limits),
    Field(
        description=f"Free-form JSON object: at most {MAX_JSON_BYTES // 1024} KB, nested at most {MAX_JSON_DEPTH} "
        "levels, no NUL characters."
    ),
]
TimeZone = Annotated[
    str,
    Field(max_length=64),
    AfterValidator(check_timezone),
    WithJsonSchema(TIMEZONE_SCHEMA),
]


def int_range(ge: int, le: int) -> Any:
    """A bounded integer for request bodies. The bounds go before the validator: that order keeps
    them in the JSON schema as minimum and maximum."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_integer)]


# Strict(False): request bodies are strict (Input), but JSON spells ids and times as strings.
AwareDatetime = Annotated[datetime, Strict(False), BeforeValidator(_datetime_text), AfterValidator(aware)]
UUIDStr = Annotated[
    uuid.UUID,
    Strict(False),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "format": "uuid"}),
]
Name = Annotated[
    str, Field(min_length=1, max_length=255), BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)
]
OptionalText = Annotated[str | None, Field(default=None, max_length=255)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are an error, and values are not coerced (strict):
    `"5"` is not an integer and `0` or `"yes"` not a boolean, as the OpenAPI document says.
    HTML forms, whose values are all strings, validate with `model_validate(data, strict=False)`."""

    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=100_000)


class NoOptions(Input):
    """`{}`: the action takes no options (a JSON object all the same, as every write's body is)."""


class CloneIn(Input):
    """The optional body of a clone request."""

    name: Name | None = Field(
        default=None, description='The copy\'s name; default "<name> (copy)", numbered when taken.'
    )


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

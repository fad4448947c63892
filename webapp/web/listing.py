"""Filtered, paged lists (Tasks, Inbox): reading their query string, which comes from editable
URLs, so unknown values are ignored rather than refused, and writing it back for links."""

import uuid
from collections.abc import Container, Mapping


def choice(values: Mapping, name: str, allowed: Container[str]) -> str | None:
    value = values.get(name)
    return value if value in allowed else None


def uuid_arg(values: Mapping, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(values.get(name) or "")
    except ValueError:
        return None


def page_arg(values) -> int:
    return max(values.get("page", type=int) or 1, 1)


def query_args(**values) -> dict[str, str]:
    """Query arguments for url_for: empty values, false flags and page 1 left out."""
    return {
        name: "1" if value is True else str(value)
        for name, value in values.items()
        if value not in (None, False, "") and not (name == "page" and value == 1)
    }

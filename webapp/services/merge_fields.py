"""Merge fields as SQL: whether a contact has a value for `{{ first_name }}`, `{{ custom.industry }}`...

The renderer (engine/render.py) treats a missing, None or blank value as unresolved, and reads
only text, numbers and true/false from custom fields. These expressions say the same in SQL, on
SQLite and PostgreSQL, so that the launch check can count contacts without a value and the
enrollments list can show them, without loading contacts into Python.
"""

import re

import sqlalchemy as sa

from webapp.engine import render
from webapp.models import Contact
from webapp.services.bulk import dialect_name

# The contact's own columns a template may name (`full_name` is derived from two of them).
COLUMNS = ("first_name", "last_name", "email", "company", "title", "linkedin_url", "timezone")
CUSTOM_PREFIX = render.CUSTOM + "."
# A contact's merge field, as `render.variables_used` names it (what the enrollments' `missing` filter takes).
FIELD_PATTERN = (
    rf"^(?:{'|'.join([*COLUMNS, 'full_name'])}"
    rf"|custom\.[^_\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{{0,{render.MAX_CUSTOM_KEY - 1}}})$"
)
_FIELD = re.compile(FIELD_PATTERN)


def is_contact_field(name: str) -> bool:
    """Whether `name` is a merge field whose value comes from the contact (not the sender's name or
    the unsubscribe link), spelled as `render.variables_used` spells it."""
    return _FIELD.fullmatch(name) is not None


def has_value(name: str) -> sa.ColumnElement[bool]:
    """SQL, over `contacts`: the contact has a value for merge field `name` (a contact field, see
    `is_contact_field`; ValueError otherwise)."""
    if not is_contact_field(name):
        raise ValueError(f"{name!r} is not a contact's merge field")
    if name == "full_name":
        return sa.or_(_filled(Contact.first_name), _filled(Contact.last_name))
    if name in COLUMNS:
        return _filled(getattr(Contact, name))
    key = name.removeprefix(CUSTOM_PREFIX)
    if dialect_name() == "postgresql":
        field = Contact.custom_fields[key]
        return sa.and_(sa.func.jsonb_typeof(field).in_(("string", "number", "boolean")), _filled(field.as_string()))
    entries = sa.func.json_each(Contact.custom_fields).table_valued("key", "value", "type")
    return (
        sa.select(sa.literal(1))
        .select_from(entries)
        .where(
            entries.c.key == key,
            entries.c.type.in_(("text", "integer", "real", "true", "false")),
            _filled(entries.c.value),
        )
        .exists()
    )


def lacks_value(name: str) -> sa.ColumnElement[bool]:
    return sa.not_(has_value(name))


def _filled(expression) -> sa.ColumnElement[bool]:
    # NULL stays NULL through trim and length, and NULL > 0 is not true: a missing value.
    return sa.func.coalesce(sa.func.length(sa.func.trim(sa.cast(expression, sa.String))), 0) > 0

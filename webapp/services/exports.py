"""CSV exports: a workspace's contacts, a campaign's enrollments and its events.

The API and the dashboard call the same functions. Each checks access at once (another
workspace's campaign is NotFound before anything is sent) and returns a `CsvExport` whose rows
are produced lazily: BATCH rows at a time, each batch one keyset query ("after the last row
sent", on an index) in its own short transaction, which ends before the batch is handed on. So
an export of 100,000 rows holds neither all of them in memory nor a transaction while a slow
client reads, and a batch never skips or repeats rows however far the export has gone.

Every cell goes through `safe_cell`: a cell a spreadsheet would read as a formula is
neutralised. That rule is here once, for every CSV file Drumbeat writes.
"""

import csv
import io
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignEvent, CampaignInstance, Contact, SequenceStep, Workspace, utcnow
from webapp.services.bulk import dialect_name, one_of
from webapp.services.contacts import contact_filter
from webapp.services.enrollments import enrollment_filter
from webapp.services.lookups import get_owned

BATCH = 1_000
# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
# A byte-order mark, so that Excel reads the file as UTF-8 (names with accents stay readable).
BOM = "\ufeff"
CONTACT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "title",
    "linkedin_url",
    "timezone",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
)
# More distinct custom field names than this and the rest go, as JSON, in one last column.
MAX_CUSTOM_COLUMNS = 50
OTHER_CUSTOM_FIELDS = "other_custom_fields"
ENROLLMENT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "status",
    "status_reason",
    "current_step",
    "next_action_at",
    "enrolled_at",
    "completed_at",
    "last_event_type",
    "last_event_at",
)
# The metadata worth a column of its own: a click's url, a bounce's type and SMTP code, a
# task's or a reply's reason and text, the Message-ID of a send.
EVENT_METADATA = ("url", "bounce_type", "smtp_code", "reason", "snippet", "message_id")
EVENT_COLUMNS = ("occurred_at", "type", "step", "email", "channel", "provider", *EVENT_METADATA)


def safe_cell(value) -> str:
    """`value` as CSV text a spreadsheet shows as text: a cell starting with = + - @ tab, CR or
    NUL gets a leading single quote. Times are ISO 8601 (UTC), JSON values are JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | bool):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def unneutralise(text: str) -> str:
    """The value `safe_cell` wrote as `text`: an uploaded file that went through one of our CSV
    files (the invalid rows, fixed and sent again) keeps its original values."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def csv_text(rows: Iterable[Sequence], *, delimiter: str = ",") -> str:
    """Rows as CSV text, each cell through `safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return out.getvalue()


@dataclass
class CsvExport:
    """A CSV file to send: its name and its text, in chunks (the header row first)."""

    filename: str
    chunks: Iterator[str]


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60] or "campaign"


def _filename(*parts: str) -> str:
    return "-".join([*parts, utcnow().date().isoformat()]) + ".csv"


def _batches(query: sa.Select, keys: Callable[[sa.Row], tuple], after: Callable[[tuple], sa.ColumnElement]):
    """The rows of `query` (ordered by its keyset), BATCH at a time: each batch is the rows
    `after(keys(last row))`, read in a transaction of its own that ends before it is yielded."""
    last = None
    while True:
        page = query if last is None else query.where(after(last))
        try:
            rows = db.session.execute(page.limit(BATCH)).all()
        finally:
            # Read-only: ending the transaction returns the connection to the pool meanwhile.
            db.session.rollback()
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        last = keys(rows[-1])


def _after(time_column: sa.ColumnElement, id_column: sa.ColumnElement):
    """The keyset condition `(time, id) > (t, i)` as a row-value comparison, which both
    databases answer from the (…, time, id) index even when many rows share one time (a bulk
    enrollment gives thousands the same)."""

    def condition(last: tuple) -> sa.ColumnElement[bool]:
        at, row_id = last
        values = sa.tuple_(sa.literal(at, time_column.type), sa.literal(row_id, id_column.type))
        return sa.tuple_(time_column, id_column) > values

    return condition


def _stream(header: Sequence[str], batches: Iterator[list[list]]) -> Iterator[str]:
    yield BOM + csv_text([header])
    for rows in batches:
        yield csv_text(rows)


# Contacts.


def export_contacts(workspace: Workspace, *, search: str | None = None, status: str | None = None) -> CsvExport:
    """The workspace's contacts that the contacts list would show with these filters, by email.

    One column per custom field name (up to MAX_CUSTOM_COLUMNS, by name; any further ones as
    JSON in OTHER_CUSTOM_FIELDS), named as the import reads it back as a custom field."""
    conditions = contact_filter(workspace, search=search, status=status)
    return CsvExport(_filename("contacts"), _contact_chunks(conditions))


def _contact_chunks(conditions: list) -> Iterator[str]:
    names = _custom_field_names(conditions)
    shown, overflow = names[:MAX_CUSTOM_COLUMNS], len(names) > MAX_CUSTOM_COLUMNS
    header = [*CONTACT_COLUMNS, *(f"custom.{n}" if n in CONTACT_COLUMNS else n for n in shown)]
    if overflow:
        header.append(OTHER_CUSTOM_FIELDS)
    columns = [getattr(Contact, name) for name in CONTACT_COLUMNS]
    query = sa.select(*columns, Contact.custom_fields).where(*conditions).order_by(Contact.email)

    def rows():
        for batch in _batches(query, lambda row: (row.email,), lambda last: Contact.email > last[0]):
            out = []
            for row in batch:
                custom = row.custom_fields or {}
                line = [*row[: len(CONTACT_COLUMNS)], *(custom.get(name) for name in shown)]
                if overflow:
                    rest = {key: value for key, value in custom.items() if key not in shown}
                    line.append(rest or None)
                out.append(line)
            yield out

    # The custom columns are known before the first row: the header comes first.
    yield from _stream(header, rows())


def _custom_field_names(conditions: list) -> list[str]:
    """The custom field names the filtered contacts use, sorted (one query; only the names)."""
    json_each = sa.func.jsonb_each if dialect_name() == "postgresql" else sa.func.json_each
    each = json_each(Contact.custom_fields).table_valued("key")
    query = sa.select(each.c.key).select_from(Contact).join(each, sa.true()).where(*conditions)
    try:
        return sorted(db.session.scalars(query.distinct()))
    finally:
        db.session.rollback()


# A campaign's enrollments.


def export_enrollments(
    workspace: Workspace, instance_id: uuid.UUID, *, status: str | None = None, search: str | None = None
) -> CsvExport:
    """The campaign's enrollments that its enrollments list would show with these filters, in
    the order they enrolled: the contact, the status, the steps done, the next action, and the
    last event. NotFound for another workspace's campaign."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    query = (
        sa.select(
            CampaignEnrollment.id,
            Contact.email,
            Contact.first_name,
            Contact.last_name,
            Contact.company,
            CampaignEnrollment.status,
            CampaignEnrollment.status_reason,
            CampaignEnrollment.current_step,
            CampaignEnrollment.next_action_at,
            CampaignEnrollment.enrolled_at,
            CampaignEnrollment.completed_at,
        )
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(*enrollment_filter(instance, status=status, search=search))
        .order_by(CampaignEnrollment.enrolled_at, CampaignEnrollment.id)
    )
    batches = _batches(
        query,
        lambda row: (row.enrolled_at, row.id),
        _after(CampaignEnrollment.enrolled_at, CampaignEnrollment.id),
    )
    filename = _filename(_slug(instance.name), "enrollments")
    return CsvExport(filename, _stream(ENROLLMENT_COLUMNS, _with_last_events(batches)))


def _with_last_events(batches: Iterator[list]) -> Iterator[list[list]]:
    for batch in batches:
        last = _last_events([row.id for row in batch])
        yield [[*row[1:], *last.get(row.id, (None, None))] for row in batch]


def _last_events(enrollment_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    """Each enrollment's latest event, (type, time), in one query on the enrollment_id index."""
    rank = (
        sa.func.row_number()
        .over(
            partition_by=CampaignEvent.enrollment_id,
            order_by=(CampaignEvent.occurred_at.desc(), CampaignEvent.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        sa.select(CampaignEvent.enrollment_id, CampaignEvent.type, CampaignEvent.occurred_at, rank)
        .where(one_of(CampaignEvent.enrollment_id, enrollment_ids))
        .subquery()
    )
    try:
        rows = db.session.execute(
            sa.select(ranked.c.enrollment_id, ranked.c.type, ranked.c.occurred_at).where(ranked.c.rank == 1)
        ).all()
    finally:
        db.session.rollback()
    return {row.enrollment_id: (row.type, row.occurred_at) for row in rows}


# A campaign's events.


def export_events(workspace: Workspace, instance_id: uuid.UUID) -> CsvExport:
    """The campaign's events in time order: when, what, which step (its position), the
    contact's email, channel, provider and the key metadata (EVENT_METADATA). NotFound for
    another workspace's campaign."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    query = (
        sa.select(
            CampaignEvent.id,
            CampaignEvent.occurred_at,
            CampaignEvent.type,
            SequenceStep.position,
            Contact.email,
            CampaignEvent.channel,
            CampaignEvent.provider,
            CampaignEvent.meta,
        )
        .join(CampaignEnrollment, CampaignEnrollment.id == CampaignEvent.enrollment_id)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .outerjoin(SequenceStep, SequenceStep.id == CampaignEvent.step_id)
        .where(CampaignEvent.instance_id == instance.id, CampaignEvent.workspace_id == workspace.id)
        .order_by(CampaignEvent.occurred_at, CampaignEvent.id)
    )
    batches = _batches(
        query, lambda row: (row.occurred_at, row.id), _after(CampaignEvent.occurred_at, CampaignEvent.id)
    )
    rows = ([[*row[1:7], *((row.meta or {}).get(key) for key in EVENT_METADATA)] for row in batch] for batch in batches)
    return CsvExport(_filename(_slug(instance.name), "events"), _stream(EVENT_COLUMNS, rows))

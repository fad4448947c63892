"""Getting contacts in: pasted lists and CSV files of any size.

A CSV file is previewed first (encoding, delimiter, first rows, a suggested column mapping),
then stored as a `ContactImport` and processed in chunks of 5,000 rows through the same bulk
path as the API (`enrollments.enroll_contacts`), so every rule holds: suppressed contacts are
never enrolled, contacts live in another campaign are skipped unless the import allows them
(`allow_other_campaigns`), duplicates are counted, invalid rows are reported with their row number.
Small files are processed at once; large ones by the worker, with visible progress.
"""

import codecs
import csv
import io
import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from webapp.errors import NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignInstance, ContactImport, Workspace, utcnow
from webapp.models.enums import InstanceStatus
from webapp.services.enrollments import enroll_contacts, upsert_contact_items
from webapp.services.exports import csv_text, unneutralise
from webapp.services.lookups import get_owned

CHUNK_ROWS = 5_000
INLINE_ROWS = 5_000  # files up to this size are processed during the upload request
MAX_INVALID_KEPT = 10_000
MAX_PASTE_LINES = 10_000
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1", "utf-16")
FIELDS = ("email", "first_name", "last_name", "company", "title", "linkedin_url", "timezone")
# The reason column the invalid-rows file adds to the file's own columns.
ERROR_COLUMN = "import_error"
_HEADER_HINTS = {
    "email": ("email", "e-mail", "email address", "mail", "work email"),
    "first_name": ("first name", "firstname", "first", "given name", "prénom", "vorname"),
    "last_name": ("last name", "lastname", "last", "surname", "family name", "nom", "nachname"),
    "company": ("company", "company name", "organization", "organisation", "account", "firma"),
    "title": ("title", "job title", "position", "role"),
    "linkedin_url": ("linkedin", "linkedin url", "linkedin profile", "profile url"),
    "timezone": ("timezone", "time zone", "tz"),
}


@dataclass
class CsvPreview:
    encoding: str
    encoding_ok: bool
    delimiter: str
    headers: list[str]
    rows: list[list[str]]
    total_rows: int
    mapping: dict[str, str]
    error: str | None = None


def decode(data: bytes, encoding: str) -> str:
    """Strictly decode the whole file, or ValidationFailed naming the position."""
    if encoding not in ENCODINGS:
        raise ValidationFailed(f"Unsupported encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}.")
    try:
        return codecs.decode(data, encoding)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The file is not valid {encoding} (byte {exc.start}). Choose another encoding, such as cp1252 for "
            "files saved by Excel on Windows."
        ) from exc


def guess_encoding(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"


def _dialect(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample[:20_000], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def suggest_mapping(headers: list[str]) -> dict[str, str]:
    """Column index -> field, from the header names; unknown columns become custom fields."""
    mapping = {}
    taken = set()
    for index, header in enumerate(headers):
        name = header.strip().lower().replace("_", " ")
        field_name = next((f for f, hints in _HEADER_HINTS.items() if name in hints and f not in taken), None)
        if field_name is None and "@" in name:
            field_name = None
        if name == ERROR_COLUMN.replace("_", " "):
            mapping[str(index)] = "ignore"
        elif field_name:
            taken.add(field_name)
            mapping[str(index)] = field_name
        elif name:
            mapping[str(index)] = "custom:" + re.sub(r"[^a-z0-9_]+", "_", name).strip("_")[:64]
        else:
            mapping[str(index)] = "ignore"
    return mapping


def preview_csv(data: bytes, *, encoding: str | None = None, has_header: bool = True) -> CsvPreview:
    """The first rows of an uploaded file, how it decodes, and a suggested mapping."""
    if not data.strip():
        raise ValidationFailed("The file is empty.")
    chosen = encoding or guess_encoding(data)
    try:
        text = decode(data, chosen)
        ok, error = True, None
    except ValidationFailed as exc:
        text, ok, error = data.decode(chosen if chosen in ENCODINGS else "latin-1", "replace"), False, exc.message
    delimiter = _dialect(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = [row for _, row in zip(range(6), reader, strict=False)]
        total = sum(1 for _ in reader) + len(rows)
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not a readable CSV file: {exc}") from exc
    headers = rows[0] if has_header and rows else [f"Column {i + 1}" for i in range(len(rows[0]) if rows else 0)]
    body = rows[1:] if has_header else rows
    return CsvPreview(
        encoding=chosen,
        encoding_ok=ok,
        delimiter=delimiter,
        headers=headers,
        rows=body[:5],
        total_rows=max(0, total - (1 if has_header else 0)),
        mapping=suggest_mapping(headers),
        error=error,
    )


def _check_mapping(mapping: dict[str, str], columns: int) -> dict[str, str]:
    clean = {}
    for key, target in mapping.items():
        if not str(key).isdigit() or int(key) >= max(columns, 1):
            raise ValidationFailed(f"Mapping refers to column {key}, which the file does not have.")
        if target == "ignore":
            continue
        if target not in FIELDS and not re.fullmatch(r"custom:[a-z0-9_]{1,64}", target):
            raise ValidationFailed(f"Unknown field {target!r} in the column mapping.")
        if target in clean.values():
            raise ValidationFailed(f"Two columns are mapped to {target}.")
        clean[str(key)] = target
    if "email" not in clean.values():
        raise ValidationFailed("Map one column to email.", details=[{"field": "mapping", "message": "email needed"}])
    return clean


def create_import(
    workspace: Workspace,
    *,
    data: bytes,
    filename: str,
    encoding: str,
    mapping: dict[str, str],
    has_header: bool = True,
    instance_id: uuid.UUID | None = None,
    kind: str = "enroll",
    allow_other_campaigns: bool = False,
) -> ContactImport:
    """Validate and store an import. Small files are processed at once; the worker takes the rest.

    With `allow_other_campaigns`, an enroll import also enrolls contacts live in another campaign."""
    if instance_id is not None:
        instance = get_owned(CampaignInstance, workspace, instance_id)
        if instance.status == InstanceStatus.COMPLETED:
            raise ValidationFailed("The campaign is completed; contacts cannot be enrolled any more.")
    text = decode(data, encoding)
    delimiter = _dialect(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        first = next(reader, [])
        total = sum(1 for _ in reader) + (0 if has_header else 1)
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not a readable CSV file: {exc}") from exc
    if total == 0:
        raise ValidationFailed("The file has no data rows.")
    record = ContactImport(
        workspace_id=workspace.id,
        instance_id=instance_id,
        kind=kind,
        filename=(filename or "upload.csv")[:255],
        encoding=encoding,
        delimiter=delimiter,
        has_header=has_header,
        allow_other_campaigns=allow_other_campaigns and instance_id is not None,
        mapping=_check_mapping(mapping, len(first)),
        data=data,
        total_rows=total,
        invalid_rows=[],
    )
    db.session.add(record)
    db.session.commit()
    if total <= INLINE_ROWS:
        process_import(record.id)
    return record


def _rows(record: ContactImport):
    reader = csv.reader(io.StringIO(decode(record.data, record.encoding)), delimiter=record.delimiter)
    if record.has_header:
        next(reader, None)
    # Row numbers as a spreadsheet shows them (the header is row 1).
    yield from enumerate(reader, start=2 if record.has_header else 1)


def _item(row: list[str], mapping: dict[str, str]) -> dict:
    contact: dict = {}
    custom: dict = {}
    for key, target in mapping.items():
        # NUL cannot be stored in PostgreSQL text and never belongs in a contact field.
        value = unneutralise(row[int(key)].replace("\x00", "").strip()) if int(key) < len(row) else ""
        if not value:
            continue
        if target.startswith("custom:"):
            custom[target[7:]] = value[:1000]
        else:
            contact[target] = value
    if custom:
        contact["custom_fields"] = custom
    return {"contact": contact}


def claim_next_import() -> uuid.UUID | None:
    """The oldest pending import, marked processing (SKIP LOCKED: one worker takes it)."""
    record = db.session.scalar(
        sa.select(ContactImport)
        .where(ContactImport.status == "pending")
        .order_by(ContactImport.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if record is None:
        db.session.rollback()
        return None
    record.status, record.started_at = "processing", utcnow()
    db.session.commit()
    return record.id


def process_import(import_id: uuid.UUID) -> ContactImport:
    """Process an import chunk by chunk; each chunk commits, so progress shows and a crash resumes."""
    record = db.session.get(ContactImport, import_id)
    if record is None:
        raise NotFound(f"Import {import_id} not found.")
    workspace = db.session.get(Workspace, record.workspace_id)
    record.status, record.started_at = "processing", record.started_at or utcnow()
    db.session.commit()
    chunk: list[tuple[int, dict]] = []
    try:
        for number, row in _rows(record):
            if number - (2 if record.has_header else 1) < record.processed_rows:
                continue  # already done before a restart
            chunk.append((number, _item(row, record.mapping)))
            if len(chunk) >= CHUNK_ROWS:
                _process_chunk(workspace, record, chunk)
                chunk = []
        if chunk:
            _process_chunk(workspace, record, chunk)
    except ValidationFailed as exc:
        db.session.rollback()
        record = db.session.get(ContactImport, import_id)
        record.status, record.error, record.finished_at = "failed", exc.message, utcnow()
        db.session.commit()
        return record
    record.status, record.finished_at = "done", utcnow()
    db.session.commit()
    return record


def _process_chunk(workspace: Workspace, record: ContactImport, chunk: list[tuple[int, dict]]) -> None:
    items = [item for _, item in chunk]
    rows = [number for number, _ in chunk]  # the reasons name the file's rows
    if record.instance_id is not None:
        report = enroll_contacts(
            workspace, record.instance_id, items, allow_other_campaigns=record.allow_other_campaigns, rows=rows
        )
    else:
        report = upsert_contact_items(workspace, items, suppress=record.kind == "suppression", rows=rows)
    db.session.refresh(record)
    record.processed_rows += len(chunk)
    record.enrolled += report.enrolled
    record.already_enrolled += report.already_enrolled
    record.suppressed += report.suppressed
    record.in_other_campaign += report.in_other_campaign
    record.contacts_created += report.contacts_created
    record.invalid_count += len(report.invalid)
    kept = list(record.invalid_rows or [])
    for invalid in report.invalid:
        if len(kept) >= MAX_INVALID_KEPT:
            break
        kept.append({"row": invalid["row"], "reason": invalid["reason"]})
    record.invalid_rows = kept
    db.session.commit()


def get_import(workspace: Workspace, import_id: uuid.UUID) -> ContactImport:
    return get_owned(ContactImport, workspace, import_id)


def invalid_rows_csv(record: ContactImport) -> str:
    """The rows that were not imported, as the uploaded file had them: its header, its columns in
    their order, its delimiter, and one more column, ERROR_COLUMN, with the row number and the
    reason. Fix them and upload the file again: the suggested mapping ignores that column, and
    the cells neutralised against formulas read back as they were."""
    reasons = {item["row"]: item["reason"] for item in record.invalid_rows or []}
    reader = csv.reader(io.StringIO(decode(record.data, record.encoding)), delimiter=record.delimiter)
    header = next(reader, []) if record.has_header else None
    lines = [[*header, ERROR_COLUMN]] if header is not None else []
    width = len(header) if header is not None else None
    for number, row in enumerate(reader, start=2 if record.has_header else 1):
        if width is None:
            width = len(row)  # a file without a header: its first row gives the width
        if number in reasons:
            # Short rows are padded, so that the reason lines up in its own column.
            reason = reasons[number]  # worded for people, naming its row (older imports' did not)
            reason = reason if reason.startswith(f"row {number}") else f"row {number}: {reason}"
            lines.append([*row, *[""] * (width - len(row)), reason])
    return csv_text(lines, delimiter=record.delimiter)


_NAME_EMAIL = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^<>\s]+)>\s*$')


def parse_pasted(text: str) -> list[dict]:
    """Items from pasted lines: `ada@example.com`, `Ada Lovelace <ada@example.com>`, or
    comma/semicolon-separated addresses. Blank lines are ignored."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) > MAX_PASTE_LINES:
        raise ValidationFailed(f"Paste at most {MAX_PASTE_LINES} lines at once, or upload a CSV file.")
    items = []
    for line in lines:
        match = _NAME_EMAIL.match(line)
        if match:
            name, email = match.group(1).strip(), match.group(2)
            first, _, last = name.partition(" ")
            contact = {"email": email}
            if first:
                contact["first_name"] = first
            if last:
                contact["last_name"] = last.strip()
            items.append({"contact": contact})
            continue
        for part in re.split(r"[,;]+", line):
            if part.strip():
                items.append({"contact": {"email": part.strip()}})
    if not items:
        raise ValidationFailed("Paste at least one email address.")
    return items


__all__ = ["CsvPreview", "create_import", "parse_pasted", "preview_csv", "process_import"]

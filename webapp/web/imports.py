"""Getting contacts in from the dashboard: paste a list, or upload a CSV file, check its columns
and follow the import to its report.

One flow serves three kinds of import, each under its own URL prefix:
`enroll` (into a campaign), `contacts` (the contact list) and `suppression` (the suppression list).
Between the upload and the mapping, the file waits on the server under a random name that only
the signed session knows: the browser never sends the bytes back, so they cannot be swapped.
"""

import json
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, current_app, flash, make_response, redirect, request, session, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.extensions import csrf
from webapp.htmx import hx_redirect, hx_trigger, is_htmx, render
from webapp.models import CampaignInstance
from webapp.models.enums import InstanceStatus
from webapp.security import current_workspace, require_login
from webapp.services.enrollments import enroll_contacts
from webapp.services.imports import (
    ENCODINGS,
    create_import,
    get_import,
    invalid_rows_csv,
    parse_pasted,
    preview_csv,
)
from webapp.services.instances import get_instance

bp = Blueprint("imports", __name__)
bp.before_request(require_login)

MB = 1024 * 1024
UPLOAD_MAX_BYTES = 50 * MB
PENDING_TTL_SECONDS = 3600
PENDING_PER_SESSION = 5
SESSION_KEY = "pending_imports"
ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt")
# Files people pick by mistake: say what they are instead of previewing bytes as text.
BINARY_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (or another zip file)",
    b"\xd0\xcf\x11\xe0": "an old Excel or Word file",
    b"%PDF": "a PDF document",
}
ENCODING_LABELS = {
    "utf-8-sig": "UTF-8 (most files)",
    "cp1252": "Windows-1252 (Excel on Windows)",
    "latin-1": "Latin-1 (ISO-8859-1)",
    "utf-16": "UTF-16 (Excel “Unicode text”)",
}
FIELD_LABELS = (
    ("email", "Email"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("company", "Company"),
    ("title", "Job title"),
    ("linkedin_url", "LinkedIn URL"),
    ("timezone", "Time zone"),
)
KIND_PREFIXES = {
    "enroll": "/campaigns/<uuid:instance_id>/enroll",
    "contacts": "/contacts/import",
    "suppression": "/contacts/suppressed/import",
}
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class Target:
    """Where an import goes: a campaign (enroll), the contact list, or the suppression list."""

    kind: str
    instance: CampaignInstance | None = None

    @property
    def instance_id(self) -> uuid.UUID | None:
        return self.instance.id if self.instance is not None else None

    @property
    def scope(self) -> str:
        return f"enroll:{self.instance.id}" if self.instance is not None else self.kind

    @property
    def closed(self) -> bool:
        return self.instance is not None and self.instance.status == InstanceStatus.COMPLETED

    @property
    def title(self) -> str:
        return {"enroll": "Enroll contacts", "contacts": "Import contacts", "suppression": "Import a suppression list"}[
            self.kind
        ]

    @property
    def back_url(self) -> str:
        if self.instance is not None:
            # The campaign page belongs to the campaigns blueprint; its path is part of the design.
            return f"/campaigns/{self.instance.id}"
        return url_for("contacts.suppressed" if self.kind == "suppression" else "contacts.index")

    @property
    def back_label(self) -> str:
        if self.instance is not None:
            return self.instance.name
        return "Suppression list" if self.kind == "suppression" else "Contacts"

    def url(self, endpoint: str, **values) -> str:
        if self.instance is not None:
            values["instance_id"] = self.instance.id
        return url_for(f"imports.{endpoint}", kind=self.kind, **values)


def _target(kind: str, instance_id: uuid.UUID | None) -> Target:
    if kind == "enroll":
        return Target(kind, get_instance(current_workspace(), instance_id))
    return Target(kind)


def _rule(path: str, endpoint: str, view, methods: list[str], kinds=tuple(KIND_PREFIXES)) -> None:
    for kind in kinds:
        bp.add_url_rule(KIND_PREFIXES[kind] + path, endpoint, view, methods=methods, defaults={"kind": kind})


# Pending uploads: bytes on disk, their random name in the session.


def _pending_folder() -> Path:
    folder = Path(current_app.config.get("IMPORT_UPLOAD_FOLDER") or Path(current_app.instance_path) / "uploads")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _write_private(path: Path, payload: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)


def _purge_expired(folder: Path) -> None:
    limit = time.time() - PENDING_TTL_SECONDS
    for path in folder.glob("*.json"):
        try:
            if path.stat().st_mtime < limit:
                path.with_suffix(".data").unlink(missing_ok=True)
                path.unlink(missing_ok=True)
        except OSError:
            continue


def stash(scope: str, payload: bytes, **meta) -> None:
    """Keep `payload` for this session under `scope`, replacing what the scope held before."""
    discard(scope)
    folder = _pending_folder()
    _purge_expired(folder)
    token = secrets.token_urlsafe(24)
    _write_private(folder / f"{token}.data", payload)
    info = {**meta, "scope": scope, "workspace_id": str(current_workspace().id), "created": time.time()}
    _write_private(folder / f"{token}.json", json.dumps(info).encode())
    pending = {key: value for key, value in session.get(SESSION_KEY, {}).items() if key != scope}
    # The cookie keeps a few scopes only; the files of forgotten ones expire.
    pending = dict(list(pending.items())[-(PENDING_PER_SESSION - 1) :])
    pending[scope] = token
    session[SESSION_KEY] = pending


def unstash(scope: str) -> tuple[bytes, dict] | None:
    """The payload this session keeps under `scope` and its metadata, or None (none, or expired)."""
    token = session.get(SESSION_KEY, {}).get(scope)
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    folder = _pending_folder()
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
        payload = (folder / f"{token}.data").read_bytes()
    except (OSError, ValueError):
        return None
    fresh = time.time() - float(meta.get("created", 0)) < PENDING_TTL_SECONDS
    if not fresh or meta.get("scope") != scope or meta.get("workspace_id") != str(current_workspace().id):
        discard(scope)
        return None
    return payload, meta


def discard(scope: str) -> None:
    """Forget what this session keeps under `scope` and delete its files."""
    pending = dict(session.get(SESSION_KEY, {}))
    token = pending.pop(scope, None)
    if token is None:
        return
    session[SESSION_KEY] = pending
    if isinstance(token, str) and _TOKEN.fullmatch(token):
        folder = _pending_folder()
        (folder / f"{token}.data").unlink(missing_ok=True)
        (folder / f"{token}.json").unlink(missing_ok=True)


# Step 0: the page with both ways in (paste, upload).


def new(kind: str, instance_id: uuid.UUID | None = None):
    """Paste addresses or upload a CSV file."""
    target = _target(kind, instance_id)
    return _new_page(target)


def _new_page(target: Target, status: int = 200, block: str | None = None, **context) -> Response:
    return render(
        "imports/new.html", block=block, status=status, target=target, max_mb=UPLOAD_MAX_BYTES // MB, **context
    )


def _allow_other_campaigns(values) -> bool:
    """The "Also enroll contacts who are live in another campaign" box (off unless ticked)."""
    return values.get("allow_other_campaigns") == "1"


def paste(kind: str, instance_id: uuid.UUID | None = None):
    """Enroll pasted addresses at once; the report follows."""
    target = _target(kind, instance_id)
    text = request.form.get("addresses", "")
    allow = _allow_other_campaigns(request.form)
    try:
        items = parse_pasted(text)
        report = enroll_contacts(current_workspace(), target.instance_id, items, allow_other_campaigns=allow)
    except (ValidationFailed, Conflict) as exc:
        return _new_page(
            target, 422, block="paste", paste_text=text, paste_error=exc.message, allow_other_campaigns=allow
        )
    summary = {
        "enrolled": report.enrolled,
        "already_enrolled": report.already_enrolled,
        "suppressed": report.suppressed,
        "in_other_campaign": report.in_other_campaign,
        "contacts_created": report.contacts_created,
        "invalid": [
            {"entry": invalid["row"], "value": _item_email(items[invalid["index"]]), "reason": invalid["reason"]}
            for invalid in report.invalid
        ],
        # Valid entries not enrolled: live in another campaign (the detail names it).
        "skipped": [
            {"entry": skipped["index"] + 1, "value": _item_email(items[skipped["index"]]), "reason": skipped["detail"]}
            for skipped in report.skipped
        ],
    }
    if is_htmx():
        response = _new_page(target, block="paste", report=summary)
        return hx_trigger(response, "toast", {"message": _paste_message(summary), "level": "success"})
    stash(f"paste:{target.instance_id}", json.dumps(summary).encode())
    return redirect(target.url("pasted"), 303)


def _item_email(item: dict) -> str:
    return str((item.get("contact") or {}).get("email", ""))[:200]


def _paste_message(summary: dict) -> str:
    message = f"{summary['enrolled']} enrolled, {len(summary['invalid'])} invalid"
    if summary.get("in_other_campaign"):
        message += f", {summary['in_other_campaign']} skipped as live in another campaign"
    return message + "."


def pasted(kind: str, instance_id: uuid.UUID | None = None):
    """The report of this session's last paste into the campaign."""
    target = _target(kind, instance_id)
    kept = unstash(f"paste:{target.instance_id}")
    if kept is None:
        flash("That report is no longer available; paste the addresses again to see a new one.", "warning")
        return redirect(target.url("new"), 303)
    report = json.loads(kept[0])
    report.setdefault("in_other_campaign", 0)  # reports kept before the option existed
    report.setdefault("skipped", [])
    return _new_page(target, report=report)


# Step 1: upload.


@csrf.exempt
def upload(kind: str, instance_id: uuid.UUID | None = None):
    """Receive a CSV file and keep it for the preview."""
    # This view accepts bigger bodies than the app's default. The CSRF token is in the body, so it
    # is checked here, once the limit is raised, instead of by the app-wide hook.
    request.max_content_length = UPLOAD_MAX_BYTES
    try:
        file = request.files.get("file")
    except RequestEntityTooLarge:
        target = _target(kind, instance_id)
        message = f"The file is larger than {UPLOAD_MAX_BYTES // MB} MB. Split it into smaller files and upload each."
        return _new_page(target, 413, upload_error=message)
    csrf.protect()
    target = _target(kind, instance_id)
    if target.closed:
        return _new_page(target, 422, upload_error="The campaign is completed; contacts cannot be enrolled any more.")
    if file is None or not file.filename:
        return _new_page(target, 422, upload_error="Choose a CSV file to upload.")
    filename = Path(file.filename.replace("\\", "/")).name[:255] or "upload.csv"
    if not filename.lower().endswith(ALLOWED_SUFFIXES):
        return _new_page(target, 422, upload_error=f"{filename} is not a CSV file. Choose a .csv file (or .tsv, .txt).")
    data = file.read()
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            message = f"{filename} looks like {what}, not a CSV file. Save it as CSV, then upload that."
            return _new_page(target, 422, upload_error=message)
    try:
        preview_csv(data)
    except ValidationFailed as exc:
        return _new_page(target, 422, upload_error=exc.message)
    stash(target.scope, data, filename=filename)
    return redirect(target.url("preview"), 303)


# Step 2: preview and column mapping.


def _has_header(values) -> bool:
    # The form sends has_header=0 always and has_header=1 when the box is ticked; absent = default.
    given = values.getlist("has_header")
    return "1" in given if given else True


def _custom_name(header: str, index: int) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", header.strip().lower()).strip("_")[:64] or f"column_{index + 1}"


def column_options(header: str, index: int) -> list[tuple[str, str]]:
    custom = _custom_name(header, index)
    return [*FIELD_LABELS, (f"custom:{custom}", f"Custom field “{custom}”"), ("ignore", "Ignore this column")]


def column_samples(csv_preview, index: int) -> list[str]:
    """A few non-blank values of a column, as a hint beside its select."""
    return [row[index].strip()[:40] for row in csv_preview.rows if index < len(row) and row[index].strip()][:3]


def _pending_or_restart(target: Target):
    kept = unstash(target.scope)
    if kept is None:
        flash("The uploaded file is no longer here (it is kept for an hour). Upload it again.", "warning")
    return kept


def preview(kind: str, instance_id: uuid.UUID | None = None):
    """The first rows of the uploaded file, its encoding and a column mapping to confirm."""
    target = _target(kind, instance_id)
    kept = _pending_or_restart(target)
    if kept is None:
        return redirect(target.url("new"), 303)
    data, meta = kept
    has_header = _has_header(request.args)
    encoding = request.args.get("encoding") or None
    return _preview_page(target, data, meta, encoding=encoding, has_header=has_header)


def _preview_page(
    target: Target,
    data: bytes,
    meta: dict,
    *,
    encoding: str | None,
    has_header: bool,
    mapping: dict | None = None,
    error: str | None = None,
    status: int = 200,
    allow_other_campaigns: bool = False,
) -> Response:
    try:
        csv_preview = preview_csv(data, encoding=encoding, has_header=has_header)
    except ValidationFailed as exc:
        csv_preview, error, status = None, exc.message, 422
    return render(
        "imports/preview.html",
        block="preview",
        status=status,
        target=target,
        preview=csv_preview,
        filename=meta.get("filename", "upload.csv"),
        has_header=has_header,
        mapping=mapping if mapping is not None else (csv_preview.mapping if csv_preview else {}),
        encodings=[(name, ENCODING_LABELS.get(name, name)) for name in ENCODINGS],
        column_options=column_options,
        column_samples=column_samples,
        error=error,
        allow_other_campaigns=allow_other_campaigns,
    )


def create(kind: str, instance_id: uuid.UUID | None = None):
    """Import the uploaded file with the confirmed mapping; the report (or progress) follows."""
    target = _target(kind, instance_id)
    kept = _pending_or_restart(target)
    if kept is None:
        return hx_redirect(target.url("new"))
    data, meta = kept
    encoding = request.form.get("encoding", "")
    has_header = request.form.get("has_header") == "1"
    allow = _allow_other_campaigns(request.form) and target.kind == "enroll"
    mapping = {key.removeprefix("column-"): value for key, value in request.form.items() if key.startswith("column-")}
    try:
        record = create_import(
            current_workspace(),
            data=data,
            filename=meta.get("filename", "upload.csv"),
            encoding=encoding,
            mapping=mapping,
            has_header=has_header,
            instance_id=target.instance_id,
            kind=target.kind,
            allow_other_campaigns=allow,
        )
    except ValidationFailed as exc:
        return _preview_page(
            target,
            data,
            meta,
            encoding=encoding,
            has_header=has_header,
            mapping=mapping,
            error=exc.message,
            status=422,
            allow_other_campaigns=allow,
        )
    discard(target.scope)
    return hx_redirect(target.url("show", import_id=record.id))


# Step 3: progress and report.


def _record(target: Target, import_id: uuid.UUID):
    record = get_import(current_workspace(), import_id)
    if record.kind != target.kind or record.instance_id != target.instance_id:
        raise NotFound(f"Import {import_id} not found.")
    return record


def show(kind: str, import_id: uuid.UUID, instance_id: uuid.UUID | None = None):
    """An import's progress while it runs, then its report; htmx polls the `import_status` block."""
    target = _target(kind, instance_id)
    record = _record(target, import_id)
    return render("imports/show.html", block="import_status", target=target, record=record)


def invalid_rows(kind: str, import_id: uuid.UUID, instance_id: uuid.UUID | None = None):
    """The rows that were not imported, with the reason, as a spreadsheet-safe CSV download."""
    target = _target(kind, instance_id)
    record = _record(target, import_id)
    # A byte-order mark, so Excel reads the reasons (which quote the rows' values) as UTF-8.
    response = make_response("\ufeff" + invalid_rows_csv(record))
    response.mimetype = "text/csv"
    response.headers["Content-Disposition"] = f'attachment; filename="invalid-rows-{record.id}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


_rule("", "new", new, ["GET"])
_rule("/paste", "paste", paste, ["POST"], kinds=("enroll",))
_rule("/pasted", "pasted", pasted, ["GET"], kinds=("enroll",))
_rule("/upload", "upload", upload, ["POST"])
_rule("/csv", "preview", preview, ["GET"])
_rule("/csv", "create", create, ["POST"])
_rule("/<uuid:import_id>", "show", show, ["GET"])
_rule("/<uuid:import_id>/invalid-rows.csv", "invalid_rows", invalid_rows, ["GET"])

"""Event intake: verify elsewhere, then dedupe, store, count and apply here.

Events are stored once per (workspace, provider, provider_event_id); a redelivered event
changes nothing. Stored events update the daily rollups that the performance endpoint
reads, and stop enrollments: a reply ends the enrollment as replied; an unsubscribe, a
complaint or a hard bounce also suppresses the contact in the whole workspace.
"""

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import (
    NIL_UUID,
    CampaignEnrollment,
    CampaignEvent,
    CampaignInstance,
    CampaignTemplate,
    Contact,
    EventFirst,
    EventRollup,
    SequenceStep,
    Workspace,
    utcnow,
)
from webapp.models.enums import LIVE_ENROLLMENT_STATUSES, ContactStatus, EnrollmentStatus, EventType
from webapp.schemas.events import EventIn
from webapp.services.bulk import bulk_insert, dialect_name, one_of
from webapp.services.contacts import suppress_contacts

UNIQUE_TYPES = (EventType.OPENED, EventType.CLICKED)
STOPPING_TYPES = (EventType.REPLIED, EventType.BOUNCED, EventType.UNSUBSCRIBED, EventType.COMPLAINED)
DEFAULT_STOP_ON = ("reply", "bounce", "unsubscribe")


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: list[dict] = field(default_factory=list)


@dataclass
class _Target:
    enrollment_id: uuid.UUID
    instance_id: uuid.UUID


def ingest_events(workspace: Workspace, events: list[EventIn], *, provider: str = "api") -> IngestResult:
    """Store and apply a batch of validated events in one transaction."""
    result = IngestResult(received=len(events))
    targets = _resolve_targets(workspace, events)
    valid_steps = _steps_by_instance({t.instance_id for t in targets.values() if t})
    now = utcnow()
    rows, seen = [], set()
    for index, event in enumerate(events):
        target = targets.get(index)
        if target is None:
            result.skipped.append({"index": index, "reason": "no enrollment matches this event in the workspace"})
            continue
        if event.step_id is not None and event.step_id not in valid_steps.get(target.instance_id, ()):
            result.skipped.append({"index": index, "reason": f"step {event.step_id} is not part of this campaign"})
            continue
        if event.provider_event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event.provider_event_id)
        rows.append(
            {
                "workspace_id": workspace.id,
                "instance_id": target.instance_id,
                "enrollment_id": target.enrollment_id,
                "step_id": event.step_id,
                "channel": event.channel,
                "type": event.type,
                "provider": provider,
                "provider_event_id": event.provider_event_id,
                "occurred_at": event.occurred_at or now,
                "metadata": event.metadata or {},
            }
        )
    result.stored, stopping = _store_and_count(rows)
    result.duplicates += len(rows) - result.stored
    _apply(workspace, stopping)
    db.session.commit()
    return result


def storable(value):
    """`value` with what PostgreSQL refuses in text and JSONB taken out of every string: NUL
    characters removed, unpaired surrogates replaced by U+FFFD. A provider's payload must not
    turn into a 500 that the provider retries forever."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(_replace_unstorable, value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# How json.dumps (ASCII output) writes them; surrogate pairs of valid characters match too, harmlessly.
_UNSTORABLE_ESCAPES = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _replace_unstorable(match: re.Match) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def record_event(
    workspace: Workspace,
    *,
    enrollment: CampaignEnrollment,
    type: str,
    provider: str,
    provider_event_id: str,
    step_id: uuid.UUID | None = None,
    channel: str = "email",
    occurred_at: datetime | None = None,
    metadata: dict | None = None,
) -> bool:
    """Store one event produced inside Drumbeat (a send, a pixel open). Flushes; the caller commits.

    Returns False when the event was already stored.
    """
    now = utcnow()
    row = {
        "workspace_id": workspace.id,
        "instance_id": enrollment.instance_id,
        "enrollment_id": enrollment.id,
        "step_id": step_id,
        "channel": channel,
        "type": type,
        "provider": provider,
        "provider_event_id": provider_event_id,
        "occurred_at": occurred_at or now,
        "metadata": metadata or {},
    }
    stored, stopping = _store_and_count([row])
    _apply(workspace, stopping)
    return stored == 1


def store_internal_events(rows: list[dict]) -> int:
    """Store events Drumbeat produced itself (sends) and count them; no stop rules apply.
    Flushes; the caller commits. Returns how many were new."""
    return _store_and_count(rows)[0]


def _store_and_count(rows: list[dict]) -> tuple[int, list[dict]]:
    """Insert the event `rows` (skipping those already stored), count the new ones in the
    first-event and rollup tables, and return how many were new with the new ones that can stop
    an enrollment (replies, bounces, unsubscribes, complaints) for `_apply`."""
    if not rows:
        return 0, []
    if dialect_name() == "postgresql":
        return _store_and_count_postgresql(rows)
    now = utcnow()
    rows = [{"id": uuid.uuid4(), **storable(row), "created_at": now} for row in rows]
    table = CampaignEvent.__table__
    stored = bulk_insert(
        table, rows, conflict=("workspace_id", "provider", "provider_event_id"), returning=(table.c.id,)
    )
    by_id = {row["id"]: row for row in rows}
    stored_rows = [by_id[row.id] for row in stored]
    if stored_rows:
        _update_rollups(stored_rows)
    stopping = [
        {**row, "bounce_type": (row["metadata"] or {}).get("bounce_type")}
        for row in stored_rows
        if row["type"] in STOPPING_TYPES
    ]
    return len(stored_rows), stopping


# PostgreSQL does it all in one statement: the events arrive as one JSON document (the cheapest
# way to send 1,000 rows of mixed types), and the rows that the INSERT returns feed the first-event
# and rollup upserts (the same counting as _update_rollups). Upserts go in key order so that
# concurrent batches lock rows in the same order.
_EVENT_COLUMNS = {
    "workspace_id": "uuid",
    "instance_id": "uuid",
    "enrollment_id": "uuid",
    "step_id": "uuid",
    "channel": "text",
    "type": "text",
    "provider": "text",
    "provider_event_id": "text",
    "occurred_at": "timestamptz",
    "metadata": "jsonb",
}
_INGEST_SQL = f"""
WITH ins AS (
    INSERT INTO campaign_events (id, {", ".join(_EVENT_COLUMNS)}, created_at)
    SELECT gen_random_uuid(), {", ".join(f"t.{c}" for c in _EVENT_COLUMNS)}, %(now)s
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS t({", ".join(f"{c} {t}" for c, t in _EVENT_COLUMNS.items())})
    ON CONFLICT (workspace_id, provider, provider_event_id) DO NOTHING
    RETURNING instance_id, enrollment_id, step_id, type, occurred_at, metadata
), candidates AS (
    SELECT DISTINCT ON (ins.enrollment_id, s.step_id, ins.type)
        ins.enrollment_id, s.step_id, ins.type, ins.instance_id, (ins.occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM ins CROSS JOIN LATERAL (VALUES (%(nil)s::uuid), (ins.step_id)) AS s(step_id)
    WHERE ins.type IN ('opened', 'clicked') AND s.step_id IS NOT NULL
    ORDER BY ins.enrollment_id, s.step_id, ins.type, ins.occurred_at
), firsts AS (
    INSERT INTO event_firsts (enrollment_id, step_id, type)
    SELECT enrollment_id, step_id, type FROM candidates ORDER BY enrollment_id, step_id, type
    ON CONFLICT DO NOTHING
    RETURNING enrollment_id, step_id, type
), counted AS (
    SELECT instance_id, coalesce(step_id, %(nil)s::uuid) AS step_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
        type
    FROM ins
    UNION ALL
    SELECT c.instance_id, c.step_id, c.day,
        CASE WHEN c.step_id = %(nil)s::uuid THEN 'unique:' ELSE 'unique_step:' END || c.type
    FROM firsts JOIN candidates AS c USING (enrollment_id, step_id, type)
), rollups AS (
    INSERT INTO event_rollups (instance_id, step_id, day, type, n)
    SELECT instance_id, step_id, day, type, count(*) FROM counted GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (instance_id, step_id, day, type) DO UPDATE SET n = event_rollups.n + excluded.n
)
SELECT total.n, ins.enrollment_id, ins.instance_id, ins.type, ins.occurred_at, ins.metadata ->> 'bounce_type'
FROM (SELECT count(*) AS n FROM ins) AS total
LEFT JOIN ins ON ins.type IN ('replied', 'bounced', 'unsubscribed', 'complained')
"""


def _store_and_count_postgresql(rows: list[dict]) -> tuple[int, list[dict]]:
    # UUIDs and datetimes go as their str(), which PostgreSQL reads back exactly.
    document = json.dumps(rows, default=str)
    if _UNSTORABLE_ESCAPES.search(document):
        document = json.dumps(storable(rows), default=str)
    params = {"rows": document, "now": utcnow(), "nil": NIL_UUID}
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        result = cursor.execute(_INGEST_SQL, params).fetchall()
    stopping = [
        {"enrollment_id": r[1], "instance_id": r[2], "type": r[3], "occurred_at": r[4], "bounce_type": r[5]}
        for r in result
        if r[1] is not None
    ]
    return result[0][0], stopping


def _resolve_targets(workspace: Workspace, events: list[EventIn]) -> dict[int, _Target | None]:
    by_id = list({e.enrollment_id for e in events if e.enrollment_id is not None})
    by_email = {(e.instance_id, e.email) for e in events if e.enrollment_id is None}
    found_id, found_email = {}, {}
    # By id: no need to join contacts (the common case for our own format and providers).
    base = sa.select(CampaignEnrollment.id, CampaignEnrollment.instance_id).where(
        CampaignEnrollment.workspace_id == workspace.id
    )
    for start in range(0, len(by_id), 1000):
        query = base.where(one_of(CampaignEnrollment.id, by_id[start : start + 1000]))
        found_id.update((row[0], _Target(*row)) for row in db.session.execute(query).tuples())
    if by_email:
        instances = {instance_id for instance_id, _ in by_email}
        emails = list({email for _, email in by_email})
        with_email = base.add_columns(Contact.email).join(Contact, Contact.id == CampaignEnrollment.contact_id)
        for start in range(0, len(emails), 1000):
            query = with_email.where(
                one_of(CampaignEnrollment.instance_id, instances), one_of(Contact.email, emails[start : start + 1000])
            )
            found_email.update(((row[1], row[2]), _Target(*row[:2])) for row in db.session.execute(query).tuples())
    return {
        index: (
            found_id.get(e.enrollment_id) if e.enrollment_id is not None else found_email.get((e.instance_id, e.email))
        )
        for index, e in enumerate(events)
    }


def _steps_by_instance(instance_ids: set) -> dict[uuid.UUID, set[uuid.UUID]]:
    steps: dict[uuid.UUID, set[uuid.UUID]] = {}
    if instance_ids:
        query = (
            sa.select(CampaignInstance.id, SequenceStep.id)
            .join(SequenceStep, SequenceStep.template_id == CampaignInstance.template_id)
            .where(CampaignInstance.id.in_(instance_ids))
        )
        for instance_id, step_id in db.session.execute(query):
            steps.setdefault(instance_id, set()).add(step_id)
    return steps


def _update_rollups(rows: list[dict]) -> None:
    counts: Counter = Counter()
    firsts = []
    for row in rows:
        step = row["step_id"] or NIL_UUID
        day = row["occurred_at"].date()
        counts[(row["instance_id"], step, day, row["type"])] += 1
        if row["type"] in UNIQUE_TYPES:
            firsts.append((row, NIL_UUID))
            if step != NIL_UUID:
                firsts.append((row, step))
    if firsts:
        first_rows, keys = [], set()
        for row, step in sorted(firsts, key=lambda item: item[0]["occurred_at"]):
            key = (row["enrollment_id"], step, row["type"])
            if key not in keys:
                keys.add(key)
                first_rows.append(({"enrollment_id": key[0], "step_id": step, "type": row["type"]}, row))
        table = EventFirst.__table__
        inserted = bulk_insert(
            table,
            [r for r, _ in first_rows],
            conflict=("enrollment_id", "step_id", "type"),
            returning=(table.c.enrollment_id, table.c.step_id, table.c.type),
        )
        new = {(r.enrollment_id, r.step_id, r.type) for r in inserted}
        for first, row in first_rows:
            if (first["enrollment_id"], first["step_id"], first["type"]) in new:
                prefix = "unique" if first["step_id"] == NIL_UUID else "unique_step"
                counts[
                    (row["instance_id"], first["step_id"], row["occurred_at"].date(), f"{prefix}:{row['type']}")
                ] += 1
    table = EventRollup.__table__
    rollup_rows = [
        {"instance_id": k[0], "step_id": k[1], "day": k[2], "type": k[3], "n": n}
        for k, n in sorted(counts.items(), key=lambda item: (str(item[0][0]), str(item[0][1]), item[0][2], item[0][3]))
    ]
    bulk_insert(
        table,
        rollup_rows,
        conflict=("instance_id", "step_id", "day", "type"),
        update=lambda current, excluded: {"n": current.n + excluded.n},
        returning=(table.c.n,),
    )


def _apply(workspace: Workspace, stopping: list[dict]) -> None:
    """Stop enrollments and suppress contacts for the new stopping events (from _store_and_count).
    The first stopping event of an enrollment, and of a contact, decides its status."""
    if not stopping:
        return
    query = (
        sa.select(
            CampaignEnrollment.id, CampaignEnrollment.contact_id, CampaignInstance.settings, CampaignTemplate.settings
        )
        .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
        .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
        .where(one_of(CampaignEnrollment.id, {row["enrollment_id"] for row in stopping}))
    )
    enrollments = {
        enrollment_id: (contact_id, _stop_on(instance_settings, template_settings))
        for enrollment_id, contact_id, instance_settings, template_settings in db.session.execute(query)
    }
    stops: dict[uuid.UUID, str] = {}  # enrollment -> status
    suppress: dict[uuid.UUID, str] = {}  # contact -> status
    for row in sorted(stopping, key=lambda r: r["occurred_at"]):
        enrollment_id, kind = row["enrollment_id"], row["type"]
        contact_id, stop_on = enrollments[enrollment_id]
        if kind == EventType.REPLIED:
            if "reply" in stop_on:
                stops.setdefault(enrollment_id, EnrollmentStatus.REPLIED)
        elif kind == EventType.BOUNCED:
            if row["bounce_type"] == "soft":
                continue
            suppress.setdefault(contact_id, ContactStatus.BOUNCED)
            if "bounce" in stop_on:
                stops.setdefault(enrollment_id, EnrollmentStatus.BOUNCED)
        else:  # unsubscribed, complained
            status = ContactStatus.UNSUBSCRIBED if kind == EventType.UNSUBSCRIBED else ContactStatus.COMPLAINED
            suppress.setdefault(contact_id, status)
            stops.setdefault(enrollment_id, EnrollmentStatus.UNSUBSCRIBED)
    now = utcnow()
    for status, enrollment_ids in _grouped(stops).items():
        for start in range(0, len(enrollment_ids), 500):
            db.session.execute(
                sa.update(CampaignEnrollment)
                .where(
                    one_of(CampaignEnrollment.id, enrollment_ids[start : start + 500]),
                    CampaignEnrollment.status.in_(LIVE_ENROLLMENT_STATUSES),
                )
                .values(
                    status=status,
                    status_reason=f"{status} (event)",
                    next_action_at=None,
                    completed_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
    for status, contact_ids in _grouped(suppress).items():
        suppress_contacts(workspace, contact_ids, status=status, reason=f"{status} (event)")


def _grouped(statuses: dict[uuid.UUID, str]) -> dict[str, list[uuid.UUID]]:
    groups: dict[str, list[uuid.UUID]] = {}
    for key, status in statuses.items():
        groups.setdefault(status, []).append(key)
    return groups


def _stop_on(instance_settings: dict | None, template_settings: dict | None) -> set[str]:
    stop_on = (instance_settings or {}).get("stop_on", (template_settings or {}).get("stop_on"))
    return set(DEFAULT_STOP_ON if stop_on is None else stop_on)

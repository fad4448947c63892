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
from webapp.models.enums import ContactStatus, EventType
from webapp.schemas.events import EventIn
from webapp.services import lifecycle
from webapp.services.bulk import bulk_insert, dialect_name, one_of
from webapp.services.contacts import suppress_contacts
from webapp.services.sending.settings import campaign_stop_on

# What each event type counts once per contact (enrollment), in event_firsts and in the rollups as
# unique:<kind> (any step) and unique_step:<kind>: the per-contact numbers and rates of
# services.analytics. An email sent or a task done means the contact was contacted; a complaint
# counts as an unsubscribe.
FIRST_KINDS: dict[str, tuple[str, ...]] = {
    EventType.SENT: ("sent", "contacted"),
    EventType.TASK_COMPLETED: ("contacted",),
    EventType.OPENED: ("opened",),
    EventType.CLICKED: ("clicked",),
    EventType.REPLIED: ("replied",),
    EventType.BOUNCED: ("bounced",),
    EventType.UNSUBSCRIBED: ("unsubscribed",),
    EventType.COMPLAINED: ("unsubscribed",),
}
STOPPING_TYPES = (EventType.REPLIED, EventType.BOUNCED, EventType.UNSUBSCRIBED, EventType.COMPLAINED)
NO_ENROLLMENT = "no enrollment matches this event in the workspace"


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: list[dict] = field(default_factory=list)


def ingest_events(workspace: Workspace, events: list[EventIn], *, provider: str = "api") -> IngestResult:
    """Store and apply a batch of validated events in one transaction."""
    result = IngestResult(received=len(events))
    by_email = _enrollments_by_email(workspace, events)
    now = utcnow()
    rows, indexes = [], []
    for index, event in enumerate(events):
        enrollment_id = event.enrollment_id
        if enrollment_id is None:
            enrollment_id = by_email.get((event.instance_id, event.email))
        if enrollment_id is None:
            result.skipped.append({"index": index, "reason": NO_ENROLLMENT})
            continue
        indexes.append(index)
        rows.append(
            {
                "workspace_id": workspace.id,
                "enrollment_id": enrollment_id,
                "step_id": event.step_id,
                "channel": event.channel,
                "type": event.type,
                "provider": provider,
                "provider_event_id": event.provider_event_id,
                "occurred_at": event.occurred_at or now,
                "metadata": event.metadata or {},
            }
        )
    _to_own_steps(rows)
    outcome = _store_and_count(rows)
    for position, reason in outcome.refused:
        result.skipped.append({"index": indexes[position], "reason": reason})
    result.skipped.sort(key=lambda item: item["index"])
    result.stored = outcome.stored
    result.duplicates = len(rows) - len(outcome.refused) - outcome.stored
    _apply(workspace, outcome.stopping)
    db.session.commit()
    return result


def _to_own_steps(rows: list[dict]) -> None:
    """A launched campaign runs its own copy of its template's steps; a script that names the
    template's step (the id it knows from `GET /templates/:id`) means the campaign's step at the
    same position. Rewrites those `step_id`s in place. Small indexed queries: one when every row
    names a campaign's own step, as providers' events (found by delivery) do."""
    named = {row["step_id"] for row in rows if row["step_id"] is not None}
    if not named:
        return
    template_steps = db.session.execute(
        sa.select(SequenceStep.id, SequenceStep.template_id, SequenceStep.position)
        .join(CampaignTemplate, CampaignTemplate.id == SequenceStep.template_id)
        .where(one_of(SequenceStep.id, named), CampaignTemplate.campaign_copy.is_(False))
    ).all()
    if not template_steps:
        return
    campaigns = db.session.execute(
        sa.select(CampaignInstance.id, CampaignInstance.source_template_id, CampaignInstance.template_id).where(
            one_of(CampaignInstance.source_template_id, {step.template_id for step in template_steps}),
            CampaignInstance.template_id != CampaignInstance.source_template_id,
        )
    ).all()
    if not campaigns:
        return
    own = {
        (row.template_id, row.position): row.id
        for row in db.session.execute(
            sa.select(SequenceStep.id, SequenceStep.template_id, SequenceStep.position).where(
                one_of(SequenceStep.template_id, {campaign.template_id for campaign in campaigns})
            )
        )
    }
    copy_of = {campaign.id: campaign.template_id for campaign in campaigns}
    campaign_of = dict(
        db.session.execute(
            sa.select(CampaignEnrollment.id, CampaignEnrollment.instance_id).where(
                one_of(CampaignEnrollment.id, {row["enrollment_id"] for row in rows}),
                one_of(CampaignEnrollment.instance_id, set(copy_of)),
            )
        ).all()
    )
    made_from = {campaign.id: campaign.source_template_id for campaign in campaigns}
    step_of = {step.id: (step.template_id, step.position) for step in template_steps}
    for row in rows:
        instance_id, step = campaign_of.get(row["enrollment_id"]), step_of.get(row["step_id"])
        if instance_id is not None and step is not None and step[0] == made_from[instance_id]:
            row["step_id"] = own.get((copy_of[instance_id], step[1]), row["step_id"])


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
    actor: lifecycle.Actor = lifecycle.Actor.EVENT,
) -> bool:
    """Store one event produced inside Drumbeat (a pixel open, a task done, a bounce at send
    time). A stopping event stops the enrollment as `actor`. Flushes; the caller commits.

    Returns False when the event was already stored.
    """
    now = utcnow()
    row = {
        "workspace_id": workspace.id,
        "enrollment_id": enrollment.id,
        "step_id": step_id,
        "channel": channel,
        "type": type,
        "provider": provider,
        "provider_event_id": provider_event_id,
        "occurred_at": occurred_at or now,
        "metadata": metadata or {},
    }
    return record_events(workspace, [row], actor) == 1


def record_events(workspace: Workspace, rows: list[dict], actor: lifecycle.Actor = lifecycle.Actor.EVENT) -> int:
    """Store events Drumbeat read or produced itself (rows shaped as `record_event` builds them)
    and apply the stopping ones as `actor`. Flushes; the caller commits. Returns how many were new."""
    outcome = _store_and_count(rows)
    _apply(workspace, outcome.stopping, actor)
    return outcome.stored


def store_internal_events(rows: list[dict]) -> int:
    """Store events Drumbeat produced itself (sends) and count them; no stop rules apply.
    Flushes; the caller commits. Returns how many were new."""
    return _store_and_count(rows).stored


@dataclass
class _Outcome:
    stored: int = 0  # rows that were new
    stopping: list[dict] = field(default_factory=list)  # new rows that can stop an enrollment
    refused: list[tuple[int, str]] = field(default_factory=list)  # (position in the rows, reason)


def _store_and_count(rows: list[dict]) -> _Outcome:
    """Insert the event `rows`, count the new ones in the first-event and rollup tables, and
    return how many were new with the new ones that can stop an enrollment (replies, bounces,
    unsubscribes, complaints) for `_apply`. A row is refused when its enrollment is not in its
    workspace or its step not in the enrollment's campaign; a row whose provider event id is
    already stored (or repeats an earlier row's) is skipped. Flushes; the caller commits."""
    if not rows:
        return _Outcome()
    if dialect_name() == "postgresql":
        return _store_and_count_postgresql(rows)
    outcome, valid, seen = _Outcome(), [], set()
    instances = _instances_of({row["enrollment_id"] for row in rows})
    steps = _steps_by_instance({instance_id for _, instance_id in instances.values()})
    now = utcnow()
    for position, row in enumerate(rows):
        workspace_id, instance_id = instances.get(row["enrollment_id"], (None, None))
        if workspace_id != row["workspace_id"]:
            outcome.refused.append((position, NO_ENROLLMENT))
        elif row["step_id"] is not None and row["step_id"] not in steps.get(instance_id, ()):
            outcome.refused.append((position, _bad_step(row["step_id"])))
        elif (row["workspace_id"], row["provider"], row["provider_event_id"]) not in seen:
            seen.add((row["workspace_id"], row["provider"], row["provider_event_id"]))
            valid.append({"id": uuid.uuid4(), **storable(row), "instance_id": instance_id, "created_at": now})
    table = CampaignEvent.__table__
    stored = bulk_insert(
        table, valid, conflict=("workspace_id", "provider", "provider_event_id"), returning=(table.c.id,)
    )
    by_id = {row["id"]: row for row in valid}
    stored_rows = [by_id[row.id] for row in stored]
    if stored_rows:
        _update_rollups(stored_rows)
    outcome.stored = len(stored_rows)
    outcome.stopping = [
        {**row, "bounce_type": (row["metadata"] or {}).get("bounce_type")}
        for row in stored_rows
        if row["type"] in STOPPING_TYPES
    ]
    return outcome


def _bad_step(step_id) -> str:
    return f"step {step_id} is not part of this campaign"


# PostgreSQL does it all in one statement: the rows arrive as one JSON document (the cheapest
# way to send 1,000 rows of mixed types); each row's enrollment and step are checked against the
# workspace and the campaign; the rows that the INSERT returns feed the first-event and rollup
# upserts (the same counting as _update_rollups). The statement answers with the count, the new
# stopping events and the refused rows. Rows and upserts go in key order, so that concurrent
# batches take their locks in the same order (no deadlocks); of two rows with one provider event
# id, the first in the batch wins.
_EVENT_COLUMNS = {
    "workspace_id": "uuid",
    "enrollment_id": "uuid",
    "step_id": "uuid",
    "channel": "text",
    "type": "text",
    "provider": "text",
    "provider_event_id": "text",
    "occurred_at": "timestamptz",
    "metadata": "jsonb",
}
_INSERTED = ("workspace_id", "instance_id", *list(_EVENT_COLUMNS)[1:])
# Constants of FIRST_KINDS, so written into the statement as literals.
_FIRST_KINDS_VALUES = ", ".join(f"('{kind_of}', '{kind}')" for kind_of, kinds in FIRST_KINDS.items() for kind in kinds)
_INGEST_SQL = f"""
WITH src AS (
    SELECT t.*, e.instance_id, e.id IS NOT NULL AS known,
        (t.step_id IS NULL OR s.id IS NOT NULL) AS step_ok
    FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb) AS ({", ".join(f"{c} {t}" for c, t in _EVENT_COLUMNS.items())}))
        WITH ORDINALITY AS t({", ".join(_EVENT_COLUMNS)}, position)
    LEFT JOIN campaign_enrollments AS e ON e.id = t.enrollment_id AND e.workspace_id = t.workspace_id
    LEFT JOIN campaign_instances AS i ON i.id = e.instance_id
    LEFT JOIN sequence_steps AS s ON s.id = t.step_id AND s.template_id = i.template_id
), ins AS (
    INSERT INTO campaign_events (id, {", ".join(_INSERTED)}, created_at)
    SELECT gen_random_uuid(), {", ".join(_INSERTED)}, %(now)s FROM src WHERE known AND step_ok
    ORDER BY provider_event_id, position
    ON CONFLICT (workspace_id, provider, provider_event_id) DO NOTHING
    RETURNING instance_id, enrollment_id, step_id, type, occurred_at, metadata
), candidates AS (
    SELECT DISTINCT ON (ins.enrollment_id, s.step_id, k.kind)
        ins.enrollment_id, s.step_id, k.kind AS type, ins.instance_id, (ins.occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM ins JOIN (VALUES {_FIRST_KINDS_VALUES}) AS k(type, kind) ON k.type = ins.type
    CROSS JOIN LATERAL (VALUES (%(nil)s::uuid), (ins.step_id)) AS s(step_id)
    WHERE s.step_id IS NOT NULL
    ORDER BY ins.enrollment_id, s.step_id, k.kind, ins.occurred_at
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
SELECT 'stored', (SELECT count(*) FROM ins), NULL::uuid, NULL::uuid, NULL, NULL::timestamptz, NULL
UNION ALL
SELECT 'stopping', NULL, enrollment_id, instance_id, type, occurred_at, metadata ->> 'bounce_type'
FROM ins WHERE type IN ('replied', 'bounced', 'unsubscribed', 'complained')
UNION ALL
SELECT CASE WHEN known THEN 'bad step' ELSE 'unknown' END, position - 1, NULL, NULL, NULL, NULL, NULL
FROM src WHERE NOT (known AND step_ok)
"""


def _store_and_count_postgresql(rows: list[dict]) -> _Outcome:
    # UUIDs and datetimes go as their str(), which PostgreSQL reads back exactly.
    document = json.dumps(rows, default=str)
    if _UNSTORABLE_ESCAPES.search(document):
        document = json.dumps(storable(rows), default=str)
    params = {"rows": document, "now": utcnow(), "nil": NIL_UUID}
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        result = cursor.execute(_INGEST_SQL, params).fetchall()
    outcome = _Outcome()
    for kind, n, enrollment_id, instance_id, type_, occurred_at, bounce_type in result:
        if kind == "stored":
            outcome.stored = n
        elif kind == "stopping":
            outcome.stopping.append(
                {
                    "enrollment_id": enrollment_id,
                    "instance_id": instance_id,
                    "type": type_,
                    "occurred_at": occurred_at,
                    "bounce_type": bounce_type,
                }
            )
        else:
            outcome.refused.append((n, NO_ENROLLMENT if kind == "unknown" else _bad_step(rows[n]["step_id"])))
    return outcome


def _enrollments_by_email(workspace: Workspace, events: list[EventIn]) -> dict[tuple, uuid.UUID]:
    """The enrollments of the events that name a campaign and an email instead of an enrollment."""
    wanted = {(e.instance_id, e.email) for e in events if e.enrollment_id is None}
    found = {}
    if wanted:
        instances = list({instance_id for instance_id, _ in wanted})
        emails = list({email for _, email in wanted})
        query = (
            sa.select(CampaignEnrollment.instance_id, Contact.email, CampaignEnrollment.id)
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .where(CampaignEnrollment.workspace_id == workspace.id, one_of(CampaignEnrollment.instance_id, instances))
        )
        for start in range(0, len(emails), 1000):
            rows = db.session.execute(query.where(one_of(Contact.email, emails[start : start + 1000]))).tuples()
            found.update(((instance_id, email), enrollment_id) for instance_id, email, enrollment_id in rows)
    return found


def _instances_of(enrollment_ids: set) -> dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]:
    """Enrollment id -> (workspace id, instance id)."""
    ids, found = list(enrollment_ids), {}
    query = sa.select(CampaignEnrollment.id, CampaignEnrollment.workspace_id, CampaignEnrollment.instance_id)
    for start in range(0, len(ids), 1000):
        rows = db.session.execute(query.where(one_of(CampaignEnrollment.id, ids[start : start + 1000]))).tuples()
        found.update((row[0], row[1:]) for row in rows)
    return found


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
        for kind in FIRST_KINDS.get(row["type"], ()):
            firsts.append((row, NIL_UUID, kind))
            if step != NIL_UUID:
                firsts.append((row, step, kind))
    if firsts:
        first_rows, keys = [], set()
        for row, step, kind in sorted(firsts, key=lambda item: item[0]["occurred_at"]):
            key = (row["enrollment_id"], step, kind)
            if key not in keys:
                keys.add(key)
                first_rows.append(({"enrollment_id": key[0], "step_id": step, "type": kind}, row))
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
                    (row["instance_id"], first["step_id"], row["occurred_at"].date(), f"{prefix}:{first['type']}")
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


def _apply(workspace: Workspace, stopping: list[dict], actor: lifecycle.Actor = lifecycle.Actor.EVENT) -> None:
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
        enrollment_id: (contact_id, campaign_stop_on(template_settings, instance_settings))
        for enrollment_id, contact_id, instance_settings, template_settings in db.session.execute(query)
    }
    stops: dict[uuid.UUID, str] = {}  # enrollment -> transition
    suppress: dict[uuid.UUID, str] = {}  # contact -> status
    for row in sorted(stopping, key=lambda r: r["occurred_at"]):
        enrollment_id, kind = row["enrollment_id"], row["type"]
        contact_id, stops_on = enrollments[enrollment_id]
        if kind == EventType.REPLIED:
            if "reply" in stops_on:
                stops.setdefault(enrollment_id, "reply")
        elif kind == EventType.BOUNCED:
            if row["bounce_type"] == "soft":
                continue
            suppress.setdefault(contact_id, ContactStatus.BOUNCED)
            if "bounce" in stops_on:
                stops.setdefault(enrollment_id, "bounce")
        else:  # unsubscribed, complained
            status = ContactStatus.UNSUBSCRIBED if kind == EventType.UNSUBSCRIBED else ContactStatus.COMPLAINED
            suppress.setdefault(contact_id, status)
            stops.setdefault(enrollment_id, "unsubscribe")
    now = utcnow()
    for name, enrollment_ids in _grouped(stops).items():
        target = lifecycle.TRANSITIONS[name].targets[0]
        lifecycle.change(name, actor=actor, ids=enrollment_ids, reason=f"{target} (event)", now=now)
    for status, contact_ids in _grouped(suppress).items():
        suppress_contacts(workspace, contact_ids, status=status, reason=f"{status} (event)", actor=actor)


def _grouped(statuses: dict[uuid.UUID, str]) -> dict[str, list[uuid.UUID]]:
    groups: dict[str, list[uuid.UUID]] = {}
    for key, status in statuses.items():
        groups.setdefault(status, []).append(key)
    return groups

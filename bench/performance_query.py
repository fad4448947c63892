"""Campaign performance: GET /instances/<id>/performance with 1,000,000 events in the workspace.

Dataset (built once per run, not part of the timings): one workspace, 10 launched campaigns
(4 email steps each), 10,000 enrollments per campaign made through the bulk API, and 1,000,000
events (100,000 per campaign) over ~54 days: per enrollment and step a send, usually a
delivery, sometimes opens (often repeated) and clicks, a few replies, bounces and
unsubscribes. Campaign 1's events go through webapp.services.events.ingest_events in
chronological batches of 5,000. The other 900,000 are COPYed into campaign_events, and their
event_firsts, event_rollups and stop-rule effects (enrollment and contact statuses) are built
in SQL. The same SQL run over campaign 1 must reproduce the service's rows exactly, or the run
stops. Then VACUUM ANALYZE, as autovacuum would eventually do.

App path: GET /instances/<id>/performance through Flask's test client (API-key auth,
instance lookup, status counts, rollup read, steps, pydantic response). Median of N requests
cycling over the 10 campaigns, after one warm-up request per campaign.

Raw baseline, same run: the same three data queries the endpoint runs (status counts,
rollup rows, steps), sent with psycopg and fetched; also, for scale, the same totals computed
straight from campaign_events without rollups.

    .venv/bin/python -m bench.performance_query [--database-url URL] [--requests N] [--keep]
"""

import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from bench.breakdown import Breakdown
from bench.bulk_enroll import make_body as make_enroll_body
from bench.common import (
    cleanup,
    dispose,
    is_postgres,
    load_average,
    make_app,
    make_campaign,
    make_persona,
    median,
    parser,
    percentile,
    print_header,
    raw_pg_url,
    reset_database,
    stopwatch,
    verdict,
)
from webapp.services.events import FIRST_KINDS

INSTANCES = 10
ENROLLMENTS_PER_INSTANCE = 10_000
EVENTS_PER_INSTANCE = 100_000
STEPS = 4
STEP_OFFSETS = (0, 3, 7, 12)  # days after enrollment
INGEST_BATCH = 5_000
# Campaigns whose events go through the service; the others are COPYed and their rollups rebuilt
# in SQL (checked against the service's rows for these), which keeps the run under 5 minutes.
SERVICE_INSTANCES = 1
NIL = uuid.UUID(int=0)
TARGET_MS = 50.0
BREAKDOWN = [
    (1, "webapp.api:authenticate_api_key"),
    (1, "webapp.services.analytics:instance_performance"),
    (2, "webapp.services.analytics:get_owned", "get_owned (instance)"),
    (2, "webapp.services.analytics:enrollment_statuses"),
    (1, "webapp.api.base:envelope", "envelope (pydantic validate + dump)"),
    (1, "webapp.api.base:jsonify"),
]
START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

RAW_QUERIES = {
    "statuses": "SELECT status, count(*) FROM campaign_enrollments WHERE instance_id = %(inst)s GROUP BY status",
    "rollups": "SELECT step_id, day, type, n FROM event_rollups WHERE instance_id = %(inst)s",
    "steps": "SELECT * FROM sequence_steps WHERE template_id = %(tpl)s ORDER BY position",
}
SCAN_QUERY = (
    "SELECT step_id, occurred_at::date, type, count(*) FROM campaign_events WHERE instance_id = %(inst)s"
    " GROUP BY 1, 2, 3"
)


def instance_events(rng: random.Random, index: int, enrollments: list[uuid.UUID], steps: list[uuid.UUID]) -> list:
    """EVENTS_PER_INSTANCE (occurred_at, type, enrollment_id, step_id, metadata) tuples for one campaign."""
    events: list = []
    start = START + timedelta(days=2 * index)
    while len(events) < EVENTS_PER_INSTANCE:
        for enrollment in enrollments:
            began = start + timedelta(seconds=rng.randrange(20 * 86400))
            for step, offset in zip(steps, STEP_OFFSETS, strict=True):
                sent = began + timedelta(days=offset, seconds=rng.randrange(8 * 3600))
                events.append((sent, "sent", enrollment, step, None))
                roll = rng.random()
                if roll < 0.02 and offset == 0:
                    events.append((sent + timedelta(seconds=30), "bounced", enrollment, step, {"bounce_type": "hard"}))
                    break
                events.append((sent + timedelta(seconds=20), "delivered", enrollment, step, None))
                if rng.random() < 0.45:
                    opened = sent + timedelta(seconds=rng.randrange(60, 3 * 86400))
                    for n in range(1 + min(4, int(rng.expovariate(0.8)))):
                        ip = f"198.51.100.{rng.randrange(1, 255)}"
                        events.append((opened + timedelta(hours=5 * n), "opened", enrollment, step, {"ip": ip}))
                    if rng.random() < 0.25:
                        url = "https://example.com/demo"
                        events.append((opened + timedelta(minutes=2), "clicked", enrollment, step, {"url": url}))
                if rng.random() < 0.025:
                    events.append((sent + timedelta(hours=rng.randrange(1, 72)), "replied", enrollment, step, None))
                    break
                if rng.random() < 0.004:
                    events.append(
                        (sent + timedelta(hours=rng.randrange(1, 48)), "unsubscribed", enrollment, step, None)
                    )
                    break
            if len(events) >= EVENTS_PER_INSTANCE:
                break
    return events[:EVENTS_PER_INSTANCE]


# The rollups and first-event rows that services.events._update_rollups produces when the
# events arrive in chronological order: raw counts per (instance, step or nil, UTC day, type);
# per (enrollment, kind) and per (enrollment, step, kind) the first event of each kind that
# services.events.FIRST_KINDS counts once per contact, counted on its day as unique:<kind> (nil
# step) and unique_step:<kind>.
_KINDS = "VALUES " + ", ".join(f"('{t}', '{k}')" for t, kinds in FIRST_KINDS.items() for k in kinds)
ROLLUPS_SQL = f"""
WITH ev AS (
    SELECT instance_id, enrollment_id, step_id, type, occurred_at FROM campaign_events
    WHERE instance_id = ANY(%(ids)s)
), firsts AS (
    SELECT ev.instance_id, s.step, s.prefix, k.kind, min(ev.occurred_at) AS first_at
    FROM ev JOIN ({_KINDS}) AS k(type, kind) ON k.type = ev.type
    CROSS JOIN LATERAL (VALUES (%(nil)s::uuid, 'unique:'), (ev.step_id, 'unique_step:')) AS s(step, prefix)
    WHERE s.step IS NOT NULL
    GROUP BY ev.instance_id, ev.enrollment_id, s.step, s.prefix, k.kind
)
SELECT instance_id, coalesce(step_id, %(nil)s::uuid), (occurred_at AT TIME ZONE 'UTC')::date, type, count(*)
FROM ev GROUP BY 1, 2, 3, 4
UNION ALL
SELECT instance_id, step, (first_at AT TIME ZONE 'UTC')::date, prefix || kind, count(*)
FROM firsts GROUP BY 1, 2, 3, 4
"""
FIRSTS_SQL = f"""
SELECT DISTINCT e.enrollment_id, s.step, k.kind
FROM campaign_events e JOIN ({_KINDS}) AS k(type, kind) ON k.type = e.type
CROSS JOIN LATERAL (VALUES (%(nil)s::uuid), (e.step_id)) AS s(step)
WHERE e.instance_id = ANY(%(ids)s) AND s.step IS NOT NULL
"""
# Stop rules with the default stop_on (reply, bounce, unsubscribe): the first stopping event of an
# enrollment decides. The generator gives an enrollment at most one stopping event, all bounces
# hard, and each contact one enrollment, so this equals what services.events._apply does.
STOPS_CTE = """
WITH stop AS (
    SELECT DISTINCT ON (e.enrollment_id) e.enrollment_id, ce.contact_id, e.type,
        CASE e.type WHEN 'replied' THEN 'replied' WHEN 'bounced' THEN 'bounced' ELSE 'unsubscribed' END AS status
    FROM campaign_events e JOIN campaign_enrollments ce ON ce.id = e.enrollment_id
    WHERE e.instance_id = ANY(%(ids)s) AND (e.type IN ('replied', 'unsubscribed', 'complained')
        OR (e.type = 'bounced' AND coalesce(e.metadata->>'bounce_type', '') <> 'soft'))
    ORDER BY e.enrollment_id, e.occurred_at
)
"""
APPLY_STOPS_SQL = (
    STOPS_CTE
    + """, stopped AS (
    UPDATE campaign_enrollments ce SET status = stop.status, status_reason = stop.status || ' (event)',
        next_action_at = NULL, completed_at = now(), updated_at = now()
    FROM stop WHERE ce.id = stop.enrollment_id AND ce.status IN ('enrolled', 'active', 'paused')
)
UPDATE contacts c SET status = stop.type, status_reason = stop.type || ' (event)', updated_at = now()
FROM stop WHERE c.id = stop.contact_id AND stop.type <> 'replied' AND c.status = 'subscribed'
"""
)
CHECK_STOPS_SQL = (
    STOPS_CTE
    + """SELECT count(*) FILTER (WHERE ce.status <> coalesce(stop.status, 'active')),
    count(*) FILTER (WHERE c.status <> coalesce(nullif(stop.type, 'replied'), 'subscribed'))
FROM campaign_enrollments ce JOIN contacts c ON c.id = ce.contact_id LEFT JOIN stop ON stop.enrollment_id = ce.id
WHERE ce.instance_id = ANY(%(ids)s)
"""
)
EVENT_COLUMNS = (
    "id, workspace_id, instance_id, enrollment_id, step_id, channel, type, provider, provider_event_id,"
    " occurred_at, metadata, created_at"
)


def ingest_through_service(app, workspace_id: uuid.UUID, events: list) -> int:
    """Events through services.events.ingest_events in chronological batches, as webhooks would."""
    from webapp.extensions import db
    from webapp.models import Workspace
    from webapp.schemas.events import EventIn
    from webapp.services.events import ingest_events

    stored = 0
    with app.app_context():
        for start in range(0, len(events), INGEST_BATCH):
            workspace = db.session.get(Workspace, workspace_id)
            batch = [
                EventIn.model_construct(
                    provider_event_id=peid,
                    type=kind,
                    enrollment_id=enrollment,
                    step_id=step,
                    occurred_at=occurred,
                    metadata=metadata,
                )
                for occurred, kind, enrollment, step, metadata, _instance, peid in events[start : start + INGEST_BATCH]
            ]
            result = ingest_events(workspace, batch, provider="bench")
            if result.skipped:
                raise RuntimeError(f"skipped: {result.skipped[:3]}")
            stored += result.stored
        db.session.remove()
    return stored


def copy_and_rebuild(conn: psycopg.Connection, workspace_id: uuid.UUID, events: list, instance_ids: list) -> str:
    """COPY the events into campaign_events, then build event_firsts, event_rollups and the stop
    rules' effects in SQL, in one transaction. Returns the time of each part.

    The COPY runs with session_replication_role = replica, which skips the foreign-key triggers
    (4 per event): every id comes from rows made through the API a moment ago.
    """
    now = datetime.now(UTC)
    params = {"ids": instance_ids, "nil": NIL}
    parts = []
    with conn.cursor() as cur:
        with stopwatch() as elapsed:
            cur.execute("SET LOCAL session_replication_role = replica")
            with cur.copy(f"COPY campaign_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                for occurred, kind, enrollment, step, metadata, instance, peid in events:
                    row = (uuid.uuid4(), workspace_id, instance, enrollment, step, "email", kind, "bench", peid)
                    copy.write_row((*row, occurred, Jsonb(metadata or {}), now))
            cur.execute("SET LOCAL session_replication_role = origin")
        parts.append(f"COPY {elapsed():.1f} s")
        for name, sql in (
            ("firsts", f"INSERT INTO event_firsts (enrollment_id, step_id, type) {FIRSTS_SQL}"),
            ("rollups", f"INSERT INTO event_rollups (instance_id, step_id, day, type, n) {ROLLUPS_SQL}"),
            ("stops", APPLY_STOPS_SQL),
        ):
            with stopwatch() as elapsed:
                cur.execute(sql, params)
            parts.append(f"{name} {elapsed():.1f} s")
    conn.commit()
    return ", ".join(parts)


def verify_against_service(conn: psycopg.Connection, instance_ids: list) -> str:
    """The SQL rebuild, run on the campaigns the service ingested, must give the service's rows."""
    params = {"ids": instance_ids, "nil": NIL}
    actual = "SELECT instance_id, step_id, day, type, n FROM event_rollups WHERE instance_id = ANY(%(ids)s)"
    rollups = conn.execute(
        f"SELECT (SELECT count(*) FROM (({ROLLUPS_SQL}) EXCEPT ({actual})) a),"
        f" (SELECT count(*) FROM (({actual}) EXCEPT ({ROLLUPS_SQL})) b), (SELECT count(*) FROM ({actual}) c)",
        params,
    ).fetchone()
    actual_firsts = (
        "SELECT f.enrollment_id, f.step_id, f.type FROM event_firsts f"
        " JOIN campaign_enrollments ce ON ce.id = f.enrollment_id WHERE ce.instance_id = ANY(%(ids)s)"
    )
    firsts = conn.execute(
        f"SELECT (SELECT count(*) FROM (({FIRSTS_SQL}) EXCEPT ({actual_firsts})) a),"
        f" (SELECT count(*) FROM (({actual_firsts}) EXCEPT ({FIRSTS_SQL})) b)",
        params,
    ).fetchone()
    stops = conn.execute(CHECK_STOPS_SQL, params).fetchone()
    conn.commit()
    if any(rollups[:2]) or any(firsts) or any(stops):
        raise RuntimeError(
            f"SQL rebuild differs from the service: rollups {rollups}, firsts {firsts}, statuses {stops}"
        )
    return f"{rollups[2]:,} rollup rows, the first-event rows and the enrollment and contact statuses identical"


def build_dataset(app, url: str, rng: random.Random) -> tuple[uuid.UUID, object, list[dict]]:
    workspace_id, api = make_persona(app, "perf")
    campaigns = []
    with stopwatch() as elapsed:
        for index in range(INSTANCES):
            campaign = make_campaign(api, steps=STEPS, name=f"Perf campaign {index + 1}")
            result = api.post(f"/instances/{campaign['instance_id']}/enrollments/bulk", raw=make_enroll_body(index, 0))
            assert result["enrolled"] == ENROLLMENTS_PER_INSTANCE, result
            campaigns.append(campaign)
    print(f"   setup: {INSTANCES} campaigns x {ENROLLMENTS_PER_INSTANCE:,} enrollments via the API, {elapsed():.1f} s")

    events: list = []
    instance_ids = [uuid.UUID(c["instance_id"]) for c in campaigns]
    with psycopg.connect(raw_pg_url(url)) as conn:
        for index, campaign in enumerate(campaigns):
            query = "SELECT id FROM campaign_enrollments WHERE instance_id = %s ORDER BY id"
            ids = [row[0] for row in conn.execute(query, (instance_ids[index],))]
            steps = [uuid.UUID(s) for s in campaign["step_ids"]]
            events.extend((*e, instance_ids[index]) for e in instance_events(rng, index, ids, steps))
    events.sort(key=lambda e: e[0])
    events = [(*e, f"perf-{n:07d}") for n, e in enumerate(events)]
    days = (events[-1][0] - events[0][0]).days + 1
    print(f"   generated {len(events):,} events over {days} days ({events[0][0]:%Y-%m-%d} .. {events[-1][0]:%Y-%m-%d})")

    by_service = set(instance_ids[:SERVICE_INSTANCES])
    with stopwatch() as elapsed:
        stored = ingest_through_service(app, workspace_id, [e for e in events if e[5] in by_service])
    print(
        f"   {stored:,} events of {SERVICE_INSTANCES} campaign(s) through services.events.ingest_events in "
        f"batches of {INGEST_BATCH:,}: {elapsed():.1f} s ({stored / elapsed():,.0f} events/s)"
    )
    rest = [e for e in events if e[5] not in by_service]
    with psycopg.connect(raw_pg_url(url)) as conn:
        parts = copy_and_rebuild(conn, workspace_id, rest, instance_ids[SERVICE_INSTANCES:])
        check = verify_against_service(conn, instance_ids[:SERVICE_INSTANCES])
    print(f"   {len(rest):,} events of the other campaigns by COPY + SQL rebuild of firsts/rollups/stops: {parts}")
    print(f"   check: the SQL rebuild applied to the service-ingested campaign(s): {check}")
    with psycopg.connect(raw_pg_url(url), autocommit=True) as conn, stopwatch() as elapsed:
        conn.execute("VACUUM ANALYZE")
    print(f"   VACUUM ANALYZE in {elapsed():.1f} s")
    return workspace_id, api, campaigns


def describe(url: str, workspace_id: uuid.UUID) -> str:
    with psycopg.connect(raw_pg_url(url)) as conn:
        events = conn.execute("SELECT count(*) FROM campaign_events WHERE workspace_id = %s", (workspace_id,))
        events = events.fetchone()[0]
        rollups = conn.execute("SELECT count(*) FROM event_rollups").fetchone()[0]
        firsts = conn.execute("SELECT count(*) FROM event_firsts").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('campaign_events'))").fetchone()[0]
    return f"{events:,} events ({size} with indexes), {rollups:,} rollup rows, {firsts:,} first-event rows"


def time_raw(url: str, campaigns: list[dict], runs: int) -> tuple[list[float], list[float]]:
    with psycopg.connect(raw_pg_url(url)) as conn:
        params = [{"inst": uuid.UUID(c["instance_id"]), "tpl": uuid.UUID(c["template_id"])} for c in campaigns]
        for p in params:  # warm-up, as for the app
            for sql in RAW_QUERIES.values():
                conn.execute(sql, p).fetchall()
        conn.commit()
        raw_times = []
        for i in range(runs):
            p = params[i % len(params)]
            with stopwatch() as elapsed:
                for sql in RAW_QUERIES.values():
                    conn.execute(sql, p).fetchall()
                conn.commit()
            raw_times.append(elapsed())
        scan_times = []
        for i in range(min(runs, 10)):
            with stopwatch() as elapsed:
                conn.execute(SCAN_QUERY, params[i % len(params)]).fetchall()
                conn.commit()
            scan_times.append(elapsed())
    return raw_times, scan_times


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=50, help="timed requests (default 50, at least 30)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    url = args.database_url
    if not is_postgres(url):
        raise SystemExit("performance_query runs on PostgreSQL only")
    runs = max(30, args.requests)
    print_header(f"performance_query on PostgreSQL: {INSTANCES * EVENTS_PER_INSTANCE:,} events, {runs} requests", url)
    reset_database(url)
    app = make_app(url)
    _workspace_id, api, campaigns = build_dataset(app, url, random.Random(args.seed))
    print(f"   dataset: {describe(url, _workspace_id)}")

    paths = [f"/instances/{c['instance_id']}/performance" for c in campaigns]
    for path in paths:  # warm-up: one request per campaign
        data = api.get(path)
    assert data["totals"]["sent"] > 0 and len(data["steps"]) == STEPS, data["totals"]
    app_times = []
    for i in range(runs):
        with stopwatch() as elapsed:
            api.get(paths[i % len(paths)])
        app_times.append(elapsed())
    if args.breakdown:  # a separate pass, so the instrumentation never touches the timed one
        breakdown = Breakdown(BREAKDOWN).install(app)
        with stopwatch() as elapsed:
            for i in range(runs):
                api.get(paths[i % len(paths)])
        breakdown.uninstall()
        breakdown.report(elapsed(), runs, "app breakdown (separate pass)")
    raw_times, scan_times = time_raw(url, campaigns, runs)

    app_ms, raw_ms = median(app_times) * 1000, median(raw_times) * 1000
    print(
        f"   app: median {app_ms:.1f} ms, p90 {percentile(app_times, 90) * 1000:.1f} ms, "
        f"max {max(app_times) * 1000:.1f} ms ({1000 / app_ms:,.0f} requests/s on one thread); "
        f"daily points {len(data['daily'])}, sent {data['totals']['sent']:,}"
    )
    print(
        f"   raw (3 queries over psycopg): median {raw_ms:.2f} ms, p90 {percentile(raw_times, 90) * 1000:.2f} ms | "
        f"same totals from campaign_events without rollups: median {median(scan_times) * 1000:.0f} ms"
    )
    print(
        f"RESULT performance_query PostgreSQL: app median {app_ms:.1f} ms, raw median {raw_ms:.2f} ms, "
        f"app/raw {app_ms / raw_ms:.1f}x (raw/app {raw_ms / app_ms:.2f}); target median < {TARGET_MS:.0f} ms: "
        f"{verdict(app_ms < TARGET_MS)}"
    )
    print(f"   end: {load_average()}")
    dispose(app)
    if not args.keep:
        cleanup(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

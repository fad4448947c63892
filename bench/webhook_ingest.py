"""Webhook ingestion: 100,000 events in POSTs of 1,000 to /events/webhook, versus raw SQL (PostgreSQL).

Setup (not timed): two fresh workspaces, each with a launched 3-step campaign and 10,000
enrollments made through the bulk enrollment API; one for the app, one for the baseline.

App path: POST /events/webhook through Flask's test client: JSON parse, pydantic validation,
enrollment and step lookups, dedupe on provider_event_id, insert, daily rollups, first-open/
first-click rows, stop rules (replies, hard bounces, unsubscribes), commit, JSON response.

Raw baseline, same run, same kind of body: json.loads, then psycopg COPY of the event columns
into a temp table and one INSERT INTO campaign_events ... ON CONFLICT DO NOTHING, one
transaction per 1,000 events. No lookups, no rollups, no stop rules: the database's floor.
App and raw batches alternate (app first on even batches). A second phase re-sends 10,000
already-stored events (pure dedupe) to both.

    .venv/bin/python -m bench.webhook_ingest [--database-url URL] [--events N]
"""

import json
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from bench.breakdown import Breakdown, counting
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

BATCH_SIZE = 1000
ENROLLMENTS = 10_000
REDELIVERED_BATCHES = 10
TARGET_RATIO = 0.40
BREAKDOWN = [
    (1, "webapp.api:authenticate_api_key"),
    (1, "webapp.api.events:_events_from_body", "_events_from_body (json + pydantic)"),
    (2, "webapp.api.events:parse_json_body"),
    (1, "webapp.api.events:ingest_events"),
    (2, "webapp.services.events:_enrollments_by_email", "_enrollments_by_email (lookup by email)"),
    (2, "webapp.services.events:_store_and_count", "_store_and_count (events, firsts, rollups)"),
    (2, "webapp.services.events:_apply", "_apply (stop rules)"),
    (2, "sqlalchemy.orm:Session.commit"),
    (1, "webapp.api.base:envelope"),
    (1, "webapp.api.base:jsonify"),
]
# (type, weight): about what an outbound sequence produces; stopping events are a few percent.
MIX = (
    ("sent", 30),
    ("delivered", 29),
    ("opened", 25),
    ("clicked", 10),
    ("replied", 3),
    ("bounced", 2),
    ("unsubscribed", 1),
)
START = datetime(2026, 11, 1, tzinfo=UTC)


def enrollment_ids(url: str, instance_id: str) -> list[str]:
    with psycopg.connect(raw_pg_url(url)) as conn:
        rows = conn.execute(
            "SELECT id FROM campaign_enrollments WHERE instance_id = %s ORDER BY id", (uuid.UUID(instance_id),)
        ).fetchall()
    return [str(row[0]) for row in rows]


def make_events(rng: random.Random, tag: str, batch: int, enrollments: list[str], steps: list[str]) -> bytes:
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    events = []
    for i in range(BATCH_SIZE):
        kind = rng.choices(types, weights)[0]
        occurred = START + timedelta(seconds=rng.randrange(30 * 86400))
        metadata = {"message_id": f"<{tag}.{batch}.{i}@mail.example.com>", "smtp_id": f"{rng.getrandbits(48):012x}"}
        if kind in ("opened", "clicked"):
            metadata["ip"] = f"203.0.113.{rng.randrange(1, 255)}"
            metadata["user_agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
        if kind == "clicked":
            metadata["url"] = f"https://example.com/pricing?utm_campaign=bench&n={i}"
        if kind == "bounced":
            metadata["bounce_type"] = "hard" if rng.random() < 0.6 else "soft"
        events.append(
            {
                "provider_event_id": f"{tag}-{batch:04d}-{i:04d}-{rng.getrandbits(40):010x}",
                "type": kind,
                "enrollment_id": rng.choice(enrollments),
                "step_id": rng.choice(steps),
                "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "metadata": metadata,
            }
        )
    return json.dumps({"events": events}).encode()


class PostgresRaw:
    COLUMNS = (
        "id, workspace_id, instance_id, enrollment_id, step_id, channel, type, provider, provider_event_id,"
        " occurred_at, metadata, created_at"
    )

    def __init__(self, url: str, workspace_id: uuid.UUID, instance_id: str):
        self.conn = psycopg.connect(raw_pg_url(url))
        self.workspace_id = workspace_id
        self.instance_id = uuid.UUID(instance_id)
        self.conn.execute(
            "CREATE TEMP TABLE _raw_events ON COMMIT DELETE ROWS AS"
            f" SELECT {self.COLUMNS} FROM campaign_events WITH NO DATA"
        )
        self.conn.commit()

    def load(self, body: bytes) -> int:
        data = json.loads(body)
        now = datetime.now(UTC)
        ws, inst = self.workspace_id, self.instance_id
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY _raw_events ({self.COLUMNS}) FROM STDIN") as copy:
                for e in data["events"]:
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            ws,
                            inst,
                            e["enrollment_id"],
                            e.get("step_id"),
                            e.get("channel", "email"),
                            e["type"],
                            "drumbeat",
                            e["provider_event_id"],
                            datetime.fromisoformat(e["occurred_at"]),
                            Jsonb(e.get("metadata") or {}),
                            now,
                        )
                    )
            cur.execute(
                f"INSERT INTO campaign_events ({self.COLUMNS}) SELECT {self.COLUMNS} FROM _raw_events"
                " ON CONFLICT (workspace_id, provider, provider_event_id) DO NOTHING"
            )
            stored = cur.rowcount
        self.conn.commit()
        return stored

    def close(self) -> None:
        self.conn.close()


def setup_side(app, url: str, label: str) -> tuple[uuid.UUID, object, dict, list[str]]:
    workspace_id, api = make_persona(app, label)
    campaign = make_campaign(api, name=f"Webhook {label}")
    path = f"/instances/{campaign['instance_id']}/enrollments/bulk"
    for batch in range(ENROLLMENTS // 10_000):
        result = api.post(path, raw=make_enroll_body(0, batch))
        assert result["enrolled"] == 10_000, result
    return workspace_id, api, campaign, enrollment_ids(url, campaign["instance_id"])


def run_phase(batches, app_post, raw_load, expect_stored: bool, breakdown: Breakdown | None = None) -> dict:
    app_times, raw_times = [], []
    for index, (app_body, raw_body) in enumerate(batches):

        def app_batch(body=app_body):
            with counting(breakdown), stopwatch() as elapsed:
                result = app_post(body)
            stored = result["stored"]
            if result["skipped"] or stored != (BATCH_SIZE if expect_stored else 0):
                raise RuntimeError(f"app stored {stored}, skipped {result['skipped'][:3]}")
            app_times.append(elapsed())

        def raw_batch(body=raw_body):
            with stopwatch() as elapsed:
                stored = raw_load(body)
            if stored != (BATCH_SIZE if expect_stored else 0):
                raise RuntimeError(f"raw stored {stored}")
            raw_times.append(elapsed())

        for step in (app_batch, raw_batch) if index % 2 == 0 else (raw_batch, app_batch):
            step()
    events = BATCH_SIZE * len(batches)
    return {
        "app_seconds": sum(app_times),
        "app_rate": events / sum(app_times),
        "raw_rate": events / sum(raw_times),
        "app_p50_ms": median(app_times) * 1000,
        "app_p99_ms": percentile(app_times, 99) * 1000,
        "raw_p50_ms": median(raw_times) * 1000,
    }


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000, help="events per side (default 100,000)")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    url = args.database_url
    if not is_postgres(url):
        raise SystemExit("webhook_ingest runs on PostgreSQL only (its baseline is COPY)")
    batches = args.events // BATCH_SIZE
    print_header(f"webhook_ingest on PostgreSQL: {batches} POSTs x {BATCH_SIZE:,} events per side", url)
    print("   app: Flask test client -> POST /events/webhook; raw: COPY -> temp -> INSERT..ON CONFLICT DO NOTHING")
    reset_database(url)
    app = make_app(url)
    with stopwatch() as setup_time:
        _ws_app, api_app, campaign_app, enrolled_app = setup_side(app, url, "hook-app")
        ws_raw, _api_raw, campaign_raw, enrolled_raw = setup_side(app, url, "hook-raw")
    print(f"   setup: 2 workspaces x {ENROLLMENTS:,} enrollments via the bulk API in {setup_time():.1f} s")

    rng = random.Random(args.seed)
    bodies = [
        (
            make_events(rng, "app", b, enrolled_app, campaign_app["step_ids"]),
            make_events(rng, "raw", b, enrolled_raw, campaign_raw["step_ids"]),
        )
        for b in range(batches)
    ]
    print(f"   bodies: {len(bodies[0][0]) / 1024:.0f} KB per 1,000-event POST")
    raw = PostgresRaw(url, ws_raw, campaign_raw["instance_id"])

    def app_post(body: bytes) -> dict:
        return api_app.post("/events/webhook", raw=body)

    breakdown = Breakdown(BREAKDOWN).install(app, active=False) if args.breakdown else None
    fresh = run_phase(bodies, app_post, raw.load, expect_stored=True, breakdown=breakdown)
    if breakdown:
        breakdown.uninstall()
    print(
        f"   new events: app {fresh['app_rate']:,.0f} events/s (POST p50 {fresh['app_p50_ms']:.0f} ms, "
        f"p99 {fresh['app_p99_ms']:.0f} ms) | raw {fresh['raw_rate']:,.0f} events/s "
        f"(batch p50 {fresh['raw_p50_ms']:.0f} ms) | ratio {fresh['app_rate'] / fresh['raw_rate']:.3f}"
    )
    if breakdown:
        breakdown.report(fresh["app_seconds"], batches, "app breakdown, new events")
    redelivery = run_phase(bodies[:REDELIVERED_BATCHES], app_post, raw.load, expect_stored=False)
    print(
        f"   redelivered (all duplicates, {REDELIVERED_BATCHES} POSTs): app {redelivery['app_rate']:,.0f} events/s "
        f"(p50 {redelivery['app_p50_ms']:.0f} ms) | raw {redelivery['raw_rate']:,.0f} events/s | "
        f"ratio {redelivery['app_rate'] / redelivery['raw_rate']:.2f}"
    )
    raw.close()
    ratio = fresh["app_rate"] / fresh["raw_rate"]
    print(
        f"RESULT webhook_ingest PostgreSQL: app {fresh['app_rate']:,.0f} events/s, raw {fresh['raw_rate']:,.0f} "
        f"events/s, ratio {ratio:.3f}; target >= {TARGET_RATIO:.0%}: {verdict(ratio >= TARGET_RATIO)}"
    )
    print(f"   end: {load_average()}")
    dispose(app)
    if not args.keep:
        cleanup(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

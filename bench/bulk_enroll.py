"""Bulk enrollment: 100,000 new contacts into one instance, 10 POSTs of 10,000, versus raw SQL.

App path: POST /instances/<id>/enrollments/bulk through Flask's test client (JSON parse,
pydantic validation, contact upsert, enrollment insert, commit, JSON response).

Raw baseline, same run, same request bodies, into a second fresh workspace and instance:
json.loads, then per batch of 10,000 in one transaction
  PostgreSQL: psycopg COPY into a temp table, INSERT INTO contacts ... ON CONFLICT DO NOTHING,
              INSERT INTO campaign_enrollments ... ON CONFLICT DO NOTHING;
  SQLite:     sqlite3 executemany into a temp table, then the same two INSERT ... SELECT.
The app and raw batches alternate (app first on even batches, raw first on odd ones), so both
see the tables grow alike and host noise hits both.

    .venv/bin/python -m bench.bulk_enroll [--database-url URL] [--rounds N]
"""

import json
import sqlite3
import sys
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from bench.breakdown import Breakdown, counting
from bench.common import (
    DEFAULT_PG_URL,
    cleanup,
    dispose,
    is_postgres,
    load_average,
    make_app,
    make_campaign,
    make_persona,
    median,
    parser,
    print_header,
    raw_pg_url,
    reset_database,
    sqlite_path,
    stopwatch,
    verdict,
)

BATCHES = 10
BATCH_SIZE = 10_000
TARGET_RATIO = 0.40
BREAKDOWN = [
    (1, "webapp.api:authenticate_api_key"),
    (1, "webapp.api.base:parse_body", "parse_body (json + BulkEnrollmentIn)"),
    (2, "webapp.api.base:parse_json_body"),
    (1, "webapp.services.enrollments:validate_items", "validate_items (pydantic per item)"),
    (1, "webapp.services.enrollments:_enroll"),
    (2, "webapp.services.enrollments:_upsert_contacts"),
    (2, "webapp.services.enrollments:_insert_enrollments"),
    (2, "webapp.services.bulk:_postgresql", "bulk._postgresql (both tables)"),
    (2, "webapp.services.bulk:_sqlite", "bulk._sqlite (both tables)"),
    (1, "sqlalchemy.orm:Session.commit"),
    (1, "webapp.api.base:envelope"),
    (1, "webapp.api.base:jsonify"),
]
INDUSTRIES = ("software", "fintech", "retail", "logistics", "health", "media", "energy")


def make_body(round_no: int, batch: int) -> bytes:
    """One request body of BATCH_SIZE new contacts with 4 custom fields each."""
    items = []
    for i in range(batch * BATCH_SIZE, (batch + 1) * BATCH_SIZE):
        items.append(
            {
                "contact": {
                    "email": f"lead{i}.r{round_no}@company{i % 997}.example.com",
                    "first_name": f"First{i}",
                    "last_name": f"Last{i % 5000}",
                    "company": f"Company {i % 997}",
                    "custom_fields": {
                        "industry": INDUSTRIES[i % len(INDUSTRIES)],
                        "employees": 10 + i % 5000,
                        "source": "bench-import",
                        "score": round((i % 100) / 100, 2),
                    },
                }
            }
        )
    return json.dumps({"contacts": items}).encode()


class PostgresRaw:
    """COPY into a temp table, then INSERT ... ON CONFLICT DO NOTHING into contacts and enrollments."""

    def __init__(self, url: str, workspace_id: uuid.UUID, instance_id: str):
        self.conn = psycopg.connect(raw_pg_url(url))
        self.params = {"ws": workspace_id, "inst": uuid.UUID(instance_id)}
        self.conn.execute(
            "CREATE TEMP TABLE _raw_enroll (contact_id uuid, enrollment_id uuid, email text, first_name text,"
            " last_name text, company text, custom_fields jsonb) ON COMMIT DELETE ROWS"
        )
        self.conn.commit()

    def load(self, body: bytes) -> int:
        data = json.loads(body)
        now = datetime.now(UTC)
        with self.conn.cursor() as cur:
            with cur.copy(
                "COPY _raw_enroll (contact_id, enrollment_id, email, first_name, last_name, company, custom_fields)"
                " FROM STDIN"
            ) as copy:
                for item in data["contacts"]:
                    c = item["contact"]
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            uuid.uuid4(),
                            c["email"],
                            c.get("first_name"),
                            c.get("last_name"),
                            c.get("company"),
                            Jsonb(c.get("custom_fields") or {}),
                        )
                    )
            params = {**self.params, "now": now}
            cur.execute(
                "INSERT INTO contacts (id, workspace_id, email, first_name, last_name, company, title, linkedin_url,"
                " timezone, custom_fields, status, created_at, updated_at)"
                " SELECT contact_id, %(ws)s, email, first_name, last_name, company, NULL, NULL, NULL, custom_fields,"
                " 'subscribed', %(now)s, %(now)s FROM _raw_enroll"
                " ON CONFLICT (workspace_id, email) DO NOTHING",
                params,
            )
            cur.execute(
                "INSERT INTO campaign_enrollments (id, workspace_id, instance_id, contact_id, status, current_step,"
                " next_action_at, enrolled_at, updated_at)"
                " SELECT t.enrollment_id, %(ws)s, %(inst)s,"
                " (SELECT c.id FROM contacts c WHERE c.workspace_id = %(ws)s AND c.email = t.email),"
                " 'active', 0, %(now)s, %(now)s, %(now)s FROM _raw_enroll t"
                " ON CONFLICT (instance_id, contact_id) DO NOTHING",
                params,
            )
            enrolled = cur.rowcount
        self.conn.commit()
        return enrolled

    def counts(self, workspace_id: uuid.UUID) -> tuple[int, int]:
        with self.conn.cursor() as cur:
            contacts = cur.execute("SELECT count(*) FROM contacts WHERE workspace_id = %s", (workspace_id,)).fetchone()
            enrolled = cur.execute(
                "SELECT count(*) FROM campaign_enrollments WHERE workspace_id = %s", (workspace_id,)
            ).fetchone()
        self.conn.commit()
        return contacts[0], enrolled[0]

    def close(self) -> None:
        self.conn.close()


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores our UTC datetimes in SQLite (naive, microseconds)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class SqliteRaw:
    """sqlite3 executemany into a temp table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING, x2.

    Same pragmas as the app (foreign keys on, WAL, synchronous=NORMAL) and the same storage
    formats (UUIDs as 32 hex characters, naive UTC datetimes as text, JSON as text).
    """

    def __init__(self, url: str, workspace_id: uuid.UUID, instance_id: str):
        self.conn = sqlite3.connect(sqlite_path(url))
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.ws = workspace_id.hex
        self.inst = uuid.UUID(instance_id).hex
        self.conn.execute(
            "CREATE TEMP TABLE _raw_enroll (contact_id, enrollment_id, email, first_name, last_name, company,"
            " custom_fields)"
        )
        self.conn.commit()

    def load(self, body: bytes) -> int:
        data = json.loads(body)
        now = _sqlite_time(datetime.now(UTC))
        rows = []
        for item in data["contacts"]:
            c = item["contact"]
            rows.append(
                (
                    uuid.uuid4().hex,
                    uuid.uuid4().hex,
                    c["email"],
                    c.get("first_name"),
                    c.get("last_name"),
                    c.get("company"),
                    json.dumps(c.get("custom_fields") or {}),
                )
            )
        conn = self.conn
        conn.executemany("INSERT INTO _raw_enroll VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute(
            "INSERT INTO contacts (id, workspace_id, email, first_name, last_name, company, title, linkedin_url,"
            " timezone, custom_fields, status, created_at, updated_at)"
            " SELECT contact_id, ?, email, first_name, last_name, company, NULL, NULL, NULL, custom_fields,"
            " 'subscribed', ?, ? FROM _raw_enroll WHERE true"
            " ON CONFLICT (workspace_id, email) DO NOTHING",
            (self.ws, now, now),
        )
        cursor = conn.execute(
            "INSERT INTO campaign_enrollments (id, workspace_id, instance_id, contact_id, status, current_step,"
            " next_action_at, enrolled_at, updated_at)"
            " SELECT t.enrollment_id, ?, ?,"
            " (SELECT c.id FROM contacts c WHERE c.workspace_id = ? AND c.email = t.email),"
            " 'active', 0, ?, ?, ? FROM _raw_enroll t WHERE true"
            " ON CONFLICT (instance_id, contact_id) DO NOTHING",
            (self.ws, self.inst, self.ws, now, now, now),
        )
        enrolled = cursor.rowcount
        conn.execute("DELETE FROM _raw_enroll")
        conn.commit()
        return enrolled

    def counts(self, workspace_id: uuid.UUID) -> tuple[int, int]:
        ws = workspace_id.hex
        contacts = self.conn.execute("SELECT count(*) FROM contacts WHERE workspace_id = ?", (ws,)).fetchone()[0]
        enrolled = self.conn.execute(
            "SELECT count(*) FROM campaign_enrollments WHERE workspace_id = ?", (ws,)
        ).fetchone()[0]
        return contacts, enrolled

    def close(self) -> None:
        self.conn.close()


def run_round(app, url: str, round_no: int, breakdown: Breakdown | None = None) -> dict:
    ws_app, api_app = make_persona(app, f"bulk-app-{round_no}")
    campaign_app = make_campaign(api_app, name=f"Bulk app {round_no}")
    ws_raw, api_raw = make_persona(app, f"bulk-raw-{round_no}")
    campaign_raw = make_campaign(api_raw, name=f"Bulk raw {round_no}")
    raw_cls = PostgresRaw if is_postgres(url) else SqliteRaw
    raw = raw_cls(url, ws_raw, campaign_raw["instance_id"])
    path = f"/instances/{campaign_app['instance_id']}/enrollments/bulk"

    app_times, raw_times, parse_times = [], [], []
    for batch in range(BATCHES):
        body = make_body(round_no, batch)

        def app_batch(body=body):
            with counting(breakdown), stopwatch() as elapsed:
                result = api_app.post(path, raw=body)
            if result["enrolled"] != BATCH_SIZE or result["invalid"]:
                raise RuntimeError(f"app enrolled {result['enrolled']}, invalid {result['invalid'][:3]}")
            app_times.append(elapsed())

        def raw_batch(body=body):
            with stopwatch() as elapsed:
                enrolled = raw.load(body)
            if enrolled != BATCH_SIZE:
                raise RuntimeError(f"raw enrolled {enrolled}")
            raw_times.append(elapsed())

        order = (app_batch, raw_batch) if batch % 2 == 0 else (raw_batch, app_batch)
        for step in order:
            step()
        with stopwatch() as elapsed:
            json.loads(body)
        parse_times.append(elapsed())

    for label, ws in (("app", ws_app), ("raw", ws_raw)):
        contacts, enrolled = raw.counts(ws)
        if (contacts, enrolled) != (BATCHES * BATCH_SIZE, BATCHES * BATCH_SIZE):
            raise RuntimeError(f"{label} workspace has {contacts} contacts and {enrolled} enrollments")
    raw.close()
    total = BATCHES * BATCH_SIZE
    return {
        "app_seconds": sum(app_times),
        "app_rate": total / sum(app_times),
        "raw_rate": total / sum(raw_times),
        "app_request_ms_median": median(app_times) * 1000,
        "app_request_ms_max": max(app_times) * 1000,
        "raw_batch_ms_median": median(raw_times) * 1000,
        "json_loads_ms_median": median(parse_times) * 1000,
    }


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0], default_url=DEFAULT_PG_URL)
    p.add_argument("--rounds", type=int, default=3, help="rounds of 100,000 contacts each (default 3)")
    args = p.parse_args(argv)
    url = args.database_url
    backend = "PostgreSQL" if is_postgres(url) else "SQLite"
    print_header(f"bulk_enroll on {backend}: {BATCHES} x {BATCH_SIZE:,} new contacts per round", url)
    print(
        "   app: Flask test client -> POST /instances/<id>/enrollments/bulk; raw: "
        + (
            "psycopg COPY -> temp -> INSERT..ON CONFLICT DO NOTHING"
            if backend == "PostgreSQL"
            else "sqlite3 executemany -> temp -> INSERT..SELECT..ON CONFLICT DO NOTHING"
        )
    )
    reset_database(url)
    app = make_app(url)
    breakdown = Breakdown(BREAKDOWN).install(app, active=False) if args.breakdown else None
    rounds = []
    for round_no in range(args.rounds):
        result = run_round(app, url, round_no, breakdown)
        rounds.append(result)
        print(
            f"   round {round_no + 1}: app {result['app_rate']:,.0f} rows/s "
            f"(request p50 {result['app_request_ms_median']:.0f} ms, max {result['app_request_ms_max']:.0f} ms) | "
            f"raw {result['raw_rate']:,.0f} rows/s (batch p50 {result['raw_batch_ms_median']:.0f} ms, "
            f"of which json.loads {result['json_loads_ms_median']:.0f} ms) | "
            f"ratio {result['app_rate'] / result['raw_rate']:.3f}"
        )
    app_rate = median([r["app_rate"] for r in rounds])
    raw_rate = median([r["raw_rate"] for r in rounds])
    ratio = median([r["app_rate"] / r["raw_rate"] for r in rounds])
    print(
        f"RESULT bulk_enroll {backend}: app {app_rate:,.0f} rows/s, raw {raw_rate:,.0f} rows/s, "
        f"ratio {ratio:.3f} (median of {len(rounds)} rounds); target >= {TARGET_RATIO:.0%}: "
        f"{verdict(ratio >= TARGET_RATIO)}"
    )
    if breakdown:
        breakdown.uninstall()
        breakdown.report(sum(r["app_seconds"] for r in rounds), BATCHES * len(rounds), "app breakdown")
    print(f"   end: {load_average()}")
    dispose(app)
    if not args.keep:
        cleanup(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

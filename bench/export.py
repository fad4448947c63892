"""CSV exports: GET /instances/<id>/enrollments/export, /events/export and /contacts/export of
100,000 enrollments, read chunk by chunk as a client downloads them.

Dataset, through the app's own paths: one workspace, a 3-step campaign, N contacts enrolled by
POSTs of 10,000 to the bulk endpoint, and one `sent` event for each of the first N/5 through
the webhook endpoint. Timed: each export, whole, through Flask's test client, without keeping
the body (each chunk is dropped once read). Then, once more under tracemalloc, the peak Python
memory of the enrollments export: a few batches' worth, whatever the number of rows.
Baseline: the same enrollment rows and columns straight from the database to CSV (PostgreSQL
`COPY (SELECT ...) TO STDOUT CSV`; SQLite a cursor into csv.writer).

    .venv/bin/python -m bench.export [--database-url URL] [--enrollments N] [--keep]
"""

import csv
import io
import sqlite3
import tracemalloc

import psycopg

from bench.common import (
    cleanup,
    dispose,
    is_postgres,
    make_app,
    make_campaign,
    make_persona,
    parser,
    print_header,
    raw_pg_url,
    reset_database,
    sqlite_path,
    stopwatch,
    verdict,
)

BATCH = 10_000
# A batch of rows and its CSV text, whatever the export's size (100,000 rows make 13 MB of CSV).
PEAK_LIMIT = 10_000_000
RAW_QUERY = """
SELECT c.email, c.first_name, c.last_name, c.company, e.status, e.status_reason, e.current_step,
       e.next_action_at, e.enrolled_at, e.completed_at
FROM campaign_enrollments e JOIN contacts c ON c.id = e.contact_id
WHERE e.instance_id = {instance} ORDER BY e.enrolled_at, e.id
"""


def seed(api, n: int) -> str:
    campaign = make_campaign(api, name="Export bench")
    instance_id = campaign["instance_id"]
    for start in range(0, n, BATCH):
        contacts = [
            {"contact": {"email": f"p{i}@bench.example.com", "first_name": f"P{i}", "company": "=Initech"}}
            for i in range(start, min(n, start + BATCH))
        ]
        api.post(f"/instances/{instance_id}/enrollments/bulk", {"contacts": contacts})
    for start in range(0, n // 5, 1000):
        events = [
            {
                "provider_event_id": f"s{i}",
                "type": "sent",
                "email": f"p{i}@bench.example.com",
                "instance_id": instance_id,
            }
            for i in range(start, min(n // 5, start + 1000))
        ]
        api.post("/events/webhook", {"events": events})
    return instance_id


def download(api, path: str) -> tuple[int, int]:
    """Read the streamed export chunk by chunk, as a client would: (bytes, lines)."""
    response = api.call("GET", path, expect=200)
    assert response.is_streamed
    size = lines = 0
    for chunk in response.response:
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        size += len(data)
        lines += data.count(b"\n")
    response.close()
    return size, lines


def raw_export(url: str, instance_id: str) -> int:
    if is_postgres(url):
        size = 0
        with psycopg.connect(raw_pg_url(url)) as conn, conn.cursor() as cur:
            query = RAW_QUERY.format(instance="%s")
            with cur.copy(
                f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)".replace("%s", f"'{instance_id}'")
            ) as copy:
                for block in copy:
                    size += len(block)
        return size
    conn = sqlite3.connect(sqlite_path(url))
    out = io.StringIO()
    writer = csv.writer(out)
    size = 0
    for row in conn.execute(RAW_QUERY.format(instance="?"), (instance_id.replace("-", ""),)):
        writer.writerow(row)
        if out.tell() > 1 << 20:
            size += len(out.getvalue().encode())
            out.seek(0)
            out.truncate()
    conn.close()
    return size + len(out.getvalue().encode())


def main() -> None:
    p = parser("CSV exports of 100,000 enrollments")
    p.add_argument("--enrollments", type=int, default=100_000)
    args = p.parse_args()
    url = args.database_url
    print_header(f"CSV export of {args.enrollments:,} enrollments", url)
    reset_database(url)
    app = make_app(url)
    _, api = make_persona(app, "export")
    with stopwatch() as seeding:
        instance_id = seed(api, args.enrollments)
    print(f"   seeded in {seeding():.1f} s")

    paths = {
        "enrollments": f"/instances/{instance_id}/enrollments/export",
        "events": f"/instances/{instance_id}/events/export",
        "contacts": "/contacts/export",
    }
    timings = {}
    for name, path in paths.items():
        with stopwatch() as elapsed:
            size, lines = download(api, path)
        timings[name] = elapsed()
        print(
            f"   {name:12} {lines - 1:>8,} rows  {size / 1e6:6.1f} MB  {elapsed():6.2f} s"
            f"  {lines / elapsed():>9,.0f} rows/s"
        )
    with stopwatch() as raw:
        raw_size = raw_export(url, instance_id)
    print(f"   raw baseline {args.enrollments:>8,} rows  {raw_size / 1e6:6.1f} MB  {raw():6.2f} s")
    ratio = raw() / timings["enrollments"]
    print(f"   enrollments export at {ratio:.0%} of the raw rate")

    tracemalloc.start()
    size, _ = download(api, paths["enrollments"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ok = peak < PEAK_LIMIT
    print(
        f"   peak Python memory streaming {size / 1e6:.1f} MB: {peak / 1e6:.1f} MB"
        f" -> {verdict(ok)} (< {PEAK_LIMIT / 1e6:.0f} MB)"
    )
    dispose(app)
    if not args.keep:
        cleanup(url)


if __name__ == "__main__":
    main()

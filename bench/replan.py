"""Re-planning after an edit: PATCH /instances/:id with a new send window when 100,000 contacts wait.

Dataset: one launched campaign of 100,000 contacts (enrolled through the bulk endpoint, launched
through the API), all of them put off by the policy (as the worker does: `next_action_at` two days
on, `wait_reason` "outside the send window").

Timed (Drumbeat): the whole API request that changes the campaign's send window, which re-plans
every waiting contact in the same transaction (services/instances.replan_waiting, one UPDATE).
Baseline (same run): that UPDATE alone, written by hand and sent with psycopg in autocommit.
Before each timed run, every contact is put off again (not timed). Target: the request takes at
most 5 s (issue 11: "100,000 enrollments in <= 5 s on PostgreSQL, never one row at a time").

    .venv/bin/python -m bench.replan [--database-url URL] [--runs 5]
"""

import time

import psycopg

from bench.common import (
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
    stopwatch,
    verdict,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_replan"
ENROLLMENTS = 100_000
BATCH = 10_000
TARGET_S = 5.0
WAIT = "outside the send window"
PUT_OFF = (
    "UPDATE campaign_enrollments SET next_action_at = now() + interval '2 days', wait_reason = %s "
    "WHERE instance_id = %s"
)
RAW_REPLAN = (
    "UPDATE campaign_enrollments SET next_action_at = now(), wait_reason = NULL, updated_at = now() "
    "WHERE instance_id = %s AND status = 'active' AND next_action_at > now() AND wait_reason IS NOT NULL "
    "AND wait_reason NOT LIKE 'out of office%%'"
)


def build(app) -> tuple[object, str]:
    _, api = make_persona(app, "replan")
    campaign = make_campaign(api, steps=1, name="Replan bench", launch=False)
    instance_id = campaign["instance_id"]
    with stopwatch() as elapsed:
        for batch in range(ENROLLMENTS // BATCH):
            items = [
                {"email": f"lead{i}@company{i % 997}.example.com", "first_name": f"First{i}"}
                for i in range(batch * BATCH, (batch + 1) * BATCH)
            ]
            report = api.post(f"/instances/{instance_id}/enrollments/bulk", {"contacts": items})
            assert report["enrolled"] == BATCH, report
        api.patch(f"/instances/{instance_id}", {"status": "active", "confirm": True})
    print(f"   enrolled and launched {ENROLLMENTS:,} contacts in {elapsed():.1f} s")
    return api, instance_id


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0], default_url=DEFAULT_URL)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    url = args.database_url
    if not is_postgres(url):
        raise SystemExit("replan runs on PostgreSQL (the target is PostgreSQL's)")
    print_header(f"replan: a new send window with {ENROLLMENTS:,} contacts waiting, {args.runs} runs", url)
    reset_database(url)
    app = make_app(url)
    api, instance_id = build(app)
    drumbeat, raw = [], []
    with psycopg.connect(raw_pg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        for run in range(args.runs):
            conn.execute(PUT_OFF, (WAIT, instance_id))
            start = time.perf_counter()
            conn.execute(RAW_REPLAN, (instance_id,))
            raw.append(time.perf_counter() - start)
            conn.execute(PUT_OFF, (WAIT, instance_id))
            end = "18:00" if run % 2 == 0 else "19:00"  # a real change every time
            window = {"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": end}
            start = time.perf_counter()
            api.patch(f"/instances/{instance_id}", {"settings": {"send_window": window}})
            drumbeat.append(time.perf_counter() - start)
            waiting = conn.execute(
                "SELECT count(*) FROM campaign_enrollments WHERE instance_id = %s AND wait_reason IS NOT NULL",
                (instance_id,),
            ).fetchone()[0]
            assert waiting == 0, f"{waiting} contacts were not re-planned"
            print(f"   run {run + 1}: Drumbeat {drumbeat[-1]:.2f} s, raw UPDATE {raw[-1]:.2f} s | {load_average()}")
    ours, base = median(drumbeat), median(raw)
    print(f"\n   median: Drumbeat {ours:.2f} s, raw UPDATE {base:.2f} s, ratio raw/Drumbeat {base / ours:.2f}")
    ok = ours <= TARGET_S
    print(f"RESULT replan: {ENROLLMENTS:,} re-planned in {ours:.2f} s (target <= {TARGET_S:g} s): {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

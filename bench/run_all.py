"""Run every benchmark, one subprocess each, and print a summary of their RESULT lines.

    .venv/bin/python -m bench.run_all [--database-url PG_URL] [--sqlite-url URL] [--only NAME ...] [--breakdown]

`make bench` runs this. The PostgreSQL database (default: the scratch database `bench`) is
wiped by each benchmark; about 5 minutes in all on the 2-core dev box when it is otherwise idle.
"""

import argparse
import os
import subprocess
import sys
import time

from bench.common import DEFAULT_PG_URL, DEFAULT_SQLITE_URL, machine_info


def plan(pg_url: str, sqlite_url: str, sqlite_rounds: int) -> list[tuple[str, list[str]]]:
    return [
        ("bulk_enroll", ["bench.bulk_enroll", "--database-url", pg_url]),
        ("bulk_enroll_sqlite", ["bench.bulk_enroll", "--database-url", sqlite_url, "--rounds", str(sqlite_rounds)]),
        ("webhook_ingest", ["bench.webhook_ingest", "--database-url", pg_url]),
        ("performance_query", ["bench.performance_query", "--database-url", pg_url]),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL))
    p.add_argument("--sqlite-url", default=DEFAULT_SQLITE_URL)
    p.add_argument("--sqlite-rounds", type=int, default=1, help="rounds for the (slow) SQLite bulk run (default 1)")
    p.add_argument("--only", nargs="*", help="names to run: bulk_enroll bulk_enroll_sqlite webhook_ingest ...")
    p.add_argument("--breakdown", action="store_true", help="pass --breakdown to every benchmark")
    args = p.parse_args(argv)

    info = machine_info()
    print(
        f"Drumbeat benchmarks, {info['date_utc']}: nproc={info['nproc']} {info['machine']} '{info['cpu']}', "
        f"Python {info['python']}, PostgreSQL {info['postgresql']}, SQLite {info['sqlite']}; code {info['code']}\n",
        flush=True,
    )
    results, failed = [], []
    for name, command in plan(args.database_url, args.sqlite_url, args.sqlite_rounds):
        if args.only and name not in args.only:
            continue
        extra = ["--breakdown"] if args.breakdown else []
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", *command, *extra], stdout=subprocess.PIPE, text=True, check=False)
        sys.stdout.write(proc.stdout)
        print(f"   ({name}: {time.perf_counter() - start:.0f} s, exit {proc.returncode})\n", flush=True)
        results += [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
        if proc.returncode != 0:
            failed.append(name)
    print("Summary:")
    for line in results:
        print(f"  {line.removeprefix('RESULT ')}")
    if failed:
        print(f"  FAILED to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

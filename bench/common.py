"""Shared benchmark plumbing: database reset, app, API client, personas, campaigns, reporting."""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_SQLITE_URL = "sqlite:////tmp/drumbeat_bench.sqlite"
API = "/api/campaigns/v2"
# Databases the benchmarks must never wipe.
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}


def parser(description: str, *, default_url: str = DEFAULT_PG_URL) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", default_url),
        help=f"PostgreSQL or SQLite URL; its schema is WIPED (default {default_url})",
    )
    p.add_argument("--keep", action="store_true", help="leave the data in place at the end")
    p.add_argument("--breakdown", action="store_true", help="also time the app path's main functions and SQL")
    return p


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://"))


def raw_pg_url(url: str) -> str:
    """The URL in libpq form, for psycopg.connect()."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _check_not_protected(url: str) -> None:
    name = raw_pg_url(url).rsplit("/", 1)[-1].split("?", 1)[0]
    if name in PROTECTED_DATABASES:
        raise SystemExit(f"refusing to wipe database {name!r}: use a scratch database such as 'bench'")


_LOCKS: dict[str, psycopg.Connection] = {}


def lock_database(url: str) -> None:
    """Hold a session advisory lock on the bench database until this process exits.

    Benchmarks wipe the schema, so two of them on one database would break each other: the
    second waits here until the first is done.
    """
    if url in _LOCKS:
        return
    conn = psycopg.connect(raw_pg_url(url), autocommit=True)
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext('drumbeat-bench'))").fetchone()[0]:
        print("   waiting: another benchmark is using this database...", flush=True)
        conn.execute("SELECT pg_advisory_lock(hashtext('drumbeat-bench'))")
    _LOCKS[url] = conn


def reset_database(url: str) -> None:
    """Drop everything in the bench database and run the migrations, as tests/conftest.py does."""
    if is_postgres(url):
        _check_not_protected(url)
        lock_database(url)
    cleanup(url)
    from flask_migrate import upgrade

    from webapp.extensions import db

    app = make_app(url)
    with app.app_context():
        upgrade()
        db.engine.dispose()


def cleanup(url: str) -> None:
    """Leave the bench database empty (PostgreSQL: an empty public schema; SQLite: no file)."""
    if is_postgres(url):
        _check_not_protected(url)
        with psycopg.connect(raw_pg_url(url), autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
    else:
        path = sqlite_path(url)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)


def dispose(app) -> None:
    from webapp.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def make_app(url: str):
    import gc
    import logging

    from webapp import create_app
    from webapp.config import database_url

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url(url),
            "RATELIMIT_ENABLED": False,
            "TESTING": True,
            "SECRET_KEY": "bench",
            # Argon2 at test strength: user creation is setup, not what is measured.
            "PASSWORD_HASH_TIME_COST": 1,
            "PASSWORD_HASH_MEMORY_COST": 8192,
            # One access-log line per request is noise on the console, not a cost worth measuring.
            "LOG_LEVEL": "WARNING",
        }
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    gc.freeze()  # as wsgi.py does once the app is built
    return app


class Api:
    """Flask's test client speaking JSON to /api/campaigns/v2 with one API key."""

    def __init__(self, app, key: str):
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, expect: int | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = self.client.open(
            API + path, method=method, data=data, headers=self.headers, content_type="application/json"
        )
        if expect is not None and response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        return response

    def post(self, path: str, body=None, *, raw: bytes | None = None, expect: int = 200):
        return self.call("POST", path, body, raw=raw, expect=expect).get_json()["data"]

    def get(self, path: str, *, expect: int = 200):
        return self.call("GET", path, expect=expect).get_json()["data"]

    def patch(self, path: str, body, *, expect: int = 200):
        return self.call("PATCH", path, body, expect=expect).get_json()["data"]


def make_persona(app, label: str) -> tuple[uuid.UUID, Api]:
    """A new workspace with an owner and an API key: (workspace id, Api client)."""
    from webapp.extensions import db
    from webapp.services.api_keys import create_api_key_for_user
    from webapp.services.users import create_user

    email = f"{label}-{uuid.uuid4().hex[:8]}@bench.example.com"
    with app.app_context():
        user = create_user(email=email, password="correct horse battery staple", workspace_name=f"Bench {label}")
        workspace_id = user.workspace_id
        _, key = create_api_key_for_user(email=email, name="bench")
        db.session.remove()
    return workspace_id, Api(app, key)


def make_campaign(api: Api, *, steps: int = 3, name: str = "Bench campaign", launch: bool = True) -> dict:
    """A template with `steps` email steps and an instance of it (launched unless told otherwise).

    Returns {"template_id", "instance_id", "step_ids"}; the ids are strings.
    """
    template = api.post("/templates", {"name": f"{name} template"}, expect=201)
    step_ids = []
    for number in range(steps):
        step = api.post(
            f"/templates/{template['id']}/sequences/email",
            {
                "subject": f"Step {number + 1} for {{{{first_name}}}}",
                "body": "Hello {{first_name}},\n\nQuick note.",
                "delay_days": 0 if number == 0 else 3,
            },
            expect=201,
        )
        step_ids.append(step["id"])
    instance = api.post("/instances", {"template_id": template["id"], "name": name}, expect=201)
    if launch:
        api.patch(f"/instances/{instance['id']}", {"status": "active"})
    return {"template_id": template["id"], "instance_id": instance["id"], "step_ids": step_ids}


@contextmanager
def stopwatch():
    """with stopwatch() as t: ...; then t() is the elapsed seconds."""
    start = time.perf_counter()
    end = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine_info() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        pg = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pg = "?"
    import sqlite3

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "?", ""
    return {
        "code": f"{commit}{' + uncommitted changes' if dirty else ''}",
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgresql": pg,
        "sqlite": sqlite3.sqlite_version,
    }


def print_header(title: str, url: str) -> None:
    info = machine_info()
    print(f"== {title}")
    print(
        f"   {info['date_utc']} | nproc={info['nproc']} {info['machine']} {info['cpu']} | "
        f"Python {info['python']} | PostgreSQL {info['postgresql']} | SQLite {info['sqlite']}"
    )
    print(f"   code: {info['code']} | database: {url} | {load_average()}")


def load_average() -> str:
    """The host's load average: other work on the 2 cores skews absolute numbers (ratios less so)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min)"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"

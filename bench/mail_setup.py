"""Shared setup for the mailbox benchmarks (inbox_read, mailbox_rotation): a scratch database,
the app with an encryption key, mailboxes and campaigns made through the API, cProfile output.

The scripts run as files (`.venv/bin/python bench/inbox_read.py`) or as modules
(`python -m bench.inbox_read`); `use_repo_root()` makes `bench`, `tests` and `webapp` importable
in the first case.
"""

import cProfile
import hashlib
import io
import os
import pstats
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_repo_root() -> None:
    """Put the repository first on sys.path (and not bench/, which running a file puts there)."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(here)]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@contextmanager
def scratch_database(url: str | None):
    """The URL to use: `url` when given (PostgreSQL; its schema is wiped), else a SQLite file in a
    new temp dir that is removed afterwards."""
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="drumbeat-bench-")
    try:
        yield f"sqlite:///{folder}/bench.sqlite"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh_app(url: str):
    """A freshly migrated database and the app on it, with an encryption key for mailbox passwords."""
    from cryptography.fernet import Fernet

    from bench.common import make_app, reset_database

    reset_database(url)
    app = make_app(url)
    app.config["ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    return app


def add_mailbox(api, login: str, password: str, smtp_port: int, *, imap: dict | None = None) -> dict:
    """A mailbox through POST /mailboxes: SMTP on 127.0.0.1 without TLS, no cap, no ramp."""
    body = {
        "name": login.capitalize(),
        "from_name": f"{login.capitalize()} at Acme",
        "from_email": f"{login}@acme.test",
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "username": login, "password": password},
    }
    if imap is not None:
        body["imap"] = imap
    return api.post("/mailboxes", body, expect=201)


def mailbox_campaign(api, mailbox_ids: list[str], contacts: list[dict], steps: list[dict]) -> str:
    """A template sending from `mailbox_ids`, an instance of it, `contacts` enrolled, launched."""
    template = api.post("/templates", {"name": "Bench mailboxes", "settings": {"mailbox_ids": mailbox_ids}}, expect=201)
    for step in steps:
        api.post(f"/templates/{template['id']}/sequences/email", step, expect=201)
    instance = api.post("/instances", {"template_id": template["id"], "name": "Bench mailboxes"}, expect=201)
    for start in range(0, len(contacts), 10_000):
        api.post(f"/instances/{instance['id']}/enrollments/bulk", {"contacts": contacts[start : start + 10_000]})
    api.patch(f"/instances/{instance['id']}", {"status": "active"})
    return instance["id"]


def fingerprint(paths: list[str]) -> str:
    """Each file's git blob id (short), as `git ls-files -s` or `git hash-object` print it: which
    version of the code under test ran, in a working tree that others keep changing."""
    parts = []
    for path in paths:
        data = (ROOT / path).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()[:8]
        parts.append(f"{Path(path).name} {blob}")
    return ", ".join(parts)


def dovecot_server():
    """A started Dovecot (tests/imap_server.py) whose mail lives on tmpfs (/dev/shm) when there
    is one: deleting 10,000 written-back mail files from this host's disk takes ~30 s."""
    from tests.imap_server import DovecotServer

    saved = tempfile.tempdir
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        tempfile.tempdir = "/dev/shm"
    try:
        server = DovecotServer()
    finally:
        tempfile.tempdir = saved
    return server.start()


def inclusive_times(profiler: cProfile.Profile, targets: list[tuple[str, str, str]]) -> list[tuple[str, float, int]]:
    """(label, cumulative seconds, calls) of each (label, file suffix, function name) in a profile."""
    stats = pstats.Stats(profiler).stats
    found = []
    for label, suffix, name in targets:
        seconds, calls = 0.0, 0
        for (filename, _line, function), (_cc, ncalls, _tt, cumulative, _callers) in stats.items():
            if function == name and filename.endswith(suffix):
                seconds += cumulative
                calls += ncalls
        found.append((label, seconds, calls))
    return found


def profile_report(profiler: cProfile.Profile, *, top: int = 25, path: str | None = None) -> str:
    """The top functions by own time, then webapp's own functions by cumulative time (with the
    profiler's overhead: compare shares, not seconds). `path`: also save the raw stats there."""
    if path:
        profiler.dump_stats(path)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"/webapp/", top)
    return out.getvalue()

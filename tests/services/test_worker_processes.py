"""Real `flask worker` processes on PostgreSQL: killed mid-batch, and several in parallel.

Every due step must be delivered exactly once or sit in `unknown`; none lost, none twice.
"""

import email
import os
import signal
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.extensions import db
from webapp.models import Delivery

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


def start_worker(database_url: str, smtp_port: int, *, lease_seconds: int = 2) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "worker-test",
        "MAIL_TRANSPORT": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_HELO_NAME": "localhost",
        "WORKER_LEASE_SECONDS": str(lease_seconds),
        "WORKER_POLL_SECONDS": "1",
        "WORKER_BATCH_SIZE": "20",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def statuses(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status)).all()
        db.session.remove()
        return dict(rows)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the workers")


def received_ids(sink) -> list[str]:
    return [email.message_from_bytes(content, policy=policy.default)["Message-ID"] for *_, content in sink.received]


def launch(api, n: int) -> dict:
    template = api.post("/templates", json={"name": "One step"}).get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Hi {{ first_name }}", "body": "Hello"})
    instance = factories.instance(api, template_data=template)
    for start in range(0, n, 5000):
        factories.enroll(api, instance["id"], min(5000, n - start), start=start)
    api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    return instance


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(app, api, migrated_url, smtp_server, sink):
    launch(api, 120)
    sink.data_delay = 0.03  # slow enough to kill the worker in the middle of its batches
    worker = start_worker(migrated_url, smtp_server.port)
    wait_for(lambda: len(sink.received) >= 15)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    at_kill = statuses(app)
    assert at_kill.get("sent", 0) < 120
    sink.data_delay = 0
    time.sleep(2.5)  # the dead worker's lease expires
    restarted = start_worker(migrated_url, smtp_server.port)
    try:
        wait_for(lambda: statuses(app).get("sent", 0) + statuses(app).get("unknown", 0) == 120)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    final = statuses(app)
    ids = received_ids(sink)
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    assert final.get("sent", 0) + final.get("unknown", 0) == 120, final
    assert set(final) <= {"sent", "unknown"}
    # Every recorded send reached the server; unknown ones may or may not have.
    assert final["sent"] <= len(ids) <= final["sent"] + final.get("unknown", 0)


def test_parallel_workers_never_send_a_message_twice(app, api, migrated_url, smtp_server, sink):
    launch(api, 300)
    workers = [start_worker(migrated_url, smtp_server.port, lease_seconds=300) for _ in range(3)]
    try:
        wait_for(lambda: statuses(app).get("sent", 0) == 300)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=30) == 0  # graceful stop
    ids = received_ids(sink)
    assert len(ids) == 300 and len(set(ids)) == 300
    recipients = [message[2][0] for message in sink.received]
    assert len(set(recipients)) == 300

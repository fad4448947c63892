"""Faults a campaign must ride out with real `flask worker` processes and a real SMTP server: a
worker killed, the database gone for 20 s (on a cluster of the test's own), the relay refusing
everything for a while.

Every step goes out exactly once, or sits in `unknown` (at most the message in flight per
worker), or waits behind its unknown first step; nothing is lost, nothing is sent twice.
"""

import email
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from tests import factories
from tests.conftest import ApiClient, make_config, make_persona
from tests.smtp_sink import Sink
from webapp import create_app
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact, Delivery, SequenceStep

ROOT = Path(__file__).resolve().parents[2]
STEP_SUBJECT = re.compile(r"Step (\d+) for ")

pytestmark = pytest.mark.postgres


class OutageSink(Sink):
    """A sink whose DATA answers `451 4.3.0 try later` for `outage_seconds` from the first
    message it is given, then 250 again."""

    def __init__(self):
        super().__init__()
        self.outage_seconds = 0.0
        self.recovers_at: float | None = None  # time.time()
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.outage_seconds and self.recovers_at is None:
            self.recovers_at = time.time() + self.outage_seconds
        if self.recovers_at is not None and time.time() < self.recovers_at:
            self.refused += 1
            return "451 4.3.0 try later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink():
    return OutageSink()


def start_worker(database_url: str, smtp_port: int, log: Path, **settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "worker-faults",
        "MAIL_TRANSPORT": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_HELO_NAME": "localhost",
        "WORKER_POLL_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        **{name: str(value) for name, value in settings.items()},
    }
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def stop_workers(workers: list[subprocess.Popen]) -> list[int]:
    """SIGTERM the workers still running and wait for them: their exit codes."""
    running = [worker for worker in workers if worker.poll() is None]
    for worker in running:
        worker.send_signal(signal.SIGTERM)
    codes = []
    for worker in running:
        try:
            codes.append(worker.wait(timeout=30))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes


def kill_leftovers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def log_tails(logs: list[Path], lines: int = 12) -> str:
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(line[:600] for line in log.read_text(errors="replace").splitlines()[-lines:])
        for log in logs
    )


def eventually(condition, timeout: float) -> bool:
    """Whether `condition` holds within `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def wait_for(condition, timeout: float, what: str, details) -> None:
    """Poll `condition` until it holds; after `timeout` seconds fail with `details()`."""
    if not eventually(condition, timeout):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{details()}")


def launch(api, contacts: int, steps: int) -> dict:
    """An active campaign of `steps` email steps, all due at once, with `contacts` enrolled."""
    created = api.post("/templates", json={"name": "Faults"})
    assert created.status_code == 201, created.get_json()
    template = created.get_json()["data"]
    for number in range(1, steps + 1):
        response = api.post(
            f"/templates/{template['id']}/sequences/email",
            json={"subject": f"Step {number} for {{{{ first_name }}}}", "body": "Hello", "delay_days": 0},
        )
        assert response.status_code == 201, response.get_json()
    instance = factories.instance(api, template_data=template)
    for start in range(0, contacts, 5000):
        factories.enroll(api, instance["id"], min(5000, contacts - start), start=start)
    response = api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    assert response.status_code == 200, response.get_json()
    return instance


def ledger(app) -> list[sa.Row]:
    """Every delivery, with its recipient and step number."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                Delivery.status,
                Delivery.message_id,
                Delivery.claimed_until,
                Delivery.retry_at,
                Delivery.attempts,
                Contact.email,
                SequenceStep.position,
            )
            .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        ).all()
        db.session.remove()
    return rows


def settled(rows: list[sa.Row], contacts: int, steps: int) -> bool:
    """Every (contact, step) sent and followed through, or unknown, or behind an unknown step."""
    done = {(row.email, row.position): row.status for row in rows if row.claimed_until is None}
    for contact in range(contacts):
        for step in range(1, steps + 1):
            status = done.get((f"person{contact}@example.com", step))
            if status == "unknown":
                break
            if status != "sent":
                return False
    return True


def received(sink) -> list[tuple[str, int, str]]:
    """(recipient, step number, Message-ID) of each message the relay accepted."""
    messages = []
    for _peer, _sender, recipients, content in sink.received:
        message = email.message_from_bytes(content, policy=policy.default)
        step = int(STEP_SUBJECT.match(message["Subject"]).group(1))
        messages.extend((recipient, step, message["Message-ID"]) for recipient in recipients)
    return messages


def test_a_killed_worker_and_a_database_outage_lose_and_duplicate_nothing(pg_cluster, smtp_server, sink, tmp_path):
    contacts, steps = 2000, 2
    total = contacts * steps
    url = pg_cluster.create_database("drumbeat")
    app = create_app(make_config(url))
    with app.app_context():
        upgrade()
    api = ApiClient(app.test_client(), make_persona(app, "owner@acme.test", "Acme"))
    launch(api, contacts, steps)
    sink.data_delay = 0.008
    logs = [tmp_path / f"worker-{number}.log" for number in range(3)]
    settings = {"WORKER_LEASE_SECONDS": 10, "WORKER_BATCH_SIZE": 50}
    workers = [start_worker(url, smtp_server.port, log, **settings) for log in logs]
    try:
        wait_for(lambda: len(sink.received) >= total // 5, 90, "a fifth of the messages", lambda: log_tails(logs))
        workers[0].kill()
        workers[0].wait()
        wait_for(lambda: len(sink.received) >= total // 2, 90, "half of the messages", lambda: log_tails(logs))
        pg_cluster.stop("fast")
        down_from = len(sink.received)
        time.sleep(20)
        received_while_down = len(sink.received) - down_from
        pg_cluster.start()
        wait_for(
            lambda: settled(ledger(app), contacts, steps),
            180,
            "the ledger to settle",
            lambda: f"{Counter(row.status for row in ledger(app))}\n{log_tails(logs)}",
        )
        exit_codes = stop_workers(workers[1:])
    finally:
        kill_leftovers(workers)
    assert exit_codes == [0, 0], log_tails(logs)

    rows = ledger(app)
    with app.app_context():
        db.engine.dispose()
    messages = received(sink)
    by_status = Counter(row.status for row in rows)
    message_ids = Counter(message_id for *_, message_id in messages)
    sends = Counter((recipient, step) for recipient, step, _ in messages)
    assert [key for key, n in message_ids.items() if n > 1] == [], "a Message-ID was delivered twice"
    assert [key for key, n in sends.items() if n > 1] == [], "a step reached its recipient twice"
    on_record = {row.message_id for row in rows if row.status in ("sent", "unknown")}
    assert set(message_ids) <= on_record, "the relay got a message the ledger knows neither as sent nor unknown"
    sent = {row.message_id for row in rows if row.status == "sent"}
    assert sent <= set(message_ids), f"{len(sent - set(message_ids))} messages on record as sent never arrived"
    unknown = {(row.email, row.position) for row in rows if row.status == "unknown"}
    behind_unknown = {(address, later) for address, step in unknown for later in range(step + 1, steps + 1)}
    due = {(f"person{contact}@example.com", step) for contact in range(contacts) for step in range(1, steps + 1)}
    assert {key for key in due - unknown - behind_unknown if sends[key] != 1} == set(), "a step never went out"
    assert set(by_status) <= {"sent", "unknown"}, by_status
    assert by_status["unknown"] <= 3, by_status
    assert received_while_down <= 3, f"{received_while_down} messages went out while the database was down"


def test_a_relay_outage_pauses_the_worker_and_recovers_by_itself(app, api, migrated_url, smtp_server, sink, tmp_path):
    contacts = 60
    instance = factories.instance(api, template_data=factories.template(api, steps=1))
    factories.enroll(api, instance["id"], contacts)
    sink.outage_seconds = 6
    log = tmp_path / "worker.log"
    worker = start_worker(
        migrated_url,
        smtp_server.port,
        log,
        LOG_LEVEL="INFO",
        WORKER_PAUSE_AFTER_FAILURES=3,
        WORKER_PAUSE_SECONDS=2,
        WORKER_LEASE_SECONDS=30,
        WORKER_BATCH_SIZE=20,
    )

    def not_sent() -> str:
        recovered = datetime.fromtimestamp(sink.recovers_at, UTC)
        late = [
            f"{row.email} {row.status}, attempt {row.attempts}, due again "
            f"{(row.retry_at - recovered).total_seconds():.0f} s after the relay recovered"
            if row.retry_at
            else f"{row.email} {row.status}"
            for row in ledger(app)
            if row.status != "sent"
        ]
        return "\n".join([f"{sink.refused} refused while the relay was down; still not sent:", *late])

    try:
        response = api.patch(f"/instances/{instance['id']}", json={"status": "active"})
        assert response.status_code == 200, response.get_json()
        wait_for(lambda: sink.recovers_at is not None, 30, "the first message", lambda: log_tails([log]))
        in_time = eventually(
            lambda: Counter(row.status for row in ledger(app))["sent"] == contacts, sink.recovers_at + 15 - time.time()
        )
        late = "" if in_time else not_sent()
        exit_codes = stop_workers([worker])
    finally:
        kill_leftovers([worker])
    assert exit_codes == [0], log_tails([log])

    lines = log.read_text().splitlines()
    pauses = sum("pausing sends" in line for line in lines)
    resumes = sum("sending resumes" in line for line in lines)
    assert sink.refused >= 3
    assert 1 <= pauses <= 6, f"{pauses} pauses for a 6 s outage"
    assert resumes >= 1, log_tails([log])
    messages = received(sink)
    assert len({message_id for *_, message_id in messages}) == len(messages), "a message was delivered twice"
    assert len({recipient for recipient, *_ in messages}) == len(messages), "a recipient got its step twice"
    # Within a pause and a poll of the recovery: refusals that were the relay's wait no backoff.
    assert in_time, f"not every message went out within 15 s of the relay's recovery\n{late}"
    assert len(messages) == contacts
    assert Counter(row.status for row in ledger(app)) == {"sent": contacts}

"""The campaign worker: `flask worker` runs the loop, `flask worker --once` does what is due and exits.

Any number of workers may share one PostgreSQL database (claims use SKIP LOCKED); on SQLite
run one. SIGTERM or SIGINT: the message in hand is finished and recorded, claims not yet
attempted are given back, nothing new is claimed.
"""

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask

from webapp.engine import mailer
from webapp.extensions import db
from webapp.models import utcnow
from webapp.services import dispatch, imports
from webapp.services.idempotency import prune_idempotency_keys

log = logging.getLogger("drumbeat.worker")
# Outcomes are recorded in one transaction per this many messages: fewer round trips. Each group
# is recorded on a second thread while the next group is sent (see `_Recorder`), so a crash
# leaves at most twice this many sent messages in `unknown` (never resent), and never more than
# the batch claimed: every batch is recorded in full before the next claim.
RECORD_EVERY = 50


@dataclass
class RunReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    tasks: int = 0
    completed: int = 0
    reaped: int = 0
    skipped_tasks: int = 0
    imports: int = 0

    def add(self, outcome: dispatch.Outcome) -> None:
        field = {
            "sent": "sent",
            "failed": "failed",
            "unsendable": "failed",
            "retry": "retried",
            "unknown": "unknown",
        }.get(outcome.status)
        if field:
            setattr(self, field, getattr(self, field) + 1)


class Worker:
    def __init__(
        self,
        app: Flask,
        *,
        transport=None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.app = app
        self.transport = transport or mailer.transport_from_config(app.config)
        self.clock = clock
        self.sleep = sleep
        self.stopping = False
        self.transport_failures = 0

    def stop(self, *_args) -> None:
        """Finish the message in hand, then stop (installed as the SIGTERM handler)."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run_once(self, now: datetime | None = None) -> RunReport:
        """Do every piece of work due at `now` (default: the clock), batch after batch."""
        report = RunReport()
        with self.app.app_context():
            now = now or self.clock()
            report.reaped = dispatch.reap_expired_claims(now)
            report.skipped_tasks = dispatch.skip_overdue_tasks(now)
            while not self.stopping and (import_id := imports.claim_next_import()):
                imports.process_import(import_id)  # large CSV files, chunk by chunk
                report.imports += 1
            while not self.stopping:
                claim = dispatch.claim_due_work(now)
                report.tasks += claim.tasks
                report.completed += claim.completed
                if not (claim.deliveries or claim.tasks or claim.completed):
                    break
                self._send_batch(claim, report, now)
            db.session.remove()
        return report

    def _send_batch(self, claim: dispatch.ClaimReport, report: RunReport, now: datetime) -> None:
        """Send a claimed batch, recording outcomes every RECORD_EVERY messages (and on stop).
        All of it is recorded when this returns (or raises)."""
        prepared = dispatch.prepare_deliveries(claim.deliveries, claim.drafts)
        recorder = _Recorder(self.app, self.transport, now)
        pending: list[dispatch.Outcome] = []
        try:
            for index, item in enumerate(prepared):
                if self.stopping or self.transport_failures >= self.app.config["WORKER_PAUSE_AFTER_FAILURES"]:
                    if not self.stopping:
                        # The relay keeps failing: stop hammering it, give the claims back for later.
                        log.warning(
                            "pausing sends after repeated transport failures",
                            extra={"failures": self.transport_failures},
                        )
                    recorder.wait()
                    dispatch.release_claims([p.delivery_id for p in prepared[index:]], now)
                    return
                outcome = dispatch.send_prepared(item, self.transport)
                report.add(outcome)
                self.transport_failures = self.transport_failures + 1 if outcome.status == "retry" else 0
                pending.append(outcome)
                if len(pending) >= RECORD_EVERY:
                    recorder.record(pending)
                    pending = []
        finally:
            error = recorder.finish()
            dispatch.record_outcomes(pending, transport=self.transport, now=now)
        if error is not None:
            raise error

    def run_forever(self) -> None:
        """The loop: work, then sleep until something may be due."""
        self.install_signal_handlers()
        poll = self.app.config["WORKER_POLL_SECONDS"]
        last_prune = 0.0
        log.info("worker started", extra={"transport": type(self.transport).__name__})
        while not self.stopping:
            try:
                report = self.run_once()
                if report.sent or report.failed or report.tasks:
                    log.info("worker batch", extra=vars(report))
                if time.monotonic() - last_prune > 3600:
                    with self.app.app_context():
                        prune_idempotency_keys()
                        db.session.remove()
                    last_prune = time.monotonic()
            except Exception:
                log.exception("worker iteration failed; retrying")
                with self.app.app_context():
                    db.session.remove()
            pause = self.app.config["WORKER_PAUSE_SECONDS"] if self.transport_failures else poll
            self._sleep_interruptibly(pause)
        closer = getattr(self.transport, "close", None)
        if closer:
            closer()
        log.info("worker stopped")

    def _sleep_interruptibly(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self.sleep(min(0.5, deadline - time.monotonic()))


class _Recorder:
    """Records a group of outcomes on a thread of its own while the worker sends the next group,
    so that the database's work on one overlaps the SMTP conversation of the other. One group at
    a time; the worker waits for it before it touches the database itself."""

    def __init__(self, app: Flask, transport, now: datetime):
        self.app = app
        self.transport = transport
        self.now = now
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def record(self, outcomes: list[dispatch.Outcome]) -> None:
        """Start recording `outcomes` once the group before is recorded (raising its error, if any)."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(outcomes,), name="drumbeat-recorder")
        self._thread.start()

    def wait(self) -> None:
        """Wait until the group being recorded is; raise the error its recording failed with."""
        error = self.finish()
        if error is not None:
            raise error

    def finish(self) -> BaseException | None:
        """Wait until the group being recorded is; return the error its recording failed with."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error

    def _run(self, outcomes: list[dispatch.Outcome]) -> None:
        try:
            with self.app.app_context():  # its own session and connection
                try:
                    dispatch.record_outcomes(outcomes, transport=self.transport, now=self.now)
                finally:
                    db.session.remove()
        except BaseException as exc:  # handed over to the worker's thread by wait() or finish()
            self._error = exc

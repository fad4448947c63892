"""The campaign worker: `flask worker` runs the loop, `flask worker --once` does what is due and exits.

Any number of workers may share one PostgreSQL database (claims use SKIP LOCKED); on SQLite
run one. SIGTERM or SIGINT: the message in hand is finished and recorded, claims not yet
tried are given back, nothing new is claimed.

What it survives:
- **A relay that keeps failing** (WORKER_PAUSE_AFTER_FAILURES temporary failures in a row): it
  gives the batch back and sends nothing for WORKER_PAUSE_SECONDS, then tries one message (the
  probe); if that goes, it carries on; if not, it pauses again.
- **A database it cannot reach**: each message is marked `sending` just before its SMTP
  transaction, so when the mark fails nothing more is sent. The outcomes it holds and the claims
  it did not try are recorded and given back once the database answers again.
- **Being killed**: its untried claims go back to the queue when their lease ends; the one
  message that was in its SMTP transaction becomes `unknown` for a person to resolve.
"""

import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask

from webapp.crypto import SecretUnreadable
from webapp.engine import mailer
from webapp.extensions import db
from webapp.models import Mailbox, utcnow
from webapp.services import imports, inbox, instances, mailboxes, tasks
from webapp.services.idempotency import prune_idempotency_keys
from webapp.services.inbox import ReadReport
from webapp.services.sending.claim import ClaimReport, claim_due_work
from webapp.services.sending.compose import prepare_deliveries
from webapp.services.sending.deliveries import reap_expired_claims, release_claims
from webapp.services.sending.record import (
    Marker,
    Outcome,
    SendResult,
    record_outcomes,
    send_prepared,
)

log = logging.getLogger("drumbeat.worker")
# Outcomes are recorded in one transaction per this many messages: fewer round trips. Each group
# is recorded on a second thread while the next group is sent, or the next batch claimed (see
# `_Recorder`); a run ends with everything recorded. A message's own status (sending, then sent)
# is stored before the next one is handed over, so a crash never leaves more than the message in
# hand `unknown`; the group only follows through (events, next step).
RECORD_EVERY = 50


@dataclass
class RunReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    tasks: int = 0
    completed: int = 0
    reaped: int = 0  # expired leases whose message was in flight: now unknown
    released: int = 0  # expired leases never tried: back in the queue
    skipped_tasks: int = 0
    launched: int = 0  # drafts whose scheduled launch time came
    imports: int = 0
    inbox: ReadReport | None = None  # mailboxes read in this run, when any were due
    paused: bool = False

    def add(self, result: SendResult) -> None:
        field = {
            Outcome.SENT: "sent",
            Outcome.FAILED: "failed",
            Outcome.UNSENDABLE: "failed",
            Outcome.RETRY: "retried",
            Outcome.UNKNOWN: "unknown",
        }[result.outcome]
        setattr(self, field, getattr(self, field) + 1)


class Worker:
    def __init__(
        self,
        app: Flask,
        *,
        transport=None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        read_every: timedelta | None = None,
        imap_ssl_context=None,
    ):
        self.app = app
        self.transport = transport or mailer.transport_from_config(app.config)
        self.clock = clock
        self.sleep = sleep
        # Mailboxes are read when their last read is this old (INBOX_POLL_SECONDS by default).
        self.read_every = read_every
        self.imap_ssl_context = imap_ssl_context
        self.stopping = False
        self.transport_failures = 0  # temporary failures in a row
        self.paused_until: datetime | None = None
        self.probing = False  # the next message tells whether the relay is back
        self._streak: list[SendResult] = []  # this batch's temporary failures in a row
        self._fixed_now = False  # run_once was given the time (tests, benchmarks)
        self._transports: dict[uuid.UUID, object] = {}  # mailboxes' SMTP transports, for a run
        self._benched: set[uuid.UUID] = set()  # mailboxes that stopped working during a run
        self._mailbox_failures: Counter = Counter()  # temporary failures in a row, by mailbox
        # Held while the database cannot be reached; settled first thing in the next run.
        self.unrecorded: list[SendResult] = []
        self.unreleased: list[uuid.UUID] = []

    def stop(self, *_args) -> None:
        """Finish the message in hand, then stop (installed as the SIGTERM handler)."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run_once(self, now: datetime | None = None) -> RunReport:
        """Do every piece of work due at `now` (default: the clock, read again for each batch, so
        that a long run's claims get full leases), batch after batch."""
        report = RunReport()
        fixed = self._fixed_now = now is not None
        with self.app.app_context():
            try:
                now = now or self.clock()
                self._settle(now)
                reaped = reap_expired_claims(now)
                report.reaped, report.released = reaped.unknown, reaped.released
                report.skipped_tasks = tasks.skip_overdue_tasks(now)
                report.launched = instances.launch_scheduled(now)
                while not self.stopping and (import_id := imports.claim_next_import()):
                    imports.process_import(import_id)  # large CSV files, chunk by chunk
                    report.imports += 1
                # Replies first: a contact who answered must not get the follow-up due now.
                if not self.stopping:
                    report.inbox = inbox.read_due_mailboxes(
                        now, every=self.read_every, ssl_context=self.imap_ssl_context
                    )
                if self.paused_until is not None:
                    if now < self.paused_until:
                        report.paused = True
                        return report
                    self.paused_until, self.probing = None, True
                recorder = _Recorder(self.app, self._stores_copies)
                try:
                    while not self.stopping and self.paused_until is None:
                        now = now if fixed else self.clock()
                        claim = claim_due_work(now)
                        report.tasks += claim.tasks
                        report.completed += claim.completed
                        if not (claim.deliveries or claim.tasks or claim.completed):
                            break
                        self._send_batch(claim, report, now, recorder)
                    recorder.wait()
                except BaseException:
                    recorder.join()
                    self.unrecorded += recorder.failed
                    recorder.failed = []
                    raise
                report.paused = self.paused_until is not None
            finally:
                self._close_mailbox_transports()
                db.session.remove()
        return report

    def _close_mailbox_transports(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports, self._benched = {}, set()

    def _settle(self, now: datetime) -> None:
        """Record what a run broken off by the database left in hand: outcomes, and claims never tried."""
        if self.unrecorded:
            record_outcomes(self.unrecorded, store_copy=self._stores_copies, now=now)
            log.info("recorded outcomes held while the database was away", extra={"count": len(self.unrecorded)})
            self.unrecorded = []
        if self.unreleased:
            release_claims(self.unreleased, now, never_sent=True)
            self.unreleased = []

    @property
    def _stores_copies(self) -> bool:
        return getattr(self.transport, "stores_messages", False)

    def _send_batch(self, claim: ClaimReport, report: RunReport, now: datetime, recorder: "_Recorder") -> None:
        """Send a claimed batch, the groups recorded every RECORD_EVERY messages. Each message is
        marked `sending` (in the statement that stores the status of the one before) while its
        SMTP transaction starts, on a thread of its own, and the message is handed over (the
        end-of-data) only once its mark is stored. When this returns, all of it is recorded or
        handed to `recorder`; when it raises, what it could not record is held in `unrecorded`
        and `unreleased`."""
        prepared = prepare_deliveries(claim.deliveries, claim.drafts)
        marker = Marker()
        marks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drumbeat-marker")
        pending: list[SendResult] = []
        self._streak = []  # a group already recorded cannot be given back
        unstored: SendResult | None = None  # handed to the relay, its status not stored yet
        done = 0  # prepared[:done] are handled
        benched: list[uuid.UUID] = []  # claims of mailboxes that stopped working in this batch
        try:
            for item in prepared:
                if self.stopping or self.paused_until is not None:
                    break
                if item.mailbox_id in self._benched:
                    benched.append(item.delivery_id)
                    done += 1
                    continue
                if item.problem is None:
                    transport = self._transport_for(item)
                    marked = marks.submit(marker.step, unstored, item, self._moment(now))
                    unstored = None
                    try:
                        result = send_prepared(item, transport, before_handover=lambda m=marked: _ours(m))
                    except _LeaseLost:
                        done += 1  # the claim is no longer this worker's: nothing was handed over
                        continue
                    if not marked.result():  # the relay refused before the hand-over, and the lease is gone
                        done += 1
                        continue
                else:
                    result = send_prepared(item, self.transport)
                done += 1
                if result.outcome in (Outcome.SENT, Outcome.RETRY, Outcome.FAILED):
                    unstored = result
                report.add(result)
                if item.mailbox_id is None:
                    self._watch_relay(result, now)
                else:
                    self._watch_mailbox(item, result, now)
                pending.append(result)
                if len(pending) >= RECORD_EVERY:
                    recorder.record(pending, now)
                    pending, self._streak = [], []  # handed over: no longer ours to change
            if unstored is not None:
                marker.step(unstored, None, self._moment(now))
            if pending:
                recorder.record(pending, now)
                pending = []
            release_claims(benched + [p.delivery_id for p in prepared[done:]], now)  # stopping or pausing
        except BaseException:
            # The database (or a recording) failed: nothing more is sent; hold what is in hand.
            recorder.join()
            self.unrecorded += recorder.failed + pending
            recorder.failed = []
            self.unreleased += benched + [p.delivery_id for p in prepared[done:]]
            raise
        finally:
            marks.shutdown(wait=True)
            marker.close()

    def _transport_for(self, item):
        """The default transport, or the mailbox's own (logged in as it, opened once a run). With
        the outbox transport every message stays in the outbox, mailboxes' too."""
        if item.mailbox_id is None or self._stores_copies:
            return self.transport
        if item.mailbox_id not in self._transports:
            mailbox = db.session.get(Mailbox, item.mailbox_id)
            try:
                self._transports[item.mailbox_id] = mailboxes.transport_for(mailbox)
            except SecretUnreadable as exc:
                self._transports[item.mailbox_id] = _Unusable(str(exc))
        return self._transports[item.mailbox_id]

    def _watch_mailbox(self, item, result: SendResult, now: datetime) -> None:
        """A mailbox whose server refuses its login, its TLS or its sender address is marked
        failing (a person must look); one whose server keeps failing for a while rests for
        WORKER_PAUSE_SECONDS. Either way its other messages wait, their attempts not counted."""
        error = result.error
        if result.outcome in (Outcome.SENT, Outcome.FAILED) and not _sender_refused(error):
            self._mailbox_failures.pop(item.mailbox_id, None)
            return
        if isinstance(error, mailer.TransportConfigError) or _sender_refused(error):
            result.outcome, result.relay_down_until = Outcome.RETRY, now
            mailboxes.mark_failing(item.mailbox_id, str(error), now=now)
        elif result.outcome == Outcome.RETRY:
            self._mailbox_failures[item.mailbox_id] += 1
            if self._mailbox_failures[item.mailbox_id] < self.app.config["WORKER_PAUSE_AFTER_FAILURES"]:
                return
            until = now + timedelta(seconds=self.app.config["WORKER_PAUSE_SECONDS"])
            result.relay_down_until = until
            mailboxes.rest(item.mailbox_id, until=until, error=str(error))
        else:
            return
        db.session.commit()
        self._benched.add(item.mailbox_id)

    def _moment(self, now: datetime) -> datetime:
        """The time a message is marked at: the run's time when one was given, else the clock's."""
        return now if self._fixed_now else self.clock()

    def _watch_relay(self, result: SendResult, now: datetime) -> None:
        """Count temporary failures in a row; after WORKER_PAUSE_AFTER_FAILURES of them (or one
        when probing), pause sending for WORKER_PAUSE_SECONDS. The messages the relay refused in
        that row (in this batch) go again when the pause ends, their attempt not counted: the
        fault was the relay's. Any answer from the relay that is not a temporary failure means
        it works: the count starts again."""
        if result.outcome == Outcome.RETRY:
            self.transport_failures += 1
            self._streak.append(result)
            if self.probing or self.transport_failures >= self.app.config["WORKER_PAUSE_AFTER_FAILURES"]:
                seconds = self.app.config["WORKER_PAUSE_SECONDS"]
                self.paused_until, self.probing = now + timedelta(seconds=seconds), False
                for refused in self._streak:
                    refused.relay_down_until = self.paused_until
                log.warning(
                    "pausing sends: the relay keeps failing",
                    extra={"failures": self.transport_failures, "pause_seconds": seconds},
                )
        elif result.outcome in (Outcome.SENT, Outcome.FAILED):
            if self.probing:
                log.info("the relay answers again: sending resumes")
            self.transport_failures, self.probing, self._streak = 0, False, []

    def run_forever(self) -> None:
        """The loop: work, then sleep until something may be due."""
        self.install_signal_handlers()
        poll = self.app.config["WORKER_POLL_SECONDS"]
        last_prune = 0.0
        log.info("worker started", extra={"transport": type(self.transport).__name__})
        while not self.stopping:
            try:
                report = self.run_once()
                if report.sent or report.failed or report.tasks or report.reaped:
                    log.info("worker batch", extra={k: v for k, v in vars(report).items() if k != "inbox"})
                if report.inbox and report.inbox.messages:
                    log.info("mailboxes read", extra=vars(report.inbox))
                if time.monotonic() - last_prune > 3600:
                    with self.app.app_context():
                        prune_idempotency_keys()
                        db.session.remove()
                    last_prune = time.monotonic()
            except Exception:
                log.exception("worker iteration failed; retrying")
            self._sleep_interruptibly(poll)
        self._settle_before_exit()
        closer = getattr(self.transport, "close", None)
        if closer:
            closer()
        log.info("worker stopped")

    def _settle_before_exit(self) -> None:
        if not (self.unrecorded or self.unreleased):
            return
        try:
            with self.app.app_context():
                self._settle(self.clock())
                db.session.remove()
        except Exception:
            log.exception("could not record what was in hand; leases will settle it")

    def _sleep_interruptibly(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self.sleep(min(0.5, deadline - time.monotonic()))


def _sender_refused(error) -> bool:
    """A permanent refusal of the sender address (MAIL FROM): the mailbox's problem, not the contact's."""
    return isinstance(error, mailer.PermanentSendError) and error.stage == "mail"


class _Unusable:
    """The transport of a mailbox that cannot log in at all (its password cannot be decrypted)."""

    stores_messages = False

    def __init__(self, reason: str):
        self.reason = reason

    def send(self, *args, **kwargs):
        raise mailer.TransportConfigError(None, self.reason, stage="auth")

    def close(self) -> None:
        pass


class _LeaseLost(Exception):
    """The message's claim is no longer this worker's: it must not be handed over."""


def _ours(marked: Future) -> None:
    """Wait for the message's mark; raise _LeaseLost when it found the claim gone (and the
    database's error when the mark failed), so the message is withdrawn before its hand-over."""
    if not marked.result():
        raise _LeaseLost


class _Recorder:
    """Records a group of outcomes on a thread of its own while the worker sends the next group
    (or claims the next batch), so that the database's work on one overlaps the SMTP
    conversation of the other. One group at a time; the worker waits for it at the next hand-over
    and at the end of its run."""

    def __init__(self, app: Flask, store_copy: bool):
        self.app = app
        self.store_copy = store_copy
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.failed: list[SendResult] = []  # the group whose recording failed

    def record(self, results: list[SendResult], now: datetime) -> None:
        """Start recording `results` once the group before is recorded (raising its error, if any)."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(results, now), name="drumbeat-recorder")
        self._thread.start()

    def wait(self) -> None:
        """Wait until the group being recorded is; raise the error its recording failed with."""
        self.join()
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, results: list[SendResult], now: datetime) -> None:
        try:
            with self.app.app_context():  # its own session and connection
                try:
                    record_outcomes(results, store_copy=self.store_copy, now=now)
                finally:
                    db.session.remove()
        except BaseException as exc:  # handed over to the worker's thread by wait()
            self.error, self.failed = exc, results

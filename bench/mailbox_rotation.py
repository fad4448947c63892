"""Sending from mailboxes: one campaign through 1 mailbox against the same through 5, and raw smtplib.

One aiosmtpd server in this process that wants AUTH (tests/smtp_sink.py's AuthSink: PLAIN/LOGIN
without TLS, five logins). Each mailbox is made through POST /mailboxes and logs in as its own
user; no daily cap, no ramp, no gap. The campaign (one step, N contacts, default 2,000) is made and
launched through the API and sent by one `Worker.run_once`: claim, choose each new contact's
mailbox, render, build, send over that mailbox's own connection (SmtpTransport's default: a new
connection and login every 100 messages), record.

Baseline (same run, same server): raw smtplib, logged in once, sending N pre-built messages of
the same shape over one connection.

After an untimed warm-up (200 messages, 5 mailboxes), each repetition runs raw, then the
1-mailbox and the 5-mailbox campaign (their order alternating by repetition), each campaign on a
freshly migrated database. The CPU time of this process per message (worker and SMTP server
threads) is printed too: under other load on the host it moves less than the rates do. Target: 5 mailboxes >= 0.9 x the
1-mailbox rate (rotating among mailboxes must not cost throughput).

    .venv/bin/python bench/mailbox_rotation.py [--messages N] [--repeat 5] [--profile] [--database-url URL]
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench`, `tests` and `webapp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.mail_setup import use_repo_root

    use_repo_root()

import argparse
import cProfile
import logging
import os
import tempfile
import time
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta

from aiosmtpd.controller import Controller

from bench.common import cleanup, dispose, load_average, make_persona, median, print_header, stopwatch
from bench.mail_setup import add_mailbox, fingerprint, fresh_app, mailbox_campaign, profile_report, scratch_database
from bench.smtp_send import free_port, raw_rate
from tests.smtp_sink import AuthSink
from webapp.engine.mailer import SmtpTransport

TARGET_RATIO = 0.9
CODE = [
    "webapp/worker.py",
    "webapp/services/sending/claim.py",
    "webapp/services/sending/settings.py",
    "webapp/services/mailboxes.py",
    "webapp/engine/mailer.py",
]
LOGINS = {f"rep{i}": f"rep{i}-secret" for i in range(5)}
STEP = {"subject": "Quick question, {{first_name}}", "body": "Hi {{first_name}},\n\nDo you have 15 minutes this week?"}


def quiet_aiosmtpd() -> None:
    """No warning per connection about AUTH without TLS: that is the benchmark's choice."""
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)


def worker_rate(
    url: str, port: int, sink: AuthSink, n: int, mailboxes: int, profiler=None
) -> tuple[float, float, Counter]:
    """One campaign of `n` contacts sending from `mailboxes` mailboxes: (msg/s, this process's CPU
    ms per message, the SMTP server's included, messages by login)."""
    from webapp.worker import Worker

    app = fresh_app(url)
    quiet_aiosmtpd()  # after the app set up logging
    app.config["WORKER_BATCH_SIZE"] = 100
    _, api = make_persona(app, "rotation")
    ids = [add_mailbox(api, login, LOGINS[login], port)["id"] for login in list(LOGINS)[:mailboxes]]
    contacts = [{"contact": {"email": f"person{i}@example.com", "first_name": f"Person{i}"}} for i in range(n)]
    mailbox_campaign(api, ids, contacts, [STEP])
    # The default transport (messages without a mailbox) is SMTP too: with the outbox transport
    # the worker would keep every message, mailboxes' included, in the outbox.
    transport = SmtpTransport("127.0.0.1", port, username="rep0", password=LOGINS["rep0"], local_hostname="localhost")
    worker = Worker(app, transport=transport)
    before = len(sink.received)
    if profiler is not None:
        profiler.enable()
    try:
        cpu = time.process_time()
        with stopwatch() as elapsed:
            report = worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1))
        cpu = time.process_time() - cpu
    finally:
        if profiler is not None:
            profiler.disable()
    transport.close()
    dispose(app)
    by_login = Counter(received[4] for received in sink.received[before:])
    if report.sent != n or sum(by_login.values()) != n:
        raise SystemExit(f"worker sent {report.sent} of {n} (the server got {dict(by_login)}): {report}")
    sink.received.clear()
    return n / elapsed(), cpu * 1000 / n, by_login


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="cProfile both worker runs of the last repetition")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL URL (its schema is WIPED); default: a SQLite file in a new temp dir",
    )
    args = p.parse_args()

    quiet_aiosmtpd()
    sink = AuthSink(dict(LOGINS))
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=sink.authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    rows = []
    profilers = {}
    try:
        with scratch_database(args.database_url) as url:
            print_header(f"mailbox rotation: {args.messages:,} messages, 1 vs 5 mailboxes vs raw smtplib", url)
            print(f"   files under test (git blob ids): {fingerprint(CODE)}")
            # Untimed warm-up: the first run in a process pays for imports and statement caches.
            worker_rate(url, port, sink, min(200, args.messages), 5)
            for rep in range(args.repeat):
                raw = raw_rate(port, args.messages, sender="rep0@acme.test", login=("rep0", LOGINS["rep0"]))
                sink.received.clear()
                rates, cpus, spread = {}, {}, {}
                for count in (1, 5) if rep % 2 == 0 else (5, 1):
                    profiler = None
                    if args.profile and rep == args.repeat - 1:
                        profiler = profilers[count] = cProfile.Profile()
                    rates[count], cpus[count], spread[count] = worker_rate(
                        url, port, sink, args.messages, count, profiler
                    )
                rows.append((raw, rates[1], rates[5], cpus[1], cpus[5]))
                print(
                    f"   rep {rep + 1}: raw {raw:6.0f} msg/s | "
                    f"1 mailbox {rates[1]:5.0f} msg/s ({cpus[1]:.2f} ms CPU/msg) | "
                    f"5 mailboxes {rates[5]:5.0f} msg/s ({cpus[5]:.2f} ms CPU/msg; "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(spread[5].items()))}) | "
                    f"5/1 {rates[5] / rates[1]:.2f} | {load_average()}",
                    flush=True,
                )
            if args.database_url:
                cleanup(url)  # SQLite: the temp dir goes with scratch_database
    finally:
        controller.stop()

    def line(label: str, values: list[float], fmt: str) -> None:
        print(f"   {label:<36} {median(values):{fmt}}   {' / '.join(f'{v:{fmt}}' for v in values)}")

    print()
    print(f"   {'':<36} {'median':>6}   runs")
    line("raw smtplib, one connection (msg/s)", [r[0] for r in rows], "6.0f")
    line("worker, 1 mailbox (msg/s)", [r[1] for r in rows], "6.0f")
    line("worker, 5 mailboxes (msg/s)", [r[2] for r in rows], "6.0f")
    line("CPU ms per message, 1 mailbox", [r[3] for r in rows], "6.2f")
    line("CPU ms per message, 5 mailboxes", [r[4] for r in rows], "6.2f")
    line("ratio 5 mailboxes / 1 mailbox", [r[2] / r[1] for r in rows], "6.2f")
    line("ratio 1 mailbox / raw", [r[1] / r[0] for r in rows], "6.2f")
    line("ratio 5 mailboxes / raw", [r[2] / r[0] for r in rows], "6.2f")
    ratio = median([r[2] / r[1] for r in rows])
    print(
        f"RESULT mailbox_rotation: 1 mailbox {median([r[1] for r in rows]):.0f} msg/s, 5 mailboxes "
        f"{median([r[2] for r in rows]):.0f} msg/s, raw {median([r[0] for r in rows]):.0f} msg/s; "
        f"5/1 ratio {ratio:.2f} (target >= {TARGET_RATIO}): {'MET' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    for count, profiler in sorted(profilers.items()):
        path = os.path.join(tempfile.gettempdir(), f"mailbox_rotation_{count}.prof")
        print(f"\n   cProfile of the worker run with {count} mailbox(es) (raw stats in {path}):")
        print(profile_report(profiler, path=path))


if __name__ == "__main__":
    main()

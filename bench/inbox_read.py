"""Reading a mailbox: Drumbeat's inbox pass against bare imaplib, on one Dovecot inbox.

The inbox (a throwaway Dovecot from tests/imap_server.py) holds N messages (default 10,000),
shuffled: 20 % threaded replies to messages Drumbeat sent (In-Reply-To = the Message-ID of a real
Delivery, `<delivery-uuid@acme.test>`), 3 % out-of-office answers to them (Auto-Submitted, a
return date), 2 % DSN bounces returning them (multipart/report), 5 % personal mail from strangers,
70 % newsletters (bulk headers, DKIM, an HTML body). The deliveries come from a launched two-step
campaign sent through the API and `Worker.run_once` with the outbox transport, from a mailbox
whose IMAP settings point at that inbox.

Baseline (bare imaplib, same inbox, same run): log in, EXAMINE, `UID SEARCH ALL`, then
`UID FETCH a:b (UID RFC822.SIZE BODY.PEEK[HEADER])` in batches of 200 (the reader's command and
batch size) and `email.message_from_bytes` of every header block (Message-ID, In-Reply-To and
From looked up). It is timed once before and once after Drumbeat's pass; the median counts.
Drumbeat: one `inbox.read_due_mailboxes(now, every=timedelta(0))` pass: lease, connect, headers
by batch, classify, match to deliveries, fetch the bodies of the matched and of bounce-looking
messages, store, apply (events, stops, out-of-office waits), save the cursor.

Every repetition builds everything again (fresh database, new Dovecot user), so each pass reads
10,000 new messages. Target: Drumbeat >= 0.5 x the baseline's messages/s.

    .venv/bin/python bench/inbox_read.py [--messages N] [--repeat 3] [--profile] [--breakdown] [--database-url URL]
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench`, `tests` and `webapp` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.mail_setup import use_repo_root

    use_repo_root()

import argparse
import cProfile
import email
import imaplib
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import sqlalchemy as sa

from bench.breakdown import Breakdown, counting
from bench.common import cleanup, dispose, load_average, make_persona, median, print_header, stopwatch
from bench.mail_setup import (
    add_mailbox,
    dovecot_server,
    fingerprint,
    fresh_app,
    inclusive_times,
    mailbox_campaign,
    profile_report,
    scratch_database,
)
from tests.imap_server import DovecotServer, ImapUser

TARGET_RATIO = 0.5
CODE = ["webapp/services/inbox.py", "webapp/engine/imap.py", "webapp/engine/inbound.py"]
FETCH_BATCH = 200  # webapp.services.inbox.BATCH
APPEND_CHUNK = 250  # messages per MULTIAPPEND command
STEPS = [
    {"subject": "Quick question, {{first_name}}", "body": "Hi {{first_name}},\n\nDo you have 15 minutes this week?"},
    {"subject": "", "body": "Bumping this up, {{first_name}}.", "delay_days": 3},
]
# Inclusive times printed with --profile: (label, file, function).
HOT_SPOTS = [
    ("ImapReader.headers (fetch 200 messages' header fields)", "engine/imap.py", "headers"),
    ("  imaplib._get_response (one call per response line)", "imaplib.py", "_get_response"),
    ("_Batch.run (one batch of 200)", "services/inbox.py", "run"),
    ("  inbound.classify (headers of all, whole message of some)", "engine/inbound.py", "classify"),
    ("  inbound.looks_like_bounce", "engine/inbound.py", "looks_like_bounce"),
    ("  _Batch._match (delivery and address lookups)", "services/inbox.py", "_match"),
    ("  _Batch._read_bodies (1 UID FETCH a batch + classify each whole message)", "services/inbox.py", "_read_bodies"),
    ("    ImapReader.bodies", "engine/imap.py", "bodies"),
    ("  _Batch._preview (first 8 KB of the unmatched, for a snippet)", "services/inbox.py", "_preview"),
    ("    ImapReader.beginnings", "engine/imap.py", "beginnings"),
    ("  _Batch._store (one multi-row INSERT per batch)", "services/inbox.py", "_store"),
    ("    SQLAlchemy compiling statements (all callers)", "sql/elements.py", "_compiler"),
    ("  _Batch._apply (events, stops, out-of-office waits)", "services/inbox.py", "_apply"),
    ("email.message_from_bytes (all callers)", "email/__init__.py", "message_from_bytes"),
    ("Session.commit", "orm/session.py", "commit"),
]
# Timed with --breakdown (wall clock, inclusive, ~1 us per call; bench/breakdown.py).
BREAKDOWN = [
    (1, "webapp.engine.imap:ImapReader.headers", "ImapReader.headers"),
    (1, "webapp.services.inbox:_Batch.run", "_Batch.run"),
    (2, "webapp.engine.inbound:classify", "inbound.classify"),
    (2, "webapp.engine.inbound:looks_like_bounce", "inbound.looks_like_bounce"),
    (2, "webapp.services.inbox:_Batch._match", "_Batch._match"),
    (2, "webapp.services.inbox:_Batch._read_bodies", "_Batch._read_bodies"),
    (3, "webapp.engine.imap:ImapReader.bodies", "ImapReader.bodies"),
    (2, "webapp.services.inbox:_Batch._preview", "_Batch._preview"),
    (3, "webapp.engine.imap:ImapReader.beginnings", "ImapReader.beginnings"),
    (2, "webapp.services.inbox:_Batch._store", "_Batch._store"),
    (2, "webapp.services.inbox:_Batch._apply", "_Batch._apply"),
]
# Of every 100 messages: (kind, how many).
MIX = (("reply", 20), ("ooo", 3), ("bounce", 2), ("stranger", 5), ("newsletter", 70))  # issue 10: 20 % replies


# -- the inbox's messages ----------------------------------------------------------------------------


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _transport_headers(rng: random.Random, sender_domain: str, when: datetime) -> str:
    """What a real inbox's message carries before its own headers: Received hops, authentication."""
    stamp = format_datetime(when)
    hops = "".join(
        f"Received: from mx{hop}.{sender_domain} (mx{hop}.{sender_domain} [203.0.113.{rng.randint(1, 254)}])\n"
        f"\tby mail.acme.test (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n"
        f"\tfor <ada@acme.test>; {stamp}\n"
        for hop in range(3)
    )
    signature = "".join(f"\t{rng.getrandbits(300):076x}\n" for _ in range(4))
    return (
        "Return-Path: <bounce-" + f"{rng.getrandbits(48):012x}@{sender_domain}>\n" + hops + "Authentication-Results: "
        f"mail.acme.test; dkim=pass header.d={sender_domain}; spf=pass smtp.mailfrom={sender_domain}; dmarc=pass\n"
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={sender_domain}; s=s1;\n"
        "\th=from:to:subject:date:message-id:list-unsubscribe;\n"
        f"\tbh={rng.getrandbits(256):064x};\n\tb=\n{signature}"
    )


def newsletter(rng: random.Random, i: int, when: datetime) -> bytes:
    sender = f"news{i % 300}.example"
    links = "".join(
        f'<tr><td><a href="https://{sender}/article/{i}-{k}?utm_source=newsletter">Story {k}: {"lorem ipsum " * 6}'
        f"</a><p>{'dolor sit amet consectetur ' * 8}</p></td></tr>\n"
        for k in range(12)
    )
    return _crlf(
        _transport_headers(rng, sender, when) + f"From: Weekly Digest <digest@{sender}>\n"
        "To: ada@acme.test\n"
        f"Subject: This week at {sender}: {i % 97} stories you missed\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <nl-{i}-{rng.getrandbits(32):08x}@{sender}>\n"
        f"List-Id: Weekly digest <digest.{sender}>\n"
        f"List-Unsubscribe: <https://{sender}/u/{rng.getrandbits(64):016x}>, <mailto:unsub@{sender}>\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
        "Precedence: bulk\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="NL"\n\n'
        "--NL\nContent-Type: text/plain; charset=utf-8\n\n"
        f"This week's stories at {sender}. View it in your browser.\n"
        "--NL\nContent-Type: text/html; charset=utf-8\n\n"
        f"<html><body><table>{links}</table></body></html>\n--NL--\n"
    )


def stranger(rng: random.Random, i: int, when: datetime) -> bytes:
    domain = f"corp{i % 50}.example"
    return _crlf(
        _transport_headers(rng, domain, when) + f"From: Sam Person{i} <sam{i}@{domain}>\n"
        "To: ada@acme.test\n"
        f"Subject: Intro: partnership idea {i}\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <{rng.getrandbits(64):016x}@{domain}>\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        f"Hi Ada,\n\nA friend said you might like to hear about idea {i}.\n\nSam\n"
    )


def reply(rng: random.Random, sent: dict, when: datetime) -> bytes:
    domain = sent["email"].split("@")[1]
    return _crlf(
        _transport_headers(rng, domain, when) + f"From: {sent['first_name']} <{sent['email']}>\n"
        "To: Ada at Acme <ada@acme.test>\n"
        f"Subject: Re: Quick question, {sent['first_name']}\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <{rng.getrandbits(64):016x}@{domain}>\n"
        f"In-Reply-To: {sent['message_id']}\nReferences: {sent['message_id']}\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Sounds interesting, let's talk on Thursday.\n\n-- \nBob\n\n"
        f"On Mon, 3 Mar 2031 at 09:00, Ada wrote:\n> Hi {sent['first_name']},\n>\n"
        "> Do you have 15 minutes this week?\n"
    )


def out_of_office(rng: random.Random, sent: dict, when: datetime) -> bytes:
    domain = sent["email"].split("@")[1]
    back = (when + timedelta(days=12)).strftime("%d %B %Y")
    return _crlf(
        _transport_headers(rng, domain, when) + f"From: {sent['first_name']} <{sent['email']}>\n"
        "To: ada@acme.test\n"
        f"Subject: Automatic reply: Quick question, {sent['first_name']}\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <ooo-{rng.getrandbits(64):016x}@{domain}>\n"
        "Auto-Submitted: auto-replied\n"
        f"In-Reply-To: {sent['message_id']}\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        f"I am out of the office with limited access to email. I will be back on {back}.\n"
    )


def bounce(rng: random.Random, sent: dict, when: datetime) -> bytes:
    recipient = sent["email"]
    returned = (
        f"From: Ada at Acme <ada@acme.test>\nTo: {recipient}\nSubject: Quick question, {sent['first_name']}\n"
        f"Message-ID: {sent['message_id']}\nX-Drumbeat-Delivery-Id: {sent['delivery_id']}\n"
    )
    return _crlf(
        "From: MAILER-DAEMON@mail.acme.test (Mail Delivery System)\n"
        "To: ada@acme.test\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"Date: {format_datetime(when)}\n"
        f"Message-ID: <dsn-{rng.getrandbits(64):016x}@mail.acme.test>\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain; charset=utf-8\n\nYour message could not be delivered to <{recipient}>.\n\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mail.acme.test\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\n\n"
        f"--B\nContent-Type: text/rfc822-headers\n\n{returned}\n--B--\n"
    )


def plan(n: int) -> dict[str, int]:
    counts = {kind: n * share // 100 for kind, share in MIX}
    counts["newsletter"] += n - sum(counts.values())
    return counts


def build_inbox(counts: dict[str, int], sends: list[dict], now: datetime, seed: int) -> list[bytes]:
    """The inbox's messages, shuffled; replies, out-of-office answers and bounces each answer a
    different one of `sends`."""
    rng = random.Random(seed)
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)
    answered = iter(sends)
    builders = {"reply": reply, "ooo": out_of_office, "bounce": bounce}
    messages = []
    for i, kind in enumerate(kinds):
        when = now - timedelta(minutes=rng.randint(1, 240))
        if kind in builders:
            messages.append(builders[kind](rng, next(answered), when))
        else:
            messages.append((newsletter if kind == "newsletter" else stranger)(rng, i, when))
    return messages


def multiappend(user: ImapUser, messages: list[bytes]) -> None:
    """APPEND them over one connection, APPEND_CHUNK per command (MULTIAPPEND, LITERAL+: no waiting
    for continuations)."""
    with user.connect() as conn:
        typ, data = conn.capability()  # after the login: MULTIAPPEND is listed only then
        caps = data[0].decode().upper().split() if typ == "OK" else []
        if "MULTIAPPEND" not in caps or "LITERAL+" not in caps:
            raise SystemExit(f"the IMAP server lacks MULTIAPPEND or LITERAL+: {caps}")
        for start in range(0, len(messages), APPEND_CHUNK):
            tag = f"MA{start}".encode()
            parts = [tag, b" APPEND INBOX"]
            for raw in messages[start : start + APPEND_CHUNK]:
                parts += [b" {%d+}\r\n" % len(raw), raw]
            parts.append(b"\r\n")
            conn.send(b"".join(parts))
            while True:
                line = conn.readline()
                if not line:
                    raise SystemExit("the IMAP server closed the connection during APPEND")
                if line.startswith(tag + b" "):
                    if not line.startswith(tag + b" OK"):
                        raise SystemExit(f"APPEND failed: {line!r}")
                    break


# -- the two readers -----------------------------------------------------------------------------------


def bare_imaplib(user: ImapUser) -> int:
    """The baseline: every message's header block fetched in batches of 200 and parsed."""
    conn = imaplib.IMAP4(user.host, user.port, timeout=30)
    try:
        conn.login(user.username, user.password)
        typ, _ = conn.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = conn.uid("SEARCH", "ALL")
        uids = [int(uid) for uid in data[0].split()]
        seen = 0
        for start in range(0, len(uids), FETCH_BATCH):
            chunk = uids[start : start + FETCH_BATCH]
            typ, data = conn.uid("FETCH", f"{chunk[0]}:{chunk[-1]}", "(UID RFC822.SIZE BODY.PEEK[HEADER])")
            assert typ == "OK"
            for item in data:
                if isinstance(item, tuple):
                    message = email.message_from_bytes(item[1])
                    message.get("Message-ID"), message.get("In-Reply-To"), message.get("From")
                    seen += 1
        return seen
    finally:
        conn.logout()


def drumbeat(app, now: datetime, profiler: cProfile.Profile | None, breakdown: Breakdown | None):
    from webapp.services import inbox

    with app.app_context():
        if profiler is not None:
            profiler.enable()
        try:
            with counting(breakdown):
                report = inbox.read_due_mailboxes(now, every=timedelta(0))
        finally:
            if profiler is not None:
                profiler.disable()
    return report


def empty_poll_ms(app, now: datetime, times: int = 20) -> float:
    """The median time of a poll that finds nothing new (log in, UIDVALIDITY, list: nothing)."""
    from webapp.services import inbox

    spent = []
    with app.app_context():
        for _ in range(times):
            started = time.perf_counter()
            report = inbox.read_due_mailboxes(now, every=timedelta(0))
            spent.append((time.perf_counter() - started) * 1000)
            assert report.messages == 0 and not report.errors, report
    return median(spent)


def print_breakdown(breakdown: Breakdown, total: float, n: int) -> None:
    print(f"\n   Drumbeat's pass, wall clock by function (inclusive; {total:.2f} s, {total / n * 1e6:.0f} us/message):")
    for level, target, label in breakdown.targets:
        spent, calls = breakdown.totals[target], breakdown.calls[target]
        print(
            f"   {'  ' * level}{label:<{36 - 2 * level}} {spent:7.2f} s {spent / total:6.1%} "
            f"{spent / n * 1e6:7.0f} us/message  {calls:>6} calls"
        )
    sql = breakdown.sql_time
    print(
        f"     {'[SQL statements, across the above]':<34} {sql:7.2f} s {sql / total:6.1%} "
        f"{sql / n * 1e6:7.0f} us/message  {breakdown.sql_count:>6} statements"
    )


# -- one repetition ------------------------------------------------------------------------------------


def setup(url: str, server: DovecotServer, n: int, seed: int):
    """A fresh database with a mailbox on a new Dovecot user, the campaign's sends, and the inbox
    filled. Returns (app, user, counts, now)."""
    from webapp.extensions import db
    from webapp.models import CampaignEnrollment, Contact, Delivery
    from webapp.worker import Worker

    counts = plan(n)
    answered = counts["reply"] + counts["ooo"] + counts["bounce"]
    app = fresh_app(url)
    _, api = make_persona(app, "inbox")
    user = server.add_user()
    imap = {"host": user.host, "port": user.port, "security": "none", "username": user.username}
    mailbox = add_mailbox(api, "ada", "unused", 9, imap={**imap, "password": user.password})
    contacts = [
        {"contact": {"email": f"person{i}@client{i % 97}.example", "first_name": f"Person{i}"}} for i in range(answered)
    ]
    mailbox_campaign(api, [mailbox["id"]], contacts, STEPS)
    start = datetime.now(UTC)
    report = Worker(app).run_once(now=start + timedelta(minutes=1))  # the outbox transport
    if report.sent != answered:
        raise SystemExit(f"the worker sent {report.sent} of {answered}: {report}")
    with app.app_context():
        rows = db.session.execute(
            sa.select(Delivery.id, Delivery.message_id, Contact.email, Contact.first_name)
            .join(CampaignEnrollment, CampaignEnrollment.id == Delivery.enrollment_id)
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .order_by(Contact.email)
        ).all()
        db.session.remove()
    sends = [
        {"delivery_id": r.id, "message_id": r.message_id, "email": r.email, "first_name": r.first_name} for r in rows
    ]
    random.Random(seed).shuffle(sends)
    multiappend(user, build_inbox(counts, sends, start, seed))
    return app, user, counts, start + timedelta(hours=1)


def check(report, counts: dict[str, int], n: int) -> None:
    expected = (n, counts["reply"], counts["ooo"], counts["bounce"], counts["stranger"] + counts["newsletter"])
    got = (report.messages, report.replies, report.auto_replies, report.bounces, report.unmatched)
    if got != expected or report.errors:
        raise SystemExit(f"Drumbeat's pass read {got}, expected {expected}; errors: {report.errors}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile Drumbeat's pass (last repetition) and print it")
    p.add_argument("--breakdown", action="store_true", help="time Drumbeat's main functions (last repetition)")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL URL (its schema is WIPED); default: a SQLite file in a new temp dir",
    )
    args = p.parse_args()

    server = dovecot_server()
    rows, polls = [], []
    profiler = breakdown = None
    try:
        with scratch_database(args.database_url) as url:
            print_header(f"inbox read: {args.messages:,} messages, Drumbeat vs bare imaplib", url)
            print(f"   files under test (git blob ids): {fingerprint(CODE)}")
            for rep in range(args.repeat):
                with stopwatch() as setup_time:
                    app, user, counts, now = setup(url, server, args.messages, seed=rep)
                bare_imaplib(user)  # warm-up: Dovecot builds its index cache on the first header fetch
                with stopwatch() as t1:
                    seen = bare_imaplib(user)
                if seen != args.messages:
                    raise SystemExit(f"bare imaplib saw {seen} messages, not {args.messages}")
                last = rep == args.repeat - 1
                profiler = cProfile.Profile() if args.profile and last else None
                breakdown = Breakdown(BREAKDOWN).install(app, active=False) if args.breakdown and last else None
                with stopwatch() as t_app:
                    report = drumbeat(app, now, profiler, breakdown)
                if breakdown is not None:
                    breakdown.uninstall()
                check(report, counts, args.messages)
                polls.append(empty_poll_ms(app, now))
                with stopwatch() as t2:
                    bare_imaplib(user)
                raw = args.messages / median([t1(), t2()])
                app_rate = args.messages / t_app()
                rows.append((raw, app_rate))
                print(
                    f"   rep {rep + 1}: setup {setup_time():5.1f} s | bare imaplib {args.messages / t1():7.0f} and "
                    f"{args.messages / t2():7.0f} msg/s | Drumbeat {app_rate:6.0f} msg/s ({t_app():.2f} s; "
                    f"{report.replies} replies, {report.auto_replies} out-of-office, {report.bounces} bounces, "
                    f"{report.unmatched} unmatched) | ratio {app_rate / raw:.2f} | {load_average()}",
                    flush=True,
                )
                dispose(app)
            if args.database_url:
                cleanup(url)  # SQLite: the temp dir goes with scratch_database
    finally:
        server.stop()

    raws, apps = [r for r, _ in rows], [a for _, a in rows]
    ratios = [a / r for r, a in rows]
    print()
    print(f"   {'':<34} {'median':>8}   runs")
    print(f"   {'bare imaplib (msg/s)':<34} {median(raws):8.0f}   {' / '.join(f'{v:.0f}' for v in raws)}")
    print(f"   {'Drumbeat read pass (msg/s)':<34} {median(apps):8.0f}   {' / '.join(f'{v:.0f}' for v in apps)}")
    print(f"   {'ratio Drumbeat / bare':<34} {median(ratios):8.2f}   {' / '.join(f'{v:.2f}' for v in ratios)}")
    print(f"   {'poll with nothing new (ms)':<34} {median(polls):8.1f}   {' / '.join(f'{v:.1f}' for v in polls)}")
    print(
        f"RESULT inbox_poll: a poll with nothing new takes {median(polls):.1f} ms "
        f"(target < 50 ms): {'MET' if median(polls) < 50 else 'MISSED'}"
    )
    held = median(ratios) >= TARGET_RATIO
    print(
        f"RESULT inbox_read: Drumbeat {median(apps):.0f} msg/s, bare imaplib {median(raws):.0f} msg/s, "
        f"ratio {median(ratios):.2f} (target >= {TARGET_RATIO}): {'MET' if held else 'MISSED'}"
    )
    if breakdown is not None:
        print_breakdown(breakdown, t_app(), args.messages)
    if profiler is not None:
        print()
        path = os.path.join(tempfile.gettempdir(), "inbox_read.prof")
        total = inclusive_times(profiler, [("", "inbox.py", "read_due_mailboxes")])[0][1]
        print(f"\n   Drumbeat's pass under cProfile: {total:.1f} s (profiler overhead included); inclusive times:")
        for label, seconds, calls in inclusive_times(profiler, HOT_SPOTS):
            print(f"     {label:<62} {seconds:7.2f} s {seconds / total:6.1%}  {calls:>7} calls")
        print(f"\n   cProfile of Drumbeat's pass (last repetition; raw stats in {path}):")
        print(profile_report(profiler, path=path))


if __name__ == "__main__":
    main()

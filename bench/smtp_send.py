"""Messages per second from one worker to a local SMTP server, against raw smtplib.

Both paths send the same number of personalised messages to one aiosmtpd server in this
process. Raw: pre-built messages over one reused smtplib connection (no database, no
rendering). Worker: a launched one-step campaign sent by `Worker.run_once` (claim in batches,
render, build, send over a reused connection, record). Target: worker >= 50% of raw.

    .venv/bin/python -m bench.smtp_send [--database-url URL] [--messages N] [--relay-ms MS]
"""

import asyncio
import smtplib
import socket
from datetime import UTC, datetime, timedelta

from aiosmtpd.controller import Controller

from bench.common import cleanup, dispose, make_campaign, make_persona, parser, reset_database, stopwatch
from webapp.engine.mailer import SmtpTransport, build_message, make_message_id


class CountingSink:
    """Accepts every message; with `delay` (seconds) it answers DATA that much later, like a
    relay across a network that queues the message before it says 250."""

    def __init__(self, delay: float = 0.0):
        self.count = 0
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_rate(port: int, n: int, *, sender: str = "bench@example.com", login: tuple[str, str] | None = None) -> float:
    """Messages per second of raw smtplib: `n` pre-built messages over one connection (logged in as
    `login` when given), the baseline of the worker benchmarks."""
    messages = [
        build_message(
            from_addr=("Bench", sender),
            to_addr=f"person{i}@example.com",
            subject=f"Step 1 for Person{i}",
            text=f"Hello Person{i},\n\nQuick note.",
            html=f"<p>Hello Person{i},</p><p>Quick note.</p>",
            message_id=make_message_id(f"raw-{i}", "b.test"),
            unsubscribe_url=f"https://example.com/u/{i}",
        )
        for i in range(n)
    ]
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp, stopwatch() as elapsed:
        if login:
            smtp.login(*login)
        for i, message in enumerate(messages):
            smtp.sendmail(sender, [f"person{i}@example.com"], message)
    return n / elapsed()


def worker_rate(url: str, port: int, n: int) -> float:
    from bench.common import make_app
    from webapp.worker import Worker

    reset_database(url)
    app = make_app(url)
    app.config["WORKER_BATCH_SIZE"] = 100
    _, api = make_persona(app, "smtp")
    campaign = make_campaign(api, steps=1, launch=False)
    for start in range(0, n, 10_000):
        items = [
            {"contact": {"email": f"person{i}@example.com", "first_name": f"Person{i}"}}
            for i in range(start, min(n, start + 10_000))
        ]
        api.post(f"/instances/{campaign['instance_id']}/enrollments/bulk", {"contacts": items})
    api.patch(f"/instances/{campaign['instance_id']}", {"status": "active"})
    transport = SmtpTransport("127.0.0.1", port, local_hostname="localhost", max_messages_per_connection=100_000)
    worker = Worker(app, transport=transport)
    with stopwatch() as elapsed:
        report = worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1))
    transport.close()
    dispose(app)
    if report.sent != n:
        raise SystemExit(f"worker sent {report.sent} of {n}: {report}")
    return n / elapsed()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--relay-ms", type=float, default=0.0, help="the relay's delay before it accepts a message")
    args = p.parse_args()
    sink = CountingSink(args.relay_ms / 1000)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        raw = raw_rate(port, args.messages)
        app_rate = worker_rate(args.database_url, port, args.messages)
    finally:
        controller.stop()
        if not args.keep:
            cleanup(args.database_url)
    print(f"raw smtplib, one reused connection: {raw:8.0f} msg/s")
    print(f"worker (claim, render, send, record): {app_rate:8.0f} msg/s")
    print(f"ratio: {app_rate / raw:.0%} (target >= 50%)")


if __name__ == "__main__":
    main()

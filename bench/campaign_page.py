"""Campaign page: server time of GET /campaigns/<id> with 100,000 enrollments on PostgreSQL.

Dataset, built through the app's own paths: one workspace, a 3-step template, a campaign with
100,000 new contacts enrolled by 10 POSTs of 10,000 to the bulk enrollment endpoint, launched
(PATCH status active), 200 enrollments paused through the API, and 26,500 events (sent,
opened, replied, bounced) through services.events.ingest_events; then VACUUM ANALYZE, as
autovacuum would.

Timed: the whole HTML page as a signed-in browser gets it (session cookie, CSRF token, template
rendering, the enrollments' first page of 50 with its count, the unknown-deliveries box), through
Flask's test client. Also timed, for the record: other enrollment pages and filters, and the two
lazily loaded panels (performance, next sends) as htmx fetches them.

    createdb -h 127.0.0.1 -U postgres bench_page          # once (the script also creates it)
    .venv/bin/python -m bench.campaign_page [--database-url URL] [--requests N] [--keep] [--reuse]
"""

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa

from bench.common import (
    API,
    cleanup,
    dispose,
    is_postgres,
    load_average,
    make_app,
    make_campaign,
    median,
    parser,
    percentile,
    print_header,
    raw_pg_url,
    reset_database,
    stopwatch,
    verdict,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_page"
ENROLLMENTS = 100_000
BATCH = 10_000
PAUSED = 200
TARGET_MS = 50.0
EMAIL = "page-owner@bench.example.com"
PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
HTMX = {"HX-Request": "true"}


def ensure_database(url: str) -> None:
    """Create the scratch database if it does not exist yet (createdb, from Python)."""
    raw = raw_pg_url(url)
    base, name = raw.rsplit("/", 1)
    name = name.split("?", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"   created database {name}")


class Api:
    """JSON calls with the owner's API key (bench.common.Api needs a key we create here)."""

    def __init__(self, app, key: str):
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body=None, expect: int = 200):
        response = self.client.open(API + path, method=method, json=body, headers=self.headers)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_json()["data"]

    def post(self, path, body=None, *, expect: int = 200):
        return self.call("POST", path, body, expect)

    def get(self, path, *, expect: int = 200):
        return self.call("GET", path, expect=expect)

    def patch(self, path, body, *, expect: int = 200):
        return self.call("PATCH", path, body, expect)


def owner_api(app) -> Api:
    from webapp.extensions import db
    from webapp.services.api_keys import create_api_key_for_user
    from webapp.services.users import create_user

    with app.app_context():
        create_user(email=EMAIL, password=PASSWORD, workspace_name="Bench campaign page")
        _, key = create_api_key_for_user(email=EMAIL, name="bench")
        db.session.remove()
    return Api(app, key)


def build_dataset(app, url: str) -> str:
    api = owner_api(app)
    campaign = make_campaign(api, steps=3, name="Page bench", launch=False)
    instance_id = campaign["instance_id"]
    with stopwatch() as elapsed:
        for batch in range(ENROLLMENTS // BATCH):
            items = [
                {
                    "contact": {
                        "email": f"lead{i}@company{i % 997}.example.com",
                        "first_name": f"First{i}",
                        "last_name": f"Last{i % 5000}",
                        "company": f"Company {i % 997}",
                    }
                }
                for i in range(batch * BATCH, (batch + 1) * BATCH)
            ]
            report = api.post(f"/instances/{instance_id}/enrollments/bulk", {"contacts": items})
            assert report["enrolled"] == BATCH, report
    print(f"   enrolled {ENROLLMENTS:,} contacts through the bulk endpoint in {elapsed():.1f} s")
    with stopwatch() as elapsed:
        api.patch(f"/instances/{instance_id}", {"status": "active"})
    print(f"   launched in {elapsed():.1f} s")
    for number in range(1, PAUSED // 100 + 1):
        page = api.get(f"/instances/{instance_id}/enrollments?limit=100&page={number}&sort=email")
        for enrollment in page:
            api.patch(f"/enrollments/{enrollment['id']}", {"status": "paused"})
    add_events(app, instance_id, campaign["step_ids"][0])
    with psycopg.connect(raw_pg_url(url), autocommit=True) as conn, stopwatch() as elapsed:
        conn.execute("VACUUM ANALYZE")
    print(f"   VACUUM ANALYZE in {elapsed():.1f} s")
    return instance_id


def add_events(app, instance_id: str, step_id: str) -> None:
    from webapp.extensions import db
    from webapp.models import CampaignEnrollment, User, Workspace
    from webapp.schemas.events import EventIn
    from webapp.services.events import ingest_events

    plan = (("sent", 20_000), ("opened", 5_000), ("replied", 1_000), ("bounced", 500))
    start = datetime.now(UTC) - timedelta(days=20)
    with app.app_context(), stopwatch() as elapsed:
        workspace = db.session.scalar(sa.select(Workspace).join(User).where(User.email == EMAIL))
        ids = list(
            db.session.scalars(
                sa.select(CampaignEnrollment.id)
                .where(CampaignEnrollment.instance_id == uuid.UUID(instance_id))
                .order_by(CampaignEnrollment.id)
                .limit(20_000)
            )
        )
        stored, offset = 0, 0
        for kind, count in plan:
            # Replies and bounces go to other contacts than the opens, as in life; all were sent.
            chosen = ids[offset % len(ids) : offset % len(ids) + count] if kind != "sent" else ids[:count]
            offset += count if kind != "sent" else 0
            events = [
                EventIn.model_construct(
                    provider_event_id=f"page-{kind}-{n}",
                    type=kind,
                    enrollment_id=enrollment_id,
                    step_id=uuid.UUID(step_id),
                    occurred_at=start + timedelta(minutes=n % (20 * 24 * 60)),
                    metadata={},
                )
                for n, enrollment_id in enumerate(chosen)
            ]
            for first in range(0, len(events), 5_000):
                stored += ingest_events(workspace, events[first : first + 5_000], provider="bench").stored
        db.session.remove()
    print(f"   ingested {stored:,} events in {elapsed():.1f} s")


def find_instance(app) -> str:
    from webapp.extensions import db
    from webapp.models import CampaignInstance

    with app.app_context():
        instance_id = db.session.scalar(sa.select(CampaignInstance.id).where(CampaignInstance.name == "Page bench"))
        db.session.remove()
    if instance_id is None:
        raise SystemExit("--reuse: no dataset in this database; run once with --keep first")
    return str(instance_id)


def signed_in_client(app):
    client = app.test_client()
    token = CSRF_META.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 303:
        raise RuntimeError(f"login failed: {response.status_code}")
    return client


class SqlClock:
    """Statements and time spent in them (before/after_cursor_execute), for the main case."""

    def __init__(self, engine):
        self.engine, self.count, self.seconds, self._started = engine, 0, 0.0, []

    def _before(self, *args):
        self._started.append(time.perf_counter())

    def _after(self, *args):
        self.count += 1
        self.seconds += time.perf_counter() - self._started.pop()

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        sa.event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


def time_path(client, path: str, runs: int, headers=None, check=None) -> list[float]:
    for _ in range(3):  # warm-up
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code}")
    if check:
        check(response.get_data(as_text=True))
    times = []
    for _ in range(runs):
        with stopwatch() as elapsed:
            client.get(path, headers=headers)
        times.append(elapsed())
    return times


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0], default_url=DEFAULT_URL)
    p.add_argument("--requests", type=int, default=50, help="timed requests per case (default 50, at least 30)")
    p.add_argument("--reuse", action="store_true", help="time the dataset a --keep run left in place")
    args = p.parse_args(argv)
    url = args.database_url
    if not is_postgres(url):
        raise SystemExit("campaign_page runs on PostgreSQL only")
    runs = max(30, args.requests)
    print_header(f"campaign_page on PostgreSQL: {ENROLLMENTS:,} enrollments, {runs} requests per case", url)
    ensure_database(url)
    if args.reuse:
        app = make_app(url)
        instance_id = find_instance(app)
    else:
        reset_database(url)
        app = make_app(url)
        instance_id = build_dataset(app, url)
    client = signed_in_client(app)
    base = f"/campaigns/{instance_id}"

    def full_page(body: str) -> None:
        assert body.startswith("<!doctype html>") and body.count('class="campaign-row"') == 50, body[:300]
        assert f"{ENROLLMENTS:,} enrollments" in body, "the page should count every enrollment"

    main_times = time_path(client, base, runs, check=full_page)
    from webapp.extensions import db

    with app.app_context():
        engine = db.engine
    with SqlClock(engine) as clock:
        for _ in range(10):
            client.get(base)
    cases = [
        ("enrollments page 1,000 (offset 49,950)", f"{base}?page=1000", HTMX),
        ("status filter: paused", f"{base}?status=paused", HTMX),
        ("search: lead4242", f"{base}?search=lead4242", HTMX),
        ("sort by email", f"{base}?sort=email", HTMX),
        ("performance panel (htmx)", f"{base}/performance", HTMX),
        ("next sends panel (htmx)", f"{base}/schedule", HTMX),
    ]
    others = [(label, time_path(client, path, runs, headers=headers)) for label, path, headers in cases]

    page_ms = median(main_times) * 1000
    print(
        f"   GET {base}: median {page_ms:.1f} ms, p90 {percentile(main_times, 90) * 1000:.1f} ms, "
        f"max {max(main_times) * 1000:.1f} ms; {clock.count / 10:.0f} SQL statements per page, "
        f"{clock.seconds / 10 * 1000:.1f} ms of it in SQL"
    )
    for label, times in others:
        print(f"   {label}: median {median(times) * 1000:.1f} ms, p90 {percentile(times, 90) * 1000:.1f} ms")
    print(
        f"RESULT campaign_page PostgreSQL: GET /campaigns/<id> with {ENROLLMENTS:,} enrollments, "
        f"median {page_ms:.1f} ms; target median < {TARGET_MS:.0f} ms: {verdict(page_ms < TARGET_MS)}"
    )
    print(f"   end: {load_average()}")
    dispose(app)
    if not args.keep and not args.reuse:
        cleanup(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

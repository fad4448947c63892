"""The overview page: numbers from events posted through the API, attention list, today's tasks."""

import json
import re
from datetime import UTC, datetime, timedelta

from tests import builders, factories
from webapp.worker import Worker


def post_events(api, events: list[dict]) -> dict:
    response = api.post("/events/webhook", json={"events": events})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def running_campaign(api, contacts: int = 4, **fields) -> tuple[dict, list[str], str]:
    """An active campaign with `contacts` enrollments: (instance, enrollment ids, first step id)."""
    instance = factories.instance(api, status="active", **fields)
    factories.enroll(api, instance["id"], contacts, domain=f"{instance['id'][:8]}.example.com")
    template = api.get(f"/templates/{instance['template_id']}").get_json()["data"]
    enrollments = api.get(f"/instances/{instance['id']}/enrollments?limit=100").get_json()["data"]
    return instance, [e["id"] for e in enrollments], template["steps"][0]["id"]


def event(key: str, enrollment: str, kind: str, step: str, when: datetime | None = None, **metadata) -> dict:
    when = when or datetime.now(UTC)
    body = {"provider_event_id": key, "type": kind, "enrollment_id": enrollment, "step_id": step}
    return {**body, "occurred_at": when.isoformat().replace("+00:00", "Z"), "metadata": metadata}


def stat(html: str, name: str) -> str:
    return re.search(rf'data-stat="{name}">([^<]+)<', html).group(1)


def chart(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="overview-chart-config">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_it_needs_a_login(client):
    response = client.get("/")

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")


def test_the_numbers_match_the_events_posted_through_the_api(api, client, owner, login):
    _, (e1, e2, e3, e4), step = running_campaign(api, 4)
    post_events(
        api,
        [
            *(event(f"sent-{n}", e, "sent", step) for n, e in enumerate((e1, e2, e3, e4))),
            event("open-1", e1, "opened", step),
            event("open-1-again", e1, "opened", step),
            event("reply-1", e1, "replied", step),
            event("bounce-2", e2, "bounced", step, bounce_type="hard"),
            event("unsub-3", e3, "unsubscribed", step),
        ],
    )
    login(owner)

    html = client.get("/").get_data(as_text=True)

    assert stat(html, "sent") == "4"
    assert stat(html, "reply-rate") == "25.0%"
    assert stat(html, "bounce-rate") == "25.0%"
    assert stat(html, "unsubscribed") == "1"
    assert "across\n        1 active campaign\n" in html
    today = datetime.now(UTC).date().isoformat()
    data = chart(html)
    assert data["kind"] == "line" and data["labels"][-1] == today and len(data["labels"]) == 30
    assert {s["key"]: s["data"][-1] for s in data["series"]} == {
        "sent": 4,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 1,
    }
    row = re.search(rf'<time datetime="{today}">{today}</time></th>(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="numeric">(\d+)</td>', row) == ["4", "1", "1", "1", "1"]
    assert re.search(r'data-status="replied">1<', html)
    assert re.search(r'data-status="bounced">1<', html)


def test_the_chart_is_drawn_by_charts_js_and_has_a_table(client, api, owner, login):
    running_campaign(api, 1)
    login(owner)

    html = client.get("/").get_data(as_text=True)

    # No id on the canvas: htmx would copy Chart.js's inline style onto the swapped-in one (CSP).
    assert '<canvas data-chart="overview-chart-config" role="img" aria-label=' in html
    assert 'src="/static/vendor/chart.js-4.6.1/chart.umd.min.js"' in html
    assert re.search(r'src="/static/js/charts\.js(\?v=[0-9a-f]+)?" defer', html)
    assert '<table class="table" id="overview-daily">' in html
    assert "<caption" in html


def test_without_an_active_campaign_it_says_so(client, owner, login):
    login(owner)

    html = client.get("/").get_data(as_text=True)

    assert "No active campaigns" in html
    assert "<canvas" not in html
    assert stat(html, "sent") == "0"
    assert "Nothing needs you right now" in html
    assert 'href="/outbox"' in html


def test_paused_bouncing_and_unknown_campaigns_need_attention(app, api, client, owner, login):
    running_campaign(api, 1, name="Unknown one")
    with app.app_context():
        assert builders.in_flight(datetime.now(UTC) + timedelta(minutes=1))
    # The worker died mid-send: the lease expires into an unknown delivery.
    Worker(app).run_once(now=datetime.now(UTC) + timedelta(hours=1))
    factories.instance(api, status="paused", name="Paused one")
    _, (b1, b2), step = running_campaign(api, 2, name="Bouncy one")
    post_events(
        api,
        [event("s1", b1, "sent", step), event("s2", b2, "sent", step), event("b1", b1, "bounced", step)],
    )
    _, (h1,), healthy_step = running_campaign(api, 1, name="Healthy one")
    post_events(api, [event("s3", h1, "sent", healthy_step)])
    login(owner)

    html = client.get("/").get_data(as_text=True)

    attention = html[html.index('id="attention"') : html.index('id="tasks-today"')]
    assert "Paused one" in attention and "Nothing is sent until it is resumed." in attention
    assert "Bouncy one" in attention and "50.0% of contacts emailed (1 of 2, since launch)" in attention
    assert "Unknown one" in attention and "may or may not have gone out" in attention
    assert "Healthy one" not in attention


def test_tasks_due_today_are_listed(app, api, client, owner, login):
    template = api.post("/templates", json={"name": "LinkedIn first", "type": "linkedin"}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/linkedin",
        json={"action_type": "connection_request", "message": "Hi {{ first_name }}"},
    )
    factories.enroll(api, factories.instance(api, template_data=template, status="active", name="Reach")["id"], 2)
    assert Worker(app).run_once(now=datetime.now(UTC) + timedelta(minutes=1)).tasks == 2
    login(owner)

    html = client.get("/").get_data(as_text=True)

    section = html[html.index('id="tasks-today"') :]
    assert "2 open tasks due by the end of today" in section
    assert "Connection request: <strong>Person0</strong>, Initech" in section
    assert 'href="/tasks?due=today"' in section


def test_the_period_switch_answers_htmx_with_the_numbers_only(client, api, owner, login):
    running_campaign(api, 1)
    login(owner)

    fragment = client.get("/?days=7", headers={"HX-Request": "true"})
    restore = client.get("/?days=7", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    page = client.get("/?days=7")

    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="overview-numbers"')
    assert "Last 7 days" in body and "<html" not in body and 'id="attention"' not in body
    assert len(chart(body)["labels"]) == 7
    assert 'hx-get="/?days=90" hx-target="#overview-numbers" hx-swap="outerHTML" hx-push-url="true"' in body
    assert '<a class="segmented__item" href="/?days=7" ' in body and 'aria-current="true">7 days</a>' in body
    for response in (restore, page):
        assert response.get_data(as_text=True).startswith("<!doctype html>")
        assert 'id="attention"' in response.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_unknown_period_falls_back_to_30_days(client, owner, login):
    login(owner)

    assert "Last 30 days" in client.get("/?days=1000").get_data(as_text=True)
    assert "Last 30 days" in client.get("/?days=abc").get_data(as_text=True)


def test_outsiders_see_none_of_the_owners_numbers(api, client, owner, outsider, login):
    _, (e1,), step = running_campaign(api, 1, name="Acme campaign")
    post_events(api, [event("s1", e1, "sent", step)])
    factories.instance(api, status="paused", name="Acme paused")
    login(outsider)

    html = client.get("/").get_data(as_text=True)

    assert stat(html, "sent") == "0"
    assert "Acme" not in html

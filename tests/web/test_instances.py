"""The Campaigns pages: list, new, the campaign page with its fragments, panels and actions."""

import contextlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders, factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import utcnow
from webapp.services.sending import deliveries

HTMX = {"HX-Request": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


def html(response) -> str:
    return response.get_data(as_text=True)


def later(**delta) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1, **delta)


@pytest.fixture
def web(login, owner):
    return login(owner)


@pytest.fixture
def token(web):
    return csrf_token(web, "/campaigns")


@pytest.fixture
def draft(api):
    return factories.instance(api, name="Spring outreach")


@pytest.fixture
def active(api):
    instance = factories.instance(api, name="Live one", status="active")
    factories.enroll(api, instance["id"], 3)
    return instance


def enrollments_of(api, instance_id, **params) -> list[dict]:
    query = "&".join(f"{key}={value}" for key, value in {"limit": 100, **params}.items())
    return api.get(f"/instances/{instance_id}/enrollments?{query}").get_json()["data"]


def status_of(api, instance_id) -> str:
    return api.get(f"/instances/{instance_id}").get_json()["data"]["status"]


@contextlib.contextmanager
def counting_statements(app):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def make_unknown_delivery(app, api, *, allow_other_campaigns: bool = False) -> dict:
    """A campaign whose only send was claimed by a worker that died: the delivery is unknown."""
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 1, allow_other_campaigns=allow_other_campaigns)
    with app.app_context():
        builders.in_flight(later())
        assert deliveries.reap_expired_claims(later(hours=1)).unknown == 1
    return instance


# Signing in, and the list


@pytest.mark.parametrize("path", ["/campaigns", "/campaigns/new"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=/campaigns")


def test_an_anonymous_htmx_request_gets_401_with_a_redirect(client):
    response = client.get("/campaigns", headers=HTMX)

    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_the_list_shows_the_workspaces_campaigns_with_their_status(web, api, draft, active, outsider):
    factories.instance(api.as_(outsider), name="Globex secret")

    body = html(web.get("/campaigns"))

    assert body.startswith("<!doctype html>")
    assert "Spring outreach" in body and "Live one" in body
    assert "Globex secret" not in body
    assert f'href="/campaigns/{draft["id"]}"' in body
    assert 'href="/campaigns/new"' in body


def test_the_list_filters_by_status_and_htmx_gets_only_the_rows(web, draft, active):
    fragment = web.get("/campaigns?status=active", headers=HTMX)
    page = web.get("/campaigns?status=active")
    restore = web.get("/campaigns?status=active", headers=RESTORE)

    assert html(fragment).lstrip().startswith('<div id="rows"')
    assert "Live one" in html(fragment) and "Spring outreach" not in html(fragment)
    assert html(page).startswith("<!doctype html>") and "Spring outreach" not in html(page)
    assert '<option value="active" selected>' in html(page)
    assert html(restore).startswith("<!doctype html>")
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_empty_status_option_means_all_and_a_bad_one_is_a_400(web, draft, active):
    assert "Spring outreach" in html(web.get("/campaigns?status=&search="))
    assert web.get("/campaigns?status=bogus").status_code == 400


def test_the_list_is_paginated(web, api):
    template = factories.template(api)
    for number in range(21):
        factories.instance(api, template_data=template, name=f"Campaign {number:02d}")

    first = html(web.get("/campaigns"))
    second = html(web.get("/campaigns?page=2", headers=HTMX))

    assert "Page 1 of 2" in first and "21 in all" in first
    assert 'hx-target="#rows"' in first
    assert second.count('<a href="/campaigns/') == 1


# New campaign


def test_the_new_form_offers_the_active_templates(web, api):
    factories.template(api, name="Active sequence")
    factories.template(api, name="Old sequence", is_active=False)

    body = html(web.get("/campaigns/new"))

    assert '<label class="field__label" for="field-template-id">Template</label>' in body
    assert "Active sequence" in body and "Old sequence" not in body
    assert 'for="field-settings-daily-cap"' in body


def test_without_templates_the_form_points_to_the_templates_page(web):
    body = html(web.get("/campaigns/new"))

    assert "No active template yet" in body and 'href="/templates"' in body


def test_it_creates_a_draft_with_settings_overrides(web, api, token):
    template = factories.template(api)

    response = web.post(
        "/campaigns",
        data={
            "csrf_token": token,
            "template_id": template["id"],
            "name": "  Q3 push ",
            "settings.daily_cap": "25",
            "settings.send_window.start": "08:30",
            "settings.send_window.days": ["1", "3"],
            "settings.track_opens": "false",
            "settings.track_clicks": "",
        },
    )

    assert response.status_code == 303
    instance_id = response.headers["Location"].rsplit("/", 1)[1]
    created = api.get(f"/instances/{instance_id}").get_json()["data"]
    assert (created["name"], created["status"]) == ("Q3 push", "draft")
    assert created["settings"] == {
        "daily_cap": 25,
        "send_window": {"days": [1, 3], "start": "08:30"},
        "track_opens": False,
    }
    assert "Q3 push" in html(web.get(response.headers["Location"]))


def test_htmx_creation_navigates_to_the_new_campaign(web, api, token):
    template = factories.template(api)

    response = web.post(
        "/campaigns", data={"csrf_token": token, "template_id": template["id"], "name": "Via htmx"}, headers=HTMX
    )

    assert response.status_code == 204
    assert re.fullmatch(r"/campaigns/[0-9a-f-]{36}", response.headers["HX-Redirect"])


def test_form_errors_come_back_beside_the_fields_with_422(web, api, token):
    template = factories.template(api)
    data = {
        "csrf_token": token,
        "template_id": template["id"],
        "name": "",
        "settings.daily_cap": "lots",
        "settings.timezone": "Mars/Olympus",
        "settings.send_window.days": ["9"],
    }

    page = web.post("/campaigns", data=data)
    fragment = web.post("/campaigns", data=data, headers=HTMX)

    assert page.status_code == 422 and html(page).startswith("<!doctype html>")
    assert fragment.status_code == 422
    body = html(fragment)
    assert body.lstrip().startswith('<form id="campaign-form"')
    assert 'id="field-name-error"' in body and 'aria-invalid="true"' in body
    assert 'id="field-settings-daily-cap-error"' in body
    assert "unknown time zone" in body
    assert "less than or equal to 7" in body
    assert 'value="lots"' in body and f'<option value="{template["id"]}" selected>' in body
    assert api.get("/instances").get_json()["pagination"]["total"] == 0


def test_a_missing_or_foreign_template_is_a_form_error(web, api, outsider, token):
    foreign = factories.template(api.as_(outsider))
    inactive = factories.template(api, is_active=False)
    factories.template(api, name="Usable")

    for template_id, message in (("", "Field required"), (foreign["id"], "not found"), (inactive["id"], "inactive")):
        response = web.post("/campaigns", data={"csrf_token": token, "template_id": template_id, "name": "X"})
        assert response.status_code == 422
        assert message in html(response)


# The campaign page


def test_the_campaign_page_has_its_panels_and_enrollments(web, active):
    body = html(web.get(f"/campaigns/{active['id']}"))

    assert body.startswith("<!doctype html>")
    assert '<h1 class="page-header__title">Live one</h1>' in body
    assert 'hx-get="/campaigns/{}/performance" hx-trigger="revealed, every 10s"'.format(active["id"]) in body
    assert f'hx-get="/campaigns/{active["id"]}/schedule" hx-trigger="revealed"' in body
    assert f'href="/campaigns/{active["id"]}/enroll"' in body
    assert body.count('class="campaign-row"') == 3
    assert "vendor/chart.js-4.6.1/chart.umd.min.js" in body and "js/charts.js" in body


def test_a_campaign_that_is_not_active_does_not_poll(web, draft):
    body = html(web.get(f"/campaigns/{draft['id']}"))

    assert 'hx-trigger="revealed"' in body
    assert "every 10s" not in body


@pytest.mark.parametrize(
    ("status", "shown", "hidden"),
    [
        ("draft", ["Launch", "Complete"], ["Pause", "Resume"]),
        ("active", ["Pause", "Complete"], ["Launch", "Resume"]),
        ("paused", ["Resume", "Complete"], ["Launch", "Pause"]),
        ("completed", [], ["Launch", "Pause", "Resume", "Complete"]),
    ],
)
def test_only_the_allowed_status_buttons_are_shown(web, api, status, shown, hidden):
    instance = factories.instance(api, status=status)

    body = html(web.get(f"/campaigns/{instance['id']}"))

    buttons = re.findall(
        r'<button type="submit" class="button button--(?:primary|secondary)">(\w+)<span class="spinner', body
    )
    assert buttons == shown
    for label in hidden:
        assert f">{label}<" not in body


def test_launching_redirects_browsers_and_gives_htmx_the_new_header(web, api, token):
    first = factories.instance(api)
    factories.enroll(api, first["id"], 2)
    second = factories.instance(api)

    page = web.post(f"/campaigns/{first['id']}/status", data={"csrf_token": token, "status": "active"})
    fragment = web.post(
        f"/campaigns/{second['id']}/status", data={"csrf_token": token, "status": "active"}, headers=HTMX
    )

    assert (page.status_code, page.headers["Location"]) == (303, f"/campaigns/{first['id']}")
    assert status_of(api, first["id"]) == "active"
    assert {e["status"] for e in enrollments_of(api, first["id"])} == {"active"}
    assert "is active" in html(web.get(page.headers["Location"]))
    assert fragment.status_code == 200
    body = html(fragment)
    assert body.lstrip().startswith('<header id="campaign-header"')
    assert ">Pause<" in body and ">Launch<" not in body
    assert "toast" in fragment.headers["HX-Trigger"] and "campaign-status-changed" in fragment.headers["HX-Trigger"]


def test_an_invalid_transition_posted_by_hand_is_a_409_with_a_message(web, draft, token):
    page = web.post(f"/campaigns/{draft['id']}/status", data={"csrf_token": token, "status": "paused"})
    fragment = web.post(
        f"/campaigns/{draft['id']}/status", data={"csrf_token": token, "status": "paused"}, headers=HTMX
    )

    assert page.status_code == 409 and fragment.status_code == 409
    assert "Cannot change a draft campaign to paused" in html(page)
    assert 'id="error-message"' in html(fragment)
    assert web.post(f"/campaigns/{draft['id']}/status", data={"csrf_token": token, "status": "x"}).status_code == 400


def test_completing_asks_for_a_confirmation_first(web, api, active, token):
    unconfirmed = web.post(f"/campaigns/{active['id']}/status", data={"csrf_token": token, "status": "completed"})
    question = web.get(unconfirmed.headers["Location"])
    confirmed = web.post(
        f"/campaigns/{active['id']}/status", data={"csrf_token": token, "status": "completed", "confirm": "yes"}
    )

    assert unconfirmed.status_code == 303
    assert unconfirmed.headers["Location"] == f"/campaigns/{active['id']}/complete"
    assert "Complete this campaign?" in html(question) and 'name="confirm" value="yes"' in html(question)
    assert confirmed.status_code == 303
    assert status_of(api, active["id"]) == "completed"


def test_the_htmx_complete_button_carries_its_confirmation(web, active):
    body = html(web.get(f"/campaigns/{active['id']}"))

    assert 'hx-confirm="Complete this campaign?' in body
    assert 'hx-vals=\'{"confirm": "yes"}\'' in body


# The enrollments table


@pytest.fixture
def crowded(api):
    instance = factories.instance(api, name="Crowded")
    factories.enroll(api, instance["id"], 60)
    return instance


def test_enrollments_come_50_to_a_page(web, crowded):
    first = html(web.get(f"/campaigns/{crowded['id']}"))
    second = html(web.get(f"/campaigns/{crowded['id']}?page=2", headers=HTMX))

    assert first.count('class="campaign-row"') == 50
    assert "60 enrollments" in first and "Page 1 of 2" in first
    assert second.lstrip().startswith('<div id="enrollments"')
    assert second.count('class="campaign-row"') == 10


def test_enrollments_can_be_searched_filtered_and_sorted(web, api, crowded):
    some = enrollments_of(api, crowded["id"], sort="email")[:2]
    api.patch(f"/enrollments/{some[0]['id']}", json={"status": "paused"})

    searched = html(web.get(f"/campaigns/{crowded['id']}?search=person59@", headers=HTMX))
    paused = html(web.get(f"/campaigns/{crowded['id']}?status=paused", headers=HTMX))
    by_email = html(web.get(f"/campaigns/{crowded['id']}?sort=-email", headers=HTMX))
    nothing = html(web.get(f"/campaigns/{crowded['id']}?search=nobody"))

    assert searched.count('class="campaign-row"') == 1 and "person59@example.com" in searched
    assert paused.count('class="campaign-row"') == 1 and some[0]["contact"]["email"] in paused
    emails = re.findall(r"person\d+@example\.com", by_email)
    assert emails[0] == "person9@example.com"
    assert "No enrollments match" in nothing
    assert web.get(f"/campaigns/{crowded['id']}?sort=contact_id").status_code == 400


def test_the_filter_form_works_without_javascript_and_swaps_the_table_with_it(web, crowded):
    body = html(web.get(f"/campaigns/{crowded['id']}?status=paused"))

    assert f'method="get" action="/campaigns/{crowded["id"]}#enrollments"' in body
    assert 'hx-target="#enrollments"' in body and 'hx-push-url="true"' in body
    assert '<option value="paused" selected>' in body
    assert '<label class="field__label" for="enrollment-search">' in body


def test_the_page_costs_the_same_number_of_queries_with_5_or_60_enrollments(app, web, api):
    small = factories.instance(api)
    factories.enroll(api, small["id"], 5)
    big = factories.instance(api, template_data={"id": small["template_id"]})
    factories.enroll(api, big["id"], 60, start=100)
    make_unknown_delivery(app, api, allow_other_campaigns=True)  # person0, as in `small`
    web.get(f"/campaigns/{small['id']}")  # warm up: first-request setup is not the page's cost

    with counting_statements(app) as few:
        assert web.get(f"/campaigns/{small['id']}").status_code == 200
    with counting_statements(app) as many:
        response = web.get(f"/campaigns/{big['id']}")

    assert html(response).count('class="campaign-row"') == 50
    assert len(many) == len(few)
    assert len(many) <= 11, many  # with the bulk actions' "move to" campaigns


@pytest.mark.parametrize(
    ("action", "data", "expected"), [("status", {"status": "paused"}, "paused"), ("unenroll", {}, "removed")]
)
def test_inline_actions_give_htmx_the_updated_row(web, api, active, token, action, data, expected):
    enrollment = enrollments_of(api, active["id"])[0]
    url = f"/campaigns/{active['id']}/enrollments/{enrollment['id']}/{action}"

    response = web.post(url, data={"csrf_token": token, **data}, headers=HTMX)

    body = html(response)
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="enrollment-{enrollment["id"]}"')
    assert re.search(rf'class="badge badge--\w+">{expected.capitalize()}<', body)
    assert "toast" in response.headers["HX-Trigger"]
    assert api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]["status"] == expected


def test_a_paused_row_offers_resume_and_browsers_come_back_to_their_page(web, api, active, token):
    enrollment = enrollments_of(api, active["id"])[0]
    url = f"/campaigns/{active['id']}/enrollments/{enrollment['id']}/status"
    back = f"/campaigns/{active['id']}?status=active"

    paused = web.post(url, data={"csrf_token": token, "status": "paused"}, headers=HTMX)
    resumed = web.post(url, data={"csrf_token": token, "status": "active", "next": back})
    hostile = web.post(url, data={"csrf_token": token, "status": "paused", "next": "https://evil.test/"})

    assert ">Resume<" in html(paused) and ">Pause<" not in html(paused)
    assert resumed.status_code == 303
    assert resumed.headers["Location"] == f"{back}#enrollment-{enrollment['id']}"
    assert hostile.headers["Location"] == f"/campaigns/{active['id']}#enrollment-{enrollment['id']}"


def test_a_refused_enrollment_action_is_a_409(web, api, active, token):
    enrollment = enrollments_of(api, active["id"])[0]
    url = f"/campaigns/{active['id']}/enrollments/{enrollment['id']}"

    resume_active = web.post(f"{url}/status", data={"csrf_token": token, "status": "active"}, headers=HTMX)
    web.post(f"{url}/unenroll", data={"csrf_token": token})
    unenroll_again = web.post(f"{url}/unenroll", data={"csrf_token": token})

    assert resume_active.status_code == 409 and "Cannot resume" in html(resume_active)
    assert unenroll_again.status_code == 409 and "Cannot unenroll a removed enrollment" in html(unenroll_again)


def test_an_enrollment_of_another_campaign_is_not_found_under_this_one(web, api, active, draft, token):
    enrollment = enrollments_of(api, active["id"])[0]

    response = web.post(
        f"/campaigns/{draft['id']}/enrollments/{enrollment['id']}/status",
        data={"csrf_token": token, "status": "paused"},
    )
    timeline = web.get(f"/campaigns/{draft['id']}/enrollments/{enrollment['id']}")

    assert response.status_code == 404
    assert api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]["status"] == "active"
    assert timeline.status_code == 303
    assert timeline.headers["Location"] == f"/campaigns/{active['id']}/enrollments/{enrollment['id']}"


# The timeline


def test_the_timeline_is_a_drawer_for_htmx_and_a_page_otherwise(web, api, active):
    enrollment = enrollments_of(api, active["id"], sort="email")[0]
    events = [
        {
            "provider_event_id": f"t-{kind}",
            "type": kind,
            "enrollment_id": enrollment["id"],
            "occurred_at": f"2026-11-2{n}T10:00:00Z",
            "metadata": {"note": f"{kind} <b>"},
        }
        for n, kind in enumerate(("delivered", "opened", "clicked"))
    ]
    assert api.post("/events/webhook", json={"events": events}).get_json()["data"]["stored"] == 3
    url = f"/campaigns/{active['id']}/enrollments/{enrollment['id']}"

    drawer = html(web.get(url, headers=HTMX))
    page = html(web.get(url))

    assert drawer.lstrip().startswith('<section id="timeline"')
    assert "campaign-drawer" in drawer and 'data-clear="#timeline"' in drawer
    assert [m for m in re.findall(r">(Delivered|Opened|Clicked)<", drawer)] == ["Delivered", "Opened", "Clicked"]
    assert "opened &lt;b&gt;" in drawer
    assert page.startswith("<!doctype html>") and "Enrollment timeline" in page
    assert "campaign-drawer" not in page.split('id="timeline"', 1)[1].split(">", 1)[0]
    assert enrollment["contact"]["email"] in page


def test_rows_link_to_the_timeline_and_open_it_in_the_drawer(web, api, active):
    enrollment = enrollments_of(api, active["id"])[0]
    url = f"/campaigns/{active['id']}/enrollments/{enrollment['id']}"

    body = html(web.get(f"/campaigns/{active['id']}"))

    assert f'href="{url}" hx-get="{url}" hx-target="#timeline"' in body
    assert '<section id="timeline" class="campaign-drawer" data-drawer></section>' in body


# Performance


def test_the_performance_fragment_shows_the_apis_numbers(web, api, active):
    ids = [e["id"] for e in enrollments_of(api, active["id"], sort="email")]
    template = api.get(f"/templates/{active['template_id']}").get_json()["data"]
    step = template["steps"][0]["id"]
    events = []
    for n, (index, kind) in enumerate(
        [
            (0, "sent"),
            (1, "sent"),
            (2, "sent"),
            (0, "opened"),
            (1, "opened"),
            (0, "clicked"),
            (0, "replied"),
            (2, "bounced"),
        ]
    ):
        events.append(
            {
                "provider_event_id": f"p-{n}",
                "type": kind,
                "enrollment_id": ids[index],
                "step_id": step,
                "occurred_at": f"2026-11-{20 + n % 2}T10:00:00Z",
            }
        )
    api.post("/events/webhook", json={"events": events})
    expected = api.get(f"/instances/{active['id']}/performance").get_json()["data"]

    response = web.get(f"/campaigns/{active['id']}/performance", headers=HTMX)

    body = html(response)
    assert body.lstrip().startswith('<section id="performance"')
    assert 'hx-trigger="every 10s, campaign-status-changed from:body"' in body
    stats = dict(re.findall(r"<dt>(\w[\w ]*)</dt><dd>(?:<a [^>]*>)?(\d+)", body))
    totals, contacts = expected["totals"], expected["contacts"]
    assert stats == {
        "Enrolled": str(totals["enrolled"]),
        "In progress": str(totals["active"]),
        "Completed": str(totals["completed"]),
        "Contacted": str(contacts["contacted"]),
        "Emailed": str(contacts["emailed"]),
        "Opened": str(contacts["opened"]),
        "Clicked": str(contacts["clicked"]),
        "Replied": str(contacts["replied"]),
        "Bounced": str(contacts["bounced"]),
        "Unsubscribed": str(contacts["unsubscribed"]),
        "Interested": str(expected["leads"]["interested"]),
        "Meetings booked": str(expected["leads"]["meeting_booked"]),
    }
    assert totals["sent"] == 3 and contacts["opened"] == 2
    assert f'{expected["rates"]["open_rate"] * 100:.1f}% <span class="campaign-rate__base">of contacts emailed' in body
    assert (
        f'{expected["rates"]["reply_rate"] * 100:.1f}% <span class="campaign-rate__base">of contacts contacted' in body
    )
    assert f'href="/campaigns/{active["id"]}?status=replied#enrollments">{contacts["replied"]}</a>' in body
    assert f'href="/campaigns/{active["id"]}?status=bounced#enrollments">{contacts["bounced"]}</a>' in body
    daily = [(d["date"], d["sent"], d["opened"]) for d in expected["daily"]]
    for day, sent, opened in daily:
        assert re.search(
            rf'<th scope="row">{day}</th>\s*<td class="numeric">{sent}</td>\s*<td class="numeric">{opened}</td>', body
        )
    first_step = expected["steps"][0]
    assert re.search(
        rf'<td class="numeric">{first_step["contacts"]["received"]}</td>\s*'
        rf'<td class="numeric">{first_step["contacts"]["opened"]} <span class="campaign-rate" '
        rf'title="{first_step["rates"]["open_rate"] * 100:.1f}% of contacts who received step 1">',
        body,
    )


def test_the_chart_data_travels_as_json_for_charts_js(web, api, active):
    ids = [e["id"] for e in enrollments_of(api, active["id"])]
    api.post(
        "/events/webhook",
        json={
            "provider_event_id": "s1",
            "type": "sent",
            "enrollment_id": ids[0],
            "occurred_at": "2026-11-20T10:00:00Z",
        },
    )

    body = html(web.get(f"/campaigns/{active['id']}/performance", headers=HTMX))

    assert f'<canvas data-chart="chart-daily-{active["id"]}" role="img"' in body
    match = re.search(rf'<script type="application/json" id="chart-daily-{active["id"]}">(.*?)</script>', body, re.S)
    data = json.loads(match.group(1))
    assert data["kind"] == "line" and data["labels"] == ["2026-11-20"]
    assert [s["key"] for s in data["series"]] == ["sent", "opened", "clicked", "replied", "bounced"]
    assert data["series"][0]["data"] == [1]
    funnel = re.search(rf'id="chart-funnel-{active["id"]}">(.*?)</script>', body, re.S)
    assert json.loads(funnel.group(1))["kind"] == "funnel"


def test_the_performance_panel_is_a_page_without_javascript_and_stops_polling_when_paused(web, api, draft):
    page = web.get(f"/campaigns/{draft['id']}/performance")

    body = html(page)
    assert body.startswith("<!doctype html>") and "chart.umd.min.js" in body
    assert 'hx-trigger="campaign-status-changed from:body"' in body
    assert "every 10s" not in body
    assert "No activity yet" in body


# Next sends and deliveries that need a person


def test_the_schedule_panel_says_what_goes_out_when(web, api, draft, active):
    factories.enroll(api, draft["id"], 2, allow_other_campaigns=True)  # as in `active`

    waiting = html(web.get(f"/campaigns/{draft['id']}/schedule", headers=HTMX))
    due = html(web.get(f"/campaigns/{active['id']}/schedule"))

    assert waiting.lstrip().startswith('<section id="schedule"')
    assert waiting.count("campaign-schedule__item") == 2 and "· campaign not launched" in waiting
    assert "person0@example.com" in waiting and "step 1 (email)" in waiting
    assert due.startswith("<!doctype html>") and due.count("<time datetime=") == 3
    assert web.get(f"/campaigns/{active['id']}/schedule?limit=1").get_data(as_text=True).count("<time datetime=") == 1
    assert web.get(f"/campaigns/{active['id']}/schedule?limit=0").status_code == 400


def test_unknown_deliveries_need_attention_and_can_be_resolved_as_sent(app, web, api, token):
    instance = make_unknown_delivery(app, api)
    delivery = api.get("/deliveries?status=unknown").get_json()["data"][0]

    body = html(web.get(f"/campaigns/{instance['id']}"))
    response = web.post(
        f"/campaigns/{instance['id']}/deliveries/{delivery['id']}/resolve",
        data={"csrf_token": token, "sent": "true"},
        headers=HTMX,
    )

    assert "Needs attention" in body and ">It was sent<" in body and ">Send again<" in body
    assert response.status_code == 200
    assert html(response).lstrip().startswith('<section id="attention"')
    assert "It was sent" not in html(response)
    assert api.get("/deliveries?status=sent").get_json()["data"][0]["id"] == delivery["id"]
    assert enrollments_of(api, instance["id"])[0]["current_step"] == 1


def test_an_unknown_delivery_can_be_sent_again_and_not_resolved_twice(app, web, api, token):
    instance = make_unknown_delivery(app, api)
    delivery = api.get("/deliveries").get_json()["data"][0]
    url = f"/campaigns/{instance['id']}/deliveries/{delivery['id']}/resolve"

    again = web.post(url, data={"csrf_token": token, "sent": "false"})
    twice = web.post(url, data={"csrf_token": token, "sent": "true"})

    assert (again.status_code, again.headers["Location"]) == (303, f"/campaigns/{instance['id']}")
    assert api.get("/deliveries?status=retry").get_json()["data"][0]["id"] == delivery["id"]
    assert twice.status_code == 409
    assert web.post(url, data={"csrf_token": token, "sent": "maybe"}).status_code == 400


def test_a_campaigns_unknown_deliveries_are_settled_at_once_from_the_attention_box(app, web, api, token):
    instance = make_unknown_delivery(app, api)
    other = make_unknown_delivery(app, api, allow_other_campaigns=True)  # person0 in both
    body = html(web.get(f"/campaigns/{instance['id']}"))
    url = f"/campaigns/{instance['id']}/deliveries/resolve"

    response = web.post(url, data={"csrf_token": token, "sent": "true"}, headers=HTMX)

    assert "2 deliveries have an unknown outcome" in body and "1 of them is in this campaign" in body
    assert f'action="{url}"' in body and ">All 1 were sent<" in body and ">Send all 1 again<" in body
    assert response.status_code == 200 and html(response).lstrip().startswith('<section id="attention"')
    assert json.loads(response.headers["HX-Trigger"])["toast"]["message"] == (
        "1 delivery marked as sent: its enrollment moves on."
    )
    assert "in this campaign" not in html(response)  # the other campaign's is still listed
    assert enrollments_of(api, instance["id"])[0]["current_step"] == 1
    assert enrollments_of(api, other["id"])[0]["current_step"] == 0
    assert web.post(url, data={"csrf_token": token, "sent": "maybe"}).status_code == 400


def test_without_unknown_deliveries_the_attention_box_is_hidden(web, active):
    body = html(web.get(f"/campaigns/{active['id']}"))

    assert 'aria-labelledby="attention-title" hidden>' in body


# Security


def test_every_route_is_404_for_another_workspace(app, client, api, outsider, login):
    instance = make_unknown_delivery(app, api)
    enrollment = enrollments_of(api, instance["id"])[0]
    delivery = api.get("/deliveries").get_json()["data"][0]
    base = f"/campaigns/{instance['id']}"
    login(outsider)
    token = csrf_token(client, "/campaigns")
    gets = [
        base,
        f"{base}/performance",
        f"{base}/schedule",
        f"{base}/complete",
        f"{base}/edit",
        f"{base}/enrollments/{enrollment['id']}",
    ]
    posts = [
        (f"{base}/status", {"status": "paused"}),
        (f"{base}/enrollments/{enrollment['id']}/status", {"status": "paused"}),
        (f"{base}/enrollments/{enrollment['id']}/unenroll", {}),
        (f"{base}/deliveries/{delivery['id']}/resolve", {"sent": "true"}),
        (f"{base}/deliveries/resolve", {"sent": "true"}),
        (f"{base}/edit", {"name": "Hijacked"}),
        (f"{base}/enrollments/actions", {"action": "pause", "scope": "filter"}),
        (f"{base}/enrollments/{enrollment['id']}/skip-wait", {}),
        (f"{base}/deliveries/{delivery['id']}/retry", {}),
    ]

    for path in gets:
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=HTMX).status_code == 404, path
    for path, data in posts:
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 404, path
        assert client.post(path, data={"csrf_token": token, **data}, headers=HTMX).status_code == 404, path
    assert status_of(api, instance["id"]) == "active"
    assert api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]["status"] == "active"
    assert api.get("/deliveries").get_json()["data"][0]["status"] == "unknown"


def test_posts_without_a_csrf_token_are_refused(web, api, active):
    enrollment = enrollments_of(api, active["id"])[0]
    template = factories.template(api)
    base = f"/campaigns/{active['id']}"

    for path, data in [
        ("/campaigns", {"template_id": template["id"], "name": "No token"}),
        (f"{base}/status", {"status": "paused"}),
        (f"{base}/enrollments/{enrollment['id']}/status", {"status": "paused"}),
        (f"{base}/enrollments/{enrollment['id']}/unenroll", {}),
        (f"{base}/deliveries/resolve", {"sent": "false"}),
    ]:
        assert web.post(path, data=data).status_code == 400, path
    assert status_of(api, active["id"]) == "active"
    assert api.get("/instances").get_json()["pagination"]["total"] == 1


@pytest.mark.parametrize("path", ["", "/performance", "/schedule", "/complete"])
def test_the_pages_are_csp_clean(web, active, path):
    body = html(web.get(f"/campaigns/{active['id']}{path}"))

    assert " style=" not in body and "<style" not in body
    for tag in re.findall(r"<script\b[^>]*>", body):
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]*\son[a-z]+=", body)


def test_a_campaigns_failing_or_paused_mailbox_shows_under_needs_attention(app, browser, owner_api):
    from webapp.services import mailboxes as mailbox_service

    def add(address: str) -> dict:
        body = {"name": address.split("@")[0].capitalize(), "from_email": address, "smtp": {"host": "smtp.acme.test"}}
        return owner_api.post("/mailboxes", json=body).get_json()["data"]

    ada, bo, cy = add("ada@acme.test"), add("bo@acme.test"), add("cy@acme.test")
    template = owner_api.post(
        "/templates", json={"name": "From mailboxes", "settings": {"mailbox_ids": [ada["id"], bo["id"]]}}
    ).get_json()["data"]
    owner_api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Hi", "body": "Hello"})
    instance = factories.instance(owner_api, template_data=template)
    page = browser.get(f"/campaigns/{instance['id']}").get_data(as_text=True)
    assert "Ada (ada@acme.test)" not in page

    with app.app_context():
        mailbox_service.mark_failing(uuid.UUID(ada["id"]), "authentication failed: 535 bad credentials", now=utcnow())
        db.session.commit()
    owner_api.patch(f"/mailboxes/{cy['id']}", json={"state": "paused"})  # not this campaign's
    page = browser.get(f"/campaigns/{instance['id']}").get_data(as_text=True)
    assert "Ada</a> (ada@acme.test):" in page and "authentication failed: 535 bad credentials" in page
    assert "bo@acme.test" not in page and "cy@acme.test" not in page

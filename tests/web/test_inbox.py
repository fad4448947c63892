"""The Inbox page: replies across campaigns with their lead status; the reply reach setting; and
the "Mark replied" button on a campaign's enrollments."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests import builders, factories
from tests.api.test_replies import add_mailbox, enrollments_of
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import InboundMessage, Workspace

NOW = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def replies(app, owner_api):
    mailbox = add_mailbox(owner_api)
    instance = factories.instance(owner_api, status="active", name="Spring outreach")
    factories.enroll(owner_api, instance["id"], 2)
    people = enrollments_of(app, instance["id"])
    with app.app_context():
        box = uuid.UUID(mailbox["id"])
        made = [
            builders.inbound_message(
                box,
                uid=1,
                enrollment=people["person0@example.com"],
                from_name="Person Zero",
                snippet="<b>Yes</b>, call me Thursday",
                received_at=NOW,
            ),
            builders.inbound_message(
                box, uid=2, enrollment=people["person1@example.com"], snippet="Not interested", received_at=NOW
            ),
            builders.inbound_message(
                box, uid=3, from_email="stranger@nowhere.test", snippet="Who are you?", received_at=NOW - timedelta(1)
            ),
        ]
        return {"instance": instance, "ids": [str(m.id) for m in made]}


def test_the_inbox_lists_replies_with_their_campaign_escaped(browser, replies):
    page = browser.get("/inbox").get_data(as_text=True)
    assert "3 messages" in page
    assert "Person Zero" in page and "Spring outreach" in page
    assert "&lt;b&gt;Yes&lt;/b&gt;, call me Thursday" in page and "<b>Yes</b>" not in page
    assert "Answers none of our emails" in page  # the stranger

    unmatched = browser.get("/inbox?unmatched=1").get_data(as_text=True)
    assert "Who are you?" in unmatched and "call me Thursday" not in unmatched


def test_a_lead_status_is_saved_from_the_page_and_filters_it(app, browser, replies):
    first = replies["ids"][0]
    token = csrf_token(browser, "/inbox")
    response = browser.post(
        f"/inbox/{first}/lead", data={"lead_status": "interested", "csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith(f'<li class="task-card" id="reply-{first}"')
    assert "Interested" in fragment and "toast" in response.headers["HX-Trigger"]

    filtered = browser.get("/inbox?lead=interested").get_data(as_text=True)
    assert "1 message matching the filters" in filtered and "call me Thursday" in filtered

    # Without htmx: a redirect back to the list; an unknown status changes nothing.
    plain = browser.post(f"/inbox/{first}/lead", data={"lead_status": "", "csrf_token": token})
    assert plain.status_code == 303
    bad = browser.post(f"/inbox/{first}/lead", data={"lead_status": "hot", "csrf_token": token})
    assert bad.status_code in (400, 422)
    with app.app_context():
        assert db.session.get(InboundMessage, uuid.UUID(first)).lead_status is None


def test_lead_status_needs_csrf_and_stays_in_the_workspace(app, client, login, outsider, replies):
    first = replies["ids"][0]
    login(outsider)
    token = csrf_token(client, "/inbox")
    assert "call me Thursday" not in client.get("/inbox").get_data(as_text=True)
    foreign = client.post(f"/inbox/{first}/lead", data={"lead_status": "interested", "csrf_token": token})
    assert foreign.status_code == 404
    assert client.post(f"/inbox/{first}/lead", data={"lead_status": "interested"}).status_code == 400
    with app.app_context():
        assert db.session.get(InboundMessage, uuid.UUID(first)).lead_status is None


def test_mark_replied_from_the_campaign_page(app, browser, owner_api):
    instance = factories.instance(owner_api, status="active")
    factories.enroll(owner_api, instance["id"], 1)
    person0 = enrollments_of(app, instance["id"])["person0@example.com"]
    page = browser.get(f"/campaigns/{instance['id']}").get_data(as_text=True)
    assert "Mark replied" in page

    response = browser.post(
        f"/campaigns/{instance['id']}/enrollments/{person0.id}/status",
        data={"status": "replied", "csrf_token": csrf_token(browser, f"/campaigns/{instance['id']}")},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "marked replied" in response.headers["HX-Trigger"]
    assert enrollments_of(app, instance["id"])["person0@example.com"].status == "replied"
    assert "Mark replied" not in response.get_data(as_text=True)  # a final status has no such action


def test_the_owner_sets_how_far_a_reply_reaches(app, browser, owner):
    token = csrf_token(browser, "/settings")
    assert "Every campaign of that contact" in browser.get("/settings").get_data(as_text=True)
    saved = browser.post("/settings/replies", data={"reply_stops": "domain", "csrf_token": token})
    assert saved.status_code == 303
    refused = browser.post(
        "/settings/replies", data={"reply_stops": "planet", "csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 422 and "must be one of" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Workspace, owner.workspace_id).settings["reply_stops"] == "domain"


def test_the_campaign_performance_panel_counts_leads_and_links_to_them(app, browser, owner_api, replies):
    first = replies["ids"][0]
    token = csrf_token(browser, "/inbox")
    browser.post(f"/inbox/{first}/lead", data={"lead_status": "meeting_booked", "csrf_token": token})
    panel = browser.get(f"/campaigns/{replies['instance']['id']}/performance").get_data(as_text=True)
    link = f"/inbox?campaign={replies['instance']['id']}&amp;lead=meeting_booked"
    assert f'<dt>Meetings booked</dt><dd><a href="{link}">1</a>' in panel
    assert "<dt>Interested</dt>" in panel

"""The campaign page before launch: the launch check panel and page, the Launch button it
guards, paused-for-missing-data in "needs attention", and the test send form."""

import re

import pytest

from tests import factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import CampaignEnrollment, OutboxMessage
from webapp.services import lifecycle

HTMX = {"HX-Request": "true"}


def html(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def web(login, owner):
    return login(owner)


@pytest.fixture
def token(web):
    return csrf_token(web, "/campaigns")


@pytest.fixture
def warned(api) -> dict:
    """A draft whose launch check warns: one contact has no first name."""
    instance = factories.instance(api, name="Spring outreach")
    factories.enroll(api, instance["id"], 2)
    api.post(f"/instances/{instance['id']}/enrollments", json={"contact": {"email": "nameless@example.com"}})
    return instance


def status_of(api, instance_id) -> str:
    return api.get(f"/instances/{instance_id}").get_json()["data"]["status"]


def test_a_drafts_page_loads_the_launch_check_panel(web, warned):
    page = html(web.get(f"/campaigns/{warned['id']}"))

    assert f'hx-get="/campaigns/{warned["id"]}/launch"' in page
    panel = html(web.get(f"/campaigns/{warned['id']}/launch", headers=HTMX))
    assert panel.lstrip().startswith('<section id="readiness"')
    assert "1 contact has no value for a field" in panel
    link = f'href="/campaigns/{warned["id"]}?missing=first_name#enrollments"'
    assert link in panel and "1 without first_name" in panel
    assert 'name="confirm" value="yes"' in panel and ">Launch anyway<" in panel


def test_the_missing_link_lists_only_those_contacts_and_keeps_the_filter(web, warned):
    page = html(web.get(f"/campaigns/{warned['id']}?missing=first_name"))

    assert "nameless@example.com" in page and "person0@example.com" not in page
    assert '<input type="hidden" name="missing" value="first_name">' in page
    assert web.get(f"/campaigns/{warned['id']}?missing=password_hash").status_code == 400


def test_launching_with_warnings_goes_to_the_launch_check_then_launches_once_confirmed(api, web, token, warned):
    url = f"/campaigns/{warned['id']}/status"

    asked = web.post(url, data={"csrf_token": token, "status": "active"})
    asked_htmx = web.post(url, data={"csrf_token": token, "status": "active"}, headers=HTMX)

    assert (asked.status_code, asked.headers["Location"]) == (303, f"/campaigns/{warned['id']}/launch")
    assert asked_htmx.headers["HX-Redirect"] == f"/campaigns/{warned['id']}/launch"
    assert status_of(api, warned["id"]) == "draft"
    check = html(web.get(asked.headers["Location"]))
    assert "confirm the launch" in check and "Launch check" in check

    launched = web.post(url, data={"csrf_token": token, "status": "active", "confirm": "yes"})

    assert (launched.status_code, launched.headers["Location"]) == (303, f"/campaigns/{warned['id']}")
    assert status_of(api, warned["id"]) == "active"
    assert 'id="readiness"' not in html(web.get(launched.headers["Location"]))  # launched: no more check


def test_blocking_problems_disable_the_button_and_refuse_the_launch_even_confirmed(api, web, token):
    instance = factories.instance(api, template_data=factories.template(api, steps=0))

    panel = html(web.get(f"/campaigns/{instance['id']}/launch", headers=HTMX))
    refused = web.post(
        f"/campaigns/{instance['id']}/status", data={"csrf_token": token, "status": "active", "confirm": "yes"}
    )

    assert "cannot launch yet" in panel and "no active steps" in panel
    assert re.search(r"<button[^>]*disabled[^>]*>Launch</button>", panel)
    assert refused.headers["Location"] == f"/campaigns/{instance['id']}/launch"
    assert "fix the blocking problems first" in html(web.get(refused.headers["Location"]))
    assert status_of(api, instance["id"]) == "draft"


def test_a_ready_campaign_says_so_and_launches_in_one_click(api, web, token):
    instance = factories.instance(api)
    factories.enroll(api, instance["id"], 2)

    panel = html(web.get(f"/campaigns/{instance['id']}/launch", headers=HTMX))

    assert "Ready to launch: no problems found." in panel and 'name="confirm"' not in panel
    web.post(f"/campaigns/{instance['id']}/status", data={"csrf_token": token, "status": "active"})
    assert status_of(api, instance["id"]) == "active"


def test_enrollments_paused_for_missing_data_need_attention(app, api, web):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 3)
    with app.app_context():
        enrollments = db.session.query(CampaignEnrollment).all()
        for enrollment in enrollments[:2]:
            lifecycle.change(
                "pause",
                actor=lifecycle.Actor.WORKER,
                ids=[enrollment.id],
                reason=lifecycle.reason_text(lifecycle.Reason.MISSING_DATA, "no value for custom.industry"),
            )
        db.session.commit()

    page = html(web.get(f"/campaigns/{instance['id']}"))

    box = page[page.index('id="attention"') : page.index("</section>", page.index('id="attention"'))]
    assert "hidden" not in box.split(">")[0]
    assert "2 contacts are paused for missing data" in box
    assert "No value for custom.industry: 2" in box
    assert f'href="/campaigns/{instance["id"]}?status=paused#enrollments"' in box


def test_the_test_send_form_sends_a_step_to_the_signed_in_user(app, api, web, token, warned):
    form = html(web.get(f"/campaigns/{warned['id']}/test-send", headers=HTMX))
    assert form.lstrip().startswith('<section id="test-send"')
    assert 'value="owner@acme.test"' in form and "Step 2: Step 2 for {{ first_name }}" in form

    sent = web.post(
        f"/campaigns/{warned['id']}/test-send", data={"csrf_token": token, "step": "2", "to": ""}, headers=HTMX
    )

    assert sent.status_code == 200
    assert "Sent step 2 to owner@acme.test" in html(sent) and "toast" in sent.headers["HX-Trigger"]
    with app.app_context():
        (stored,) = db.session.query(OutboxMessage).all()
        assert (stored.to_email, stored.subject, stored.delivery_id) == (
            "owner@acme.test",
            "[Test] Step 2 for Person0",
            None,
        )


def test_a_test_send_that_cannot_be_built_says_why(app, api, web, token, warned):
    nameless = api.get(f"/instances/{warned['id']}/enrollments?search=nameless").get_json()["data"][0]

    failed = web.post(
        f"/campaigns/{warned['id']}/test-send",
        data={"csrf_token": token, "step": "1", "contact_id": nameless["contact_id"]},
        headers=HTMX,
    )

    assert failed.status_code == 422
    assert "no value for first_name" in html(failed) and 'role="alert"' in html(failed)
    with app.app_context():
        assert db.session.query(OutboxMessage).count() == 0


def test_the_test_send_form_needs_csrf_and_the_campaign_of_the_workspace(api, web, outsider, warned):
    assert web.post(f"/campaigns/{warned['id']}/test-send", data={"step": "1"}).status_code == 400
    theirs = factories.instance(api.as_(outsider))
    assert web.get(f"/campaigns/{theirs['id']}/test-send").status_code == 404
    assert web.get(f"/campaigns/{theirs['id']}/launch").status_code == 404


def test_a_failing_mail_server_is_a_clear_message(app, api, web, token, warned, smtp_server, sink):
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    sink.mail_reply = "451 4.3.0 Try again later"

    page = web.post(f"/campaigns/{warned['id']}/test-send", data={"csrf_token": token, "step": "1"})

    assert page.status_code == 502
    assert "The mail server did not take the test message" in html(page) and "Try again later" in html(page)
    assert 'id="test-send"' in html(page)  # the form again, to try once more

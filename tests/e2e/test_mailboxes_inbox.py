"""Mailboxes and the Inbox in a real browser: a mailbox is added through the form, checked against
a real SMTP server and paused with htmx; a reply gets its lead status with htmx; both pages fit
360 px. The conftest fails a test on any console error, page error or CSP violation."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests import builders, factories
from tests.conftest import ApiClient
from tests.e2e.conftest import log_in
from tests.e2e.test_workspace_pages import SMALL, fits
from webapp.models import CampaignEnrollment

pytestmark = pytest.mark.e2e


def test_a_mailbox_is_added_checked_and_paused(new_context, live_server, owner, auth_smtp_server):
    page = new_context().new_page()
    log_in(page, owner)
    page.goto("/mailboxes")
    page.get_by_role("link", name="Add a mailbox").click()

    page.get_by_label("Name", exact=True).fill("Ada")
    page.get_by_label("From address").fill("ada@acme.test")
    page.get_by_label("SMTP host").fill("127.0.0.1")
    page.locator("#field-smtp-port").fill(str(auth_smtp_server.port))
    page.locator("#field-smtp-security").select_option("none")
    page.locator("#field-smtp-username").fill("ada")
    page.locator("#field-smtp-password").fill("ada-secret")
    page.get_by_role("button", name="Add mailbox").click()

    page.wait_for_url(re.compile(r"/mailboxes(#mailbox-.*)?$"))
    expect(page.locator("body")).to_contain_text("ada@acme.test")
    expect(page.locator("body")).not_to_contain_text("ada-secret")
    page.get_by_role("button", name=re.compile(r"^Check connection")).click()
    expect(page.locator("#toasts")).to_contain_text(re.compile(r"SMTP", re.IGNORECASE))
    page.get_by_role("button", name=re.compile(r"^Pause")).click()
    expect(page.get_by_role("button", name=re.compile(r"^Resume"))).to_be_visible()


def test_a_reply_gets_its_lead_status_and_the_pages_fit_360px(new_context, live_server, app, owner):
    api = ApiClient(app.test_client(), owner)
    body = {"name": "Ada", "from_email": "ada@acme.test", "smtp": {"host": "smtp.acme.test"}}
    mailbox = api.post("/mailboxes", json=body).get_json()["data"]
    instance = factories.instance(api, status="active", name="Spring outreach")
    factories.enroll(api, instance["id"], 1)
    with app.app_context():
        from webapp.extensions import db

        enrollment = db.session.query(CampaignEnrollment).one()
        builders.inbound_message(
            uuid.UUID(mailbox["id"]),
            uid=1,
            enrollment=enrollment,
            from_name="Person Zero",
            from_email="person0@example.com",
            snippet="Yes, let's talk on Thursday at 10.",
            received_at=datetime.now(UTC),
        )

    page = new_context(viewport=SMALL).new_page()
    log_in(page, owner)
    page.goto("/inbox")
    card = page.locator(".task-card").first
    expect(card).to_contain_text("Yes, let's talk on Thursday at 10.")
    fits(page)
    card.get_by_label(re.compile("Lead status for")).select_option("meeting_booked")
    card.get_by_role("button", name=re.compile(r"^Save")).click()
    expect(page.locator("#toasts")).to_contain_text("meeting booked")
    expect(page.locator(".task-card").first).to_contain_text("Meeting booked")

    page.goto("/mailboxes")
    fits(page)

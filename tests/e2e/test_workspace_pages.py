"""Overview, tasks, settings and outbox in a real browser: they fit 360 px, draw their chart, copy
to the clipboard, and finish tasks with htmx. The conftest fails a test on any console error, page
error or CSP violation."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.conftest import ApiClient
from tests.e2e.conftest import log_in
from webapp.engine.mailer import OutboxTransport
from webapp.worker import Worker

pytestmark = pytest.mark.e2e
SMALL = {"width": 360, "height": 740}


@pytest.fixture
def workspace_data(app, owner):
    """A running campaign: a LinkedIn step (tasks for two contacts), then an email right after it."""
    api = ApiClient(app.test_client(), owner)
    template = api.post("/templates", json={"name": "LinkedIn, then email"}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/linkedin",
        json={"action_type": "message", "message": "Hi {{ first_name }}, a long message to copy, " * 3},
    )
    api.post(
        f"/templates/{template['id']}/sequences/email",
        json={"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, see [this](https://example.org)."},
    )
    instance = factories.instance(api, template_data=template, status="active", name="A campaign with a long name")
    contacts = [
        {
            "contact": {
                "email": f"someone.with.a.long.address{n}@a-rather-long-company-domain.example.com",
                "first_name": f"Person{n}",
                "company": "Initech International Holdings",
                "linkedin_url": f"https://www.linkedin.com/in/person-{n}",
            }
        }
        for n in range(2)
    ]
    api.post(f"/instances/{instance['id']}/enrollments/bulk", json={"contacts": contacts})
    worker = Worker(app, transport=OutboxTransport())
    assert worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1)).tasks == 2
    task = api.get("/tasks").get_json()["data"][1]
    api.post(f"/tasks/{task['id']}/complete", json={})
    assert worker.run_once(now=datetime.now(UTC) + timedelta(minutes=2)).sent == 1
    return instance


WIDER_THAN_THE_SCREEN = """() => Array.from(document.querySelectorAll("body *"))
  .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5)
  .map((element) => `${element.tagName.toLowerCase()}.${element.className}#${element.id}`)"""


def fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > SMALL["width"]:
        pytest.fail(f"{page.url} scrolls sideways at 360 px ({width}): {page.evaluate(WIDER_THAN_THE_SCREEN)}")


def test_the_pages_fit_360px_and_draw_their_chart(new_context, live_server, owner, workspace_data):
    page = new_context(viewport=SMALL).new_page()
    log_in(page, owner)

    page.goto("/")
    expect(page.locator("#overview-numbers [data-stat='sent']")).to_have_text("1")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart]'))")
    fits(page)
    page.get_by_role("link", name="7 days").click()
    expect(page.get_by_role("heading", name="Last 7 days")).to_be_visible()
    page.wait_for_url(re.compile(r"/\?days=7$"))
    page.wait_for_function("() => Chart.getChart(document.querySelector('canvas[data-chart]'))")

    for path in ("/tasks", "/settings", "/outbox"):
        page.goto(path)
        fits(page)
    page.locator("#outbox-list a").first.click()
    expect(page.locator("iframe.message-frame")).to_be_visible()
    html_part = page.frame_locator("iframe.message-frame")
    expect(html_part.locator("p").first).to_contain_text("Hi Person")
    expect(html_part.locator("a").first).not_to_have_attribute("href", re.compile(".*"))
    fits(page)


def test_a_task_is_copied_then_done_with_htmx(new_context, live_server, owner, workspace_data):
    context = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    log_in(page, owner)
    page.goto("/tasks")
    card = page.locator(".task-card").first
    expect(page.locator("#task-list-title")).to_have_text(re.compile(r"1 open task\b"))

    card.get_by_role("button", name="Copy message").click()
    expect(page.locator("#toasts")).to_contain_text("Copied to the clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == card.get_by_label("Message to send").input_value()
    assert copied.startswith("Hi Person")

    card.get_by_role("button", name=re.compile(r"^Done")).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#task-list-title")).to_have_text(re.compile(r"0 open tasks"))
    expect(page.locator("#toasts")).to_contain_text("LinkedIn message done: the contact moves on.")
    # Focus was on the Done button, which the swap removed: it lands on the list.
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'task-list'")
    assert page.url.endswith("/tasks")


def test_settings_reveal_rotate_and_save_with_htmx(new_context, live_server, owner, workspace_data):
    page = new_context().new_page()
    log_in(page, owner)
    page.goto("/settings")

    page.get_by_role("link", name="Reveal secret").click()
    expect(page.get_by_role("link", name="Hide secret")).to_be_visible()
    secret = page.get_by_label("Secret", exact=True)
    old = secret.input_value()
    assert old.startswith("whsec_")
    page.get_by_role("link", name="Rotate secret").click()  # hx-confirm: the conftest accepts dialogs
    expect(page.locator("#toasts")).to_contain_text("Webhook secret rotated")
    expect(page.get_by_label("Secret", exact=True)).not_to_have_value(old)

    # (A 422 is covered by tests/web: Chromium logs every 4xx response as a console error.)
    page.locator("#sender").get_by_label("Daily cap").fill("25")
    page.locator("#sender").get_by_role("button", name="Save sender defaults").click()
    expect(page.locator("#toasts")).to_contain_text("Sender defaults saved.")
    expect(page.locator("#sender #field-daily-cap-error")).to_have_count(0)


def test_the_pages_work_without_javascript(browser, live_server, owner, workspace_data):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    log_in(page, owner)

    page.goto("/tasks")
    expect(page.get_by_role("button", name="Copy message")).to_be_hidden()
    expect(page.get_by_label("Message to send")).to_have_value(re.compile(r"^Hi Person"))
    page.locator(".task-card").first.get_by_role("button", name=re.compile(r"^Skip")).click()
    expect(page.locator("#toasts")).to_contain_text("LinkedIn message skipped")

    page.goto("/settings")
    page.locator("#api-keys").get_by_role("link", name=re.compile(r"^Revoke")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Revoke the API key"))).to_be_visible()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator("#toasts")).to_contain_text("revoked")
    context.close()

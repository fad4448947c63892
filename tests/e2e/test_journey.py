"""A new sales rep's first session, in a real browser against the live server.

Every step goes through the pages as a person would: the login form, the sequence builder, the
campaign page, the enroll page (paste and CSV upload), the settings page. The conftest fails a test
on any console error, page error or CSP violation along the way.
"""

import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

CAMPAIGN_URL = re.compile(r"/campaigns/[0-9a-f-]{36}$")
TEMPLATE_URL = re.compile(r"/templates/[0-9a-f-]{36}$")
CSV = (
    b"Email Address,First Name,Last Name,Company,Notes\n"
    b"alan@example.com,Alan,Turing,Bletchley,met at the summit\n"
    b"katherine@example.com,Katherine,Johnson,NASA,\n"
    b"grace@example.com,Grace,Hopper,Navy,already pasted\n"
    b"not-an-address,Nobody,Here,Nowhere,\n"
)


def status_buttons(page) -> list[str]:
    return [text.strip() for text in page.locator(".campaign-status-controls button").all_inner_texts()]


def step_titles(page) -> list[str]:
    return [" ".join(text.split()) for text in page.locator("#steps .step__title").all_inner_texts()]


def api_get(url: str, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_new_rep_journey(page, live_server, owner):
    # Sign in.
    log_in(page, owner)
    expect(page).to_have_url(live_server.url + "/")

    # A template, then its sequence: two emails and a LinkedIn step, through the builder.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()
    new_template = page.locator("#new-template")
    new_template.get_by_label("Name", exact=True).fill("Founders outreach")
    new_template.get_by_label("Description").fill("Two emails and a LinkedIn message.")
    page.get_by_role("button", name="Create template").click()
    page.wait_for_url(TEMPLATE_URL)
    expect(page.get_by_role("heading", name="Founders outreach", level=1)).to_be_visible()

    new_email = page.locator("#new-email-step")
    new_email.get_by_label("Subject").fill("Quick question, {{ first_name }}")
    new_email.get_by_label("Body").fill("Hi {{ first_name }},\n\nHow does **{{ company }}** book meetings today?")
    # The live preview renders the email for the sample contact as it is typed.
    preview = page.locator("#new-email-step-preview")
    expect(preview).to_contain_text("Subject: Quick question, Alex")
    expect(preview.locator("strong")).to_have_text("Northwind Traders")
    page.get_by_role("button", name="Add email step").click()
    expect(page.locator("#steps .step")).to_have_count(1)

    new_email = page.locator("#new-email-step")
    new_email.get_by_label("Wait (days)").fill("3")
    new_email.get_by_label("Subject").fill("Following up")
    new_email.get_by_label("Body").fill('Hi {{ first_name | default("there") }}, did you see my last note?')
    expect(page.locator("#new-email-step-preview")).to_contain_text("Subject: Following up")
    page.get_by_role("button", name="Add email step").click()
    expect(page.locator("#steps .step")).to_have_count(2)

    page.get_by_text("Add a LinkedIn step").click()
    new_linkedin = page.locator("#new-linkedin-step")
    new_linkedin.get_by_label("Action").select_option("message")
    new_linkedin.get_by_label("Message").fill("Hi {{ first_name }}, connecting here as well.")
    page.get_by_role("button", name="Add LinkedIn step").click()
    expect(page.locator("#steps .step")).to_have_count(3)
    assert step_titles(page) == ["Step 1 · Email", "Step 2 · Email", "Step 3 · LinkedIn: message"]

    # Reorder: the LinkedIn step up, then down again.
    page.get_by_role("button", name="Move up step 3").click()
    expect(page.locator("#steps .step").nth(1)).to_have_class(re.compile(r"\bstep--linkedin\b"))
    assert step_titles(page) == ["Step 1 · Email", "Step 2 · LinkedIn: message", "Step 3 · Email"]
    expect(page.locator("#steps .step").nth(2)).to_contain_text("Following up")
    page.get_by_role("button", name="Move down step 2").click()
    expect(page.locator("#steps .step").nth(2)).to_have_class(re.compile(r"\bstep--linkedin\b"))
    assert step_titles(page) == ["Step 1 · Email", "Step 2 · Email", "Step 3 · LinkedIn: message"]

    # A campaign from it.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Template").select_option(label="Founders outreach")
    page.get_by_label("Campaign name").fill("Founders Q1")
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(CAMPAIGN_URL)
    campaign_url = page.url
    expect(page.get_by_role("heading", name="Founders Q1", level=1)).to_be_visible()
    assert status_buttons(page) == ["Launch", "Complete"]

    # Enroll by paste: a bare address, a named one and a mistake.
    page.get_by_role("link", name="Enroll contacts").first.click()
    page.get_by_label("Email addresses").fill("ada@example.com\nGrace Hopper <grace@example.com>\nnot-an-address\n")
    page.get_by_role("button", name="Enroll", exact=True).click()
    report = page.locator("#paste .import-report")
    expect(report).to_be_visible()
    expect(report.locator(".stat-list__item", has_text="Enrolled").first.locator("dd")).to_have_text("2")
    expect(report.locator(".stat-list__item", has_text="Invalid").locator("dd")).to_have_text("1")
    expect(report.get_by_role("cell", name="not-an-address", exact=True)).to_be_visible()

    # Enroll by CSV: upload through the file input, map the columns, read the report.
    page.locator("#upload").get_by_label("CSV file").set_input_files(
        files=[{"name": "leads.csv", "mimeType": "text/csv", "buffer": CSV}]
    )
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", name="Check the columns")).to_be_visible()
    expect(page.locator(".import-file")).to_contain_text("4 data rows")
    expect(page.get_by_role("cell", name="katherine@example.com")).to_be_visible()
    mapping = page.locator("#mapping-form")
    mapping.get_by_label("Email Address").select_option("email")
    mapping.get_by_label("First Name").select_option("first_name")
    mapping.get_by_label("Last Name").select_option("last_name")
    mapping.get_by_label("Company").select_option("company")
    mapping.get_by_label("Notes").select_option("ignore")
    page.get_by_role("button", name="Enroll 4 contacts").click()
    expect(page.get_by_role("heading", name="Import complete")).to_be_visible()
    stats = page.locator("#import-status")

    def stat(label: str):
        return stats.locator(".stat-list__item").filter(has=page.get_by_text(label, exact=True)).locator("dd")

    expect(stat("Enrolled")).to_have_text("2")
    expect(stat("Already enrolled")).to_have_text("1")
    expect(stat("Invalid rows")).to_have_text("1")
    expect(stats.get_by_role("region", name="Rows not imported")).to_contain_text("5")

    # Back on the campaign: four people enrolled.
    page.get_by_role("link", name="Back to Founders Q1").click()
    page.wait_for_url(campaign_url)
    expect(page.locator("#enrollments tbody tr")).to_have_count(4)
    expect(page.locator("#enrollments")).to_contain_text("Katherine Johnson")

    # Launch: the launch check stops it first (ada@example.com has no first name, which step 1
    # uses without a default) and asks for a confirmation. Then pause, resume: only the allowed
    # buttons each time.
    controls = page.get_by_role("group", name="Campaign status")
    controls.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", name="Launch check", level=1)).to_be_visible()
    expect(page.locator("#readiness")).to_contain_text("without first_name")
    page.get_by_role("button", name="Launch anyway").click()
    page.wait_for_url(campaign_url)
    expect(controls.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.locator("#campaign-header")).to_contain_text("Active")
    assert status_buttons(page) == ["Pause", "Complete"]
    controls.get_by_role("button", name="Pause").click()
    expect(controls.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.locator("#campaign-header")).to_contain_text("Paused")
    assert status_buttons(page) == ["Resume", "Complete"]
    controls.get_by_role("button", name="Resume").click()
    expect(controls.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.locator("#campaign-header")).to_contain_text("Active")
    assert status_buttons(page) == ["Pause", "Complete"]

    # The performance panel loads, with its per-step table.
    performance = page.locator("#performance")
    expect(performance.locator(".campaign-stats")).to_be_visible()
    enrolled = performance.locator(".campaign-stat").filter(has=page.get_by_text("Enrolled", exact=True))
    expect(enrolled.locator("dd")).to_have_text("4")
    steps_table = performance.locator("table").filter(has=page.locator("#funnel-table-caption"))
    expect(steps_table.locator("tbody tr")).to_have_count(3)
    expect(performance.locator("canvas[data-chart^='chart-funnel-']")).to_be_visible()

    # Settings: an API key, shown once; it works against the API until it is revoked.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_label("New key name").fill("CRM sync")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-api-key")
    expect(new_key).to_be_visible()
    key = new_key.input_value()
    assert key and len(key) > 20
    status, body = api_get(f"{live_server.url}/api/campaigns/v2/templates", key)
    assert status == 200, body
    assert [item["name"] for item in body["data"]] == ["Founders outreach"]

    page.reload()
    expect(page.locator("#new-api-key")).to_have_count(0)
    assert key not in page.content()
    row = page.locator("#api-keys tbody tr").filter(has_text="CRM sync")
    row.get_by_role("link", name="Revoke CRM sync").click()  # hx-confirm: the conftest accepts dialogs
    expect(page.locator("#api-keys tbody tr").filter(has_text="CRM sync")).to_contain_text("Revoked")
    status, body = api_get(f"{live_server.url}/api/campaigns/v2/templates", key)
    assert status == 401, body


def test_back_button_restores_full_pages(page, live_server, owner):
    log_in(page, owner)
    page.goto("/templates")
    # A search swaps only the rows and pushes its URL; going elsewhere and back must give a page.
    page.get_by_label("Search by name").fill("nothing like this")
    page.wait_for_url(re.compile(r"/templates\?.*search=nothing"))
    expect(page.locator("#rows")).to_contain_text("No template matches")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    page.wait_for_url(re.compile(r"/contacts$"))

    page.go_back()
    page.wait_for_url(re.compile(r"/templates\?.*search=nothing"))
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()
    expect(page.locator("nav.site-nav")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("No template matches")
    assert page.evaluate("document.doctype !== null && !!document.querySelector('head > title')")

    # Back through htmx's own history entry (the page before the search).
    page.go_back()
    page.wait_for_url(re.compile(r"/templates$"))
    expect(page.locator("nav.site-nav")).to_have_count(1)
    expect(page.locator("header.site-header")).to_have_count(1)
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="New template")).to_be_visible()


def no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} scrolls sideways at 360 px: scrollWidth={width}"


def test_login_and_campaign_page_fit_360px(new_context, live_server, owner, demo_campaign):
    page = new_context(viewport={"width": 360, "height": 740}).new_page()
    page.goto("/login")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    no_horizontal_scroll(page)

    log_in(page, owner)
    page.goto(f"/campaigns/{demo_campaign}")
    # The panels load when revealed: scroll to each (in the page, as they are replaced when loaded).
    page.evaluate("document.getElementById('performance').scrollIntoView()")
    expect(page.locator("#performance .campaign-stats")).to_be_visible()
    page.evaluate("document.getElementById('schedule').scrollIntoView()")
    expect(page.locator("#schedule")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#enrollments tbody tr").first).to_be_visible()
    no_horizontal_scroll(page)


FOCUS_STYLE = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return {id: el.id, tag: el.tagName, type: el.type || "", text: el.textContent.trim(),
          visible: outline || style.boxShadow !== "none", outline: style.outline, shadow: style.boxShadow};
}"""


def test_keyboard_reaches_login_form_with_visible_focus(page, live_server):
    page.goto("/login")
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_STYLE)
        reached.append(focused)
        if focused["tag"] == "BUTTON" and focused["type"] == "submit":
            break
    order = [f["id"] or f["text"] for f in reached]
    form_fields = ["email", "password", "Sign in"]
    assert [name for name in order if name in form_fields] == form_fields, order
    for focused in reached:
        if focused["id"] in ("email", "password") or focused["text"] == "Sign in":
            assert focused["visible"], f"no visible focus style on {focused}"

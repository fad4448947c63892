"""The contact pages over HTTP: list, search and pages, create and edit forms, one contact with its
campaigns and activity, suppression and the suppression list, and who may reach what."""

import re

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import ApiClient
from tests.web.conftest import count, csrf_token, scalar
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact

HX = {"HX-Request": "true"}


def token(client) -> str:
    return csrf_token(client, "/contacts")


def contact_row(app, email: str) -> Contact | None:
    with app.app_context():
        contact = db.session.scalar(sa.select(Contact).where(Contact.email == email))
        if contact is not None:
            db.session.expunge(contact)
        return contact


def add(api: ApiClient, email: str, **fields) -> dict:
    response = api.post("/contacts", json={"email": email, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def suppress(api: ApiClient, contact: dict, status: str = "unsubscribed") -> None:
    assert api.put(f"/contacts/{contact['id']}/suppression", json={"status": status}).status_code == 200


def emails_in(html: str) -> list[str]:
    return re.findall(r'<a href="/contacts/[0-9a-f-]{36}">([^<]+)</a>', html)


FORM = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "title": "Programmer",
    "linkedin_url": "https://www.linkedin.com/in/ada",
    "timezone": "Europe/London",
    "custom_fields": "industry: math\nfavourite: engines",
}


# The list.


def test_the_list_is_a_page_and_its_rows_a_fragment(browser, owner_api):
    add(owner_api, "ada@example.com", first_name="Ada")

    page = browser.get("/contacts")
    fragment = browser.get("/contacts", headers=HX)
    restored = browser.get("/contacts", headers={**HX, "HX-History-Restore-Request": "true"})

    assert page.status_code == 200
    assert page.get_data(as_text=True).startswith("<!doctype html>")
    assert 'hx-get="/contacts"' in page.get_data(as_text=True) and 'hx-target="#rows"' in page.get_data(as_text=True)
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="rows"')
    assert "ada@example.com" in fragment.get_data(as_text=True)
    assert restored.get_data(as_text=True).startswith("<!doctype html>")
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_empty_list_says_how_to_start(browser):
    html = browser.get("/contacts").get_data(as_text=True)

    assert "No contacts yet" in html and 'href="/contacts/new"' in html


def test_search_and_status_filter_the_list(browser, owner_api):
    add(owner_api, "ada@example.com", first_name="Ada", company="Analytical")
    add(owner_api, "grace@example.com", first_name="Grace", company="Navy")
    suppress(owner_api, add(owner_api, "gone@example.com"))

    def listed(query: str) -> list[str]:
        return sorted(emails_in(browser.get(f"/contacts{query}", headers=HX).get_data(as_text=True)))

    assert listed("?search=ADA") == ["ada@example.com"]
    assert listed("?search=navy") == ["grace@example.com"]
    assert listed("?status=unsubscribed") == ["gone@example.com"]
    assert listed("?status=subscribed&search=a") == ["ada@example.com", "grace@example.com"]
    assert listed("?search=%25_") == []
    # Nonsense in the query string is ignored, not an error.
    assert len(listed("?status=bogus&page=abc&limit=-1")) == 3
    assert "No matching contacts" in browser.get("/contacts?search=nobody").get_data(as_text=True)


def test_the_list_comes_in_pages(browser, owner_api):
    for i in range(30):
        add(owner_api, f"person{i:02d}@example.com")

    first = browser.get("/contacts").get_data(as_text=True)
    second = browser.get("/contacts?page=2", headers=HX).get_data(as_text=True)

    assert len(emails_in(first)) == 25 and len(emails_in(second)) == 5
    assert 'href="/contacts?page=2"' in first and 'hx-target="#rows"' in first
    assert "Page 2 of 2" in second


# Create and edit.


def test_creating_a_contact_saves_it_and_shows_its_page(app, browser):
    response = browser.post("/contacts", data={**FORM, "csrf_token": token(browser)})

    assert response.status_code == 303
    ada = contact_row(app, "ada@example.com")
    assert response.headers["Location"] == f"/contacts/{ada.id}"
    assert (ada.first_name, ada.company, ada.timezone) == ("Ada", "Analytical Engines", "Europe/London")
    assert ada.custom_fields == {"industry": "math", "favourite": "engines"}
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "created" in page and "Analytical Engines" in page and "industry" in page


def test_htmx_gets_a_redirect_header_after_creating(browser):
    response = browser.post("/contacts", data={**FORM, "csrf_token": token(browser)}, headers=HX)

    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/contacts/")


@pytest.mark.parametrize("headers", [{}, HX])
def test_form_errors_are_422_beside_their_fields_and_nothing_is_saved(app, browser, headers):
    form = {
        **FORM,
        "email": "not-an-address",
        "linkedin_url": "javascript:alert(1)",
        "timezone": "Mars/Olympus",
        "custom_fields": "no colon here",
    }

    response = browser.post("/contacts", data={**form, "csrf_token": token(browser)}, headers=headers)
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert html.lstrip().startswith('<form id="contact-form"') == bool(headers)
    for field, message in [
        ("email", "is not a valid email address"),
        ("linkedin-url", "must be an http(s) URL"),
        ("timezone", "unknown time zone"),
        ("custom-fields", "write each custom field as name: value"),
    ]:
        errors = re.search(rf'<ul class="field__errors" id="field-{field}-error">(.*?)</ul>', html, re.S)
        assert errors and message in errors.group(1), field
    assert 'value="Analytical Engines"' in html
    assert count(app, Contact) == 0


def test_a_duplicate_email_is_a_422_with_a_message(app, browser, owner_api):
    add(owner_api, "ada@example.com")

    response = browser.post("/contacts", data={**FORM, "email": "ADA@example.com", "csrf_token": token(browser)})

    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    assert count(app, Contact) == 1


def test_editing_a_contact_changes_and_clears_fields(app, browser, owner_api):
    ada = add(owner_api, "ada@example.com", company="Analytical", custom_fields={"employees": 12, "tier": "gold"})

    form_page = browser.get(f"/contacts/{ada['id']}/edit").get_data(as_text=True)
    assert 'value="Analytical"' in form_page
    text = re.search(r'name="custom_fields"[^>]*>([^<]*)</textarea>', form_page).group(1)
    assert "employees: 12" in text
    original = re.search(r'name="custom_fields_original" value="([^"]*)"', form_page).group(1)

    form = {"email": "ada@example.com", "first_name": "Ada", "company": "", "title": "Countess"}
    unchanged = {"custom_fields": text.replace("&#34;", '"'), "custom_fields_original": original.replace("&#34;", '"')}
    response = browser.post(f"/contacts/{ada['id']}/edit", data={**form, **unchanged, "csrf_token": token(browser)})

    assert (response.status_code, response.headers["Location"]) == (303, f"/contacts/{ada['id']}")
    saved = contact_row(app, "ada@example.com")
    assert (saved.first_name, saved.company, saved.title) == ("Ada", None, "Countess")
    # Custom fields were not touched, so the API's number stays a number.
    assert saved.custom_fields == {"employees": 12, "tier": "gold"}

    changed = {"custom_fields": "tier: silver", "custom_fields_original": "employees: 12\ntier: gold"}
    browser.post(f"/contacts/{ada['id']}/edit", data={**form, **changed, "csrf_token": token(browser)})
    assert contact_row(app, "ada@example.com").custom_fields == {"tier": "silver"}


def test_editing_to_an_email_in_use_is_a_422(app, browser, owner_api):
    add(owner_api, "grace@example.com")
    ada = add(owner_api, "ada@example.com")

    response = browser.post(
        f"/contacts/{ada['id']}/edit", data={"email": "grace@example.com", "csrf_token": token(browser)}
    )

    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    assert contact_row(app, "ada@example.com") is not None


def test_an_empty_email_on_edit_is_a_422(app, browser, owner_api):
    ada = add(owner_api, "ada@example.com", first_name="Ada")

    response = browser.post(f"/contacts/{ada['id']}/edit", data={"email": "", "csrf_token": token(browser)})

    assert response.status_code == 422
    assert "email is required" in response.get_data(as_text=True)
    assert contact_row(app, "ada@example.com").first_name == "Ada"


# One contact.


def test_the_contact_page_shows_fields_campaigns_and_activity(app, browser, owner_api):
    campaign = factories.instance(owner_api, name="Spring launch", status="active")
    factories.enroll(owner_api, campaign["id"], 1)
    enrollment = owner_api.get(f"/instances/{campaign['id']}/enrollments").get_json()["data"][0]
    event = {"provider_event_id": "evt-1", "type": "opened", "enrollment_id": enrollment["id"]}
    assert owner_api.post("/events/webhook", json=event).status_code in (200, 201, 202)
    contact_id = enrollment["contact_id"] if "contact_id" in enrollment else enrollment["contact"]["id"]

    html = browser.get(f"/contacts/{contact_id}").get_data(as_text=True)

    assert "person0@example.com" in html and "Initech" in html
    assert f'href="/campaigns/{campaign["id"]}">Spring launch</a>' in html
    assert ">Active<" in html
    assert ">Opened<" in html


def test_user_text_is_escaped_on_the_contact_pages(browser, owner_api):
    payload = '<img src=x onerror="window.__x=1">'
    contact = add(owner_api, "xss@example.com", first_name=payload, custom_fields={payload: payload})

    for path in (f"/contacts/{contact['id']}", "/contacts", f"/contacts/{contact['id']}/edit"):
        html = browser.get(path).get_data(as_text=True)
        assert "<img src=x" not in html, path
        assert "&lt;img src=x" in html, path


# Suppression.


def test_suppressing_a_contact_stops_its_enrollments(app, browser, owner_api):
    campaign = factories.instance(owner_api, status="active")
    factories.enroll(owner_api, campaign["id"], 1)
    contact = contact_row(app, "person0@example.com")

    response = browser.post(
        f"/contacts/{contact.id}/status",
        data={"status": "bounced", "reason": "mailbox gone", "csrf_token": token(browser)},
    )

    assert (response.status_code, response.headers["Location"]) == (303, f"/contacts/{contact.id}")
    saved = contact_row(app, "person0@example.com")
    assert (saved.status, saved.status_reason) == ("bounced", "mailbox gone")
    assert scalar(app, sa.select(CampaignEnrollment.status)) == "bounced"
    page = browser.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Re-subscribe" in page and 'name="status"' not in page


def test_an_unknown_suppression_status_is_a_422(app, browser, owner_api):
    contact = add(owner_api, "ada@example.com")

    response = browser.post(
        f"/contacts/{contact['id']}/status", data={"status": "vanished", "csrf_token": token(browser)}
    )

    assert response.status_code == 422
    assert contact_row(app, "ada@example.com").status == "subscribed"


def test_re_subscribing_asks_for_confirmation_first(app, browser, owner_api):
    contact = add(owner_api, "ada@example.com")
    suppress(owner_api, contact, "complained")
    url = f"/contacts/{contact['id']}/status"

    unconfirmed = browser.post(url, data={"status": "subscribed", "csrf_token": token(browser)})
    assert unconfirmed.status_code == 200
    assert "Remove from the suppression list?" in unconfirmed.get_data(as_text=True)
    assert contact_row(app, "ada@example.com").status == "complained"

    question = browser.get(f"/contacts/{contact['id']}/resubscribe").get_data(as_text=True)
    assert 'name="confirm" value="yes"' in question

    confirmed = browser.post(url, data={"status": "subscribed", "confirm": "yes", "csrf_token": token(browser)})
    assert confirmed.status_code == 303
    assert contact_row(app, "ada@example.com").status == "subscribed"


def test_a_suppressed_contact_cannot_be_deleted(app, browser, owner_api):
    contact = add(owner_api, "ada@example.com")
    suppress(owner_api, contact)

    response = browser.post(f"/contacts/{contact['id']}/delete", data={"csrf_token": token(browser)})

    assert response.status_code == 409
    assert "stays on the suppression list" in response.get_data(as_text=True)
    assert contact_row(app, "ada@example.com") is not None


def test_deleting_a_subscribed_contact(app, browser, owner_api):
    contact = add(owner_api, "ada@example.com")

    response = browser.post(f"/contacts/{contact['id']}/delete", data={"csrf_token": token(browser)})

    assert (response.status_code, response.headers["Location"]) == (303, "/contacts")
    assert contact_row(app, "ada@example.com") is None
    assert browser.get(f"/contacts/{contact['id']}").status_code == 404


# The suppression list.


def test_the_suppression_list_shows_only_suppressed_contacts(browser, owner_api):
    add(owner_api, "ada@example.com")
    suppress(owner_api, add(owner_api, "gone@example.com"), "bounced")
    suppress(owner_api, add(owner_api, "angry@example.com"), "complained")

    page = browser.get("/contacts/suppressed")
    fragment = browser.get("/contacts/suppressed?status=bounced", headers=HX).get_data(as_text=True)

    assert sorted(emails_in(page.get_data(as_text=True))) == ["angry@example.com", "gone@example.com"]
    assert fragment.lstrip().startswith('<section id="rows"')
    assert emails_in(fragment) == ["gone@example.com"]
    assert 'action="/contacts/suppressed/import/upload"' in page.get_data(as_text=True)


def test_adding_an_address_to_the_suppression_list(app, browser, owner_api):
    add(owner_api, "ada@example.com")

    new = browser.post(
        "/contacts/suppressed", data={"email": "New@Example.com", "status": "complained", "csrf_token": token(browser)}
    )
    existing = browser.post("/contacts/suppressed", data={"email": "ada@example.com", "csrf_token": token(browser)})
    again = browser.post("/contacts/suppressed", data={"email": "ada@example.com", "csrf_token": token(browser)})

    assert [r.status_code for r in (new, existing, again)] == [303, 303, 303]
    assert contact_row(app, "new@example.com").status == "complained"
    assert contact_row(app, "ada@example.com").status == "unsubscribed"
    assert "already on the suppression list" in browser.get("/contacts/suppressed").get_data(as_text=True)


@pytest.mark.parametrize("headers", [{}, HX])
def test_a_bad_address_for_the_suppression_list_is_a_422(app, browser, headers):
    response = browser.post(
        "/contacts/suppressed",
        data={"email": "nope", "status": "subscribed", "csrf_token": token(browser)},
        headers=headers,
    )
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert html.lstrip().startswith('<form id="suppress-form"') == bool(headers)
    assert "is not a valid email address" in html
    assert "Choose unsubscribed, bounced or complained." in html
    assert count(app, Contact) == 0


# Who may reach what.


def test_an_outsider_gets_404_for_the_owners_contact_on_every_route(app, client, owner_api, outsider, login):
    contact = add(owner_api, "ada@example.com", first_name="Ada")
    login(outsider)
    form = {"csrf_token": token(client), "email": "mine@globex.test", "status": "unsubscribed", "confirm": "yes"}
    checked = []

    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("contacts.") or "contact_id" not in rule.arguments:
            continue
        path = rule.build({"contact_id": contact["id"]})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.get(path) if method == "GET" else client.post(path, data=form)
            checked.append((method, path))
            assert response.status_code == 404, (method, path)
            assert "ada@example.com" not in response.get_data(as_text=True)

    assert len(checked) == 6
    saved = contact_row(app, "ada@example.com")
    assert (saved.email, saved.first_name, saved.status) == ("ada@example.com", "Ada", "subscribed")


def test_lists_show_only_the_workspaces_own_contacts(client, owner_api, outsider, login):
    suppress(owner_api, add(owner_api, "ada@example.com"))
    login(outsider)

    assert "ada@example.com" not in client.get("/contacts").get_data(as_text=True)
    assert "ada@example.com" not in client.get("/contacts/suppressed").get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "form"),
    [("/contacts", FORM), ("/contacts/suppressed", {"email": "ada@example.com"}), ("status", {"status": "bounced"})],
)
def test_posts_without_a_csrf_token_are_refused(app, browser, owner_api, path, form):
    existing = add(owner_api, "grace@example.com")
    if path == "status":
        path = f"/contacts/{existing['id']}/status"

    response = browser.post(path, data=form)

    assert response.status_code == 400
    assert count(app, Contact) == 1
    assert contact_row(app, "grace@example.com").status == "subscribed"


@pytest.mark.parametrize(
    "path", ["/contacts", "/contacts/new", "/contacts/suppressed", "/contacts/7b1e0c2a-3d4f-4a5b-9c6d-0e1f2a3b4c5d"]
)
def test_signing_in_is_required(client, path):
    browser_response = client.get(path)
    htmx_response = client.get(path, headers={**HX, "HX-Current-URL": f"http://localhost{path}"})

    assert browser_response.status_code == 303
    assert browser_response.headers["Location"] == f"/login?next={path}"
    assert htmx_response.status_code == 401 and htmx_response.headers["HX-Redirect"].startswith("/login?next=")


def test_every_input_on_the_contact_pages_has_a_label(browser, owner_api):
    contact = add(owner_api, "ada@example.com")
    suppressed = add(owner_api, "gone@example.com")
    suppress(owner_api, suppressed)
    paths = [
        "/contacts",
        "/contacts/new",
        "/contacts/suppressed",
        f"/contacts/{contact['id']}",
        f"/contacts/{contact['id']}/edit",
        f"/contacts/{suppressed['id']}/resubscribe",
    ]
    for path in paths:
        html = browser.get(path).get_data(as_text=True)
        for tag in re.findall(r"<(?:input|select|textarea) [^>]*>", html):
            if 'type="hidden"' in tag:
                continue
            field_id = re.search(r'\sid="([^"]+)"', tag).group(1)
            assert f'for="{field_id}"' in html, (path, tag)

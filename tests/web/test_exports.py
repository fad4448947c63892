"""The dashboard's CSV downloads: the Contacts page and the campaign page link to the exports
with their current filters, the links download the files, and another workspace gets a 404."""

import csv
import html
import io
import re

import pytest

from tests import factories

BOM = "\ufeff"


def links(page: str, pattern: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(rf'href="({pattern}[^"]*)"', page)]


def emails(response) -> list[str]:
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    text = response.get_data(as_text=True)
    assert text.startswith(BOM)
    return [row["email"] for row in csv.DictReader(io.StringIO(text.removeprefix(BOM)))]


@pytest.fixture
def campaign(owner_api):
    instance = factories.instance(owner_api, status="active")
    factories.enroll(owner_api, instance["id"], n=3)
    owner_api.post("/contacts", json={"email": "zed@globex.test", "company": "Globex"})
    return instance


def test_the_contacts_page_downloads_the_contacts_it_lists(browser, campaign):
    page = browser.get("/contacts").get_data(as_text=True)
    filtered = browser.get("/contacts?search=globex&status=subscribed").get_data(as_text=True)
    fragment = browser.get("/contacts?search=person", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert links(page, "/contacts/export") == ["/contacts/export"]
    assert links(filtered, "/contacts/export") == ["/contacts/export?search=globex&status=subscribed"]
    assert links(fragment, "/contacts/export") == ["/contacts/export?search=person"], "live search updates it"
    assert emails(browser.get(links(page, "/contacts/export")[0])) == [
        *(f"person{i}@example.com" for i in range(3)),
        "zed@globex.test",
    ]
    assert emails(browser.get(links(filtered, "/contacts/export")[0])) == ["zed@globex.test"]


def test_the_campaign_page_downloads_its_enrollments_with_the_filters_and_its_events(browser, owner_api, campaign):
    base = f"/campaigns/{campaign['id']}"
    owner_api.post(
        "/events/webhook",
        json={
            "provider_event_id": "o1",
            "type": "opened",
            "email": "person1@example.com",
            "instance_id": campaign["id"],
        },
    )

    page = browser.get(base).get_data(as_text=True)
    filtered = browser.get(base + "?search=person2", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert links(page, base + "/enrollments/export") == [base + "/enrollments/export"]
    assert links(filtered, base + "/enrollments/export") == [base + "/enrollments/export?search=person2"]
    assert links(page, base + "/events/export") == [base + "/events/export"]
    assert sorted(emails(browser.get(base + "/enrollments/export"))) == [f"person{i}@example.com" for i in range(3)]
    assert emails(browser.get(links(filtered, base + "/enrollments/export")[0])) == ["person2@example.com"]
    assert emails(browser.get(base + "/events/export")) == ["person1@example.com"]


def test_another_workspace_gets_404_and_a_visitor_the_login(app, client, campaign, outsider, login):
    base = f"/campaigns/{campaign['id']}"
    assert client.get(base + "/events/export").status_code in (302, 303)
    login(outsider)
    for path in (base + "/enrollments/export", base + "/events/export"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "person" not in response.get_data(as_text=True)
    assert emails(client.get("/contacts/export")) == []

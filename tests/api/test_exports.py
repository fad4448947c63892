"""The CSV export endpoints: streamed UTF-8 attachments, the list filters, errors in the JSON
envelope, and another workspace's campaign as a 404."""

import csv
import io

import pytest

from tests import factories

BOM = "\ufeff"


def rows(response) -> list[dict]:
    text = response.get_data(as_text=True)
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))


@pytest.fixture
def campaign(api):
    instance = factories.instance(api, status="active", name="Q4 Founders — EU")
    factories.enroll(api, instance["id"], n=3)
    listed = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    first = next(e for e in listed if e["contact"]["email"] == "person1@example.com")
    assert api.patch(f"/enrollments/{first['id']}", json={"status": "paused"}).status_code == 200
    event = {"provider_event_id": "click-1", "type": "clicked", "email": "person2@example.com"}
    event |= {"instance_id": instance["id"], "occurred_at": "2026-11-26T10:00:00Z", "metadata": {"url": "@evil"}}
    assert api.post("/events/webhook", json=event).status_code == 200
    return instance


def urls(campaign) -> list[str]:
    return [
        "/contacts/export",
        f"/instances/{campaign['id']}/enrollments/export",
        f"/instances/{campaign['id']}/events/export",
    ]


def test_each_export_is_a_streamed_utf8_csv_attachment_that_runs_after_the_view(api, campaign):
    for url, name in zip(
        urls(campaign), ("contacts-", "q4-founders-eu-enrollments-", "q4-founders-eu-events-"), strict=True
    ):
        response = api.get(url)

        assert response.status_code == 200, url
        assert response.is_streamed, url
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith(f'attachment; filename="{name}') and disposition.endswith('.csv"')
        # The rows are read from the database only now, after the view returned and Flask would
        # have popped the request's context: the stream keeps it (without, this raises).
        assert rows(response), url


def test_the_contacts_export_honours_the_list_filters(api, campaign):
    api.post("/contacts", json={"email": "zed@globex.test", "company": "Globex"})
    suppressed = api.post("/contacts", json={"email": "gone@globex.test"}).get_json()["data"]
    api.put(f"/contacts/{suppressed['id']}/suppression", json={"status": "unsubscribed"})

    def exported(query: str) -> list[str]:
        return [row["email"] for row in rows(api.get("/contacts/export" + query))]

    assert exported("") == ["gone@globex.test", *(f"person{i}@example.com" for i in range(3)), "zed@globex.test"]
    assert exported("?search=globex") == ["gone@globex.test", "zed@globex.test"]
    assert exported("?search=globex&status=subscribed") == ["zed@globex.test"]
    assert exported("?status=unsubscribed&page=3&limit=1") == ["gone@globex.test"]  # paging does not apply


def test_the_enrollments_export_honours_the_list_filters(api, campaign):
    url = f"/instances/{campaign['id']}/enrollments/export"

    everyone = rows(api.get(url))
    paused = rows(api.get(url + "?status=paused"))
    searched = rows(api.get(url + "?search=PERSON2"))

    assert sorted(row["email"] for row in everyone) == [f"person{i}@example.com" for i in range(3)]
    assert [(row["email"], row["status"]) for row in paused] == [("person1@example.com", "paused")]
    assert [(row["email"], row["last_event_type"], row["last_event_at"]) for row in searched] == [
        ("person2@example.com", "clicked", "2026-11-26T10:00:00+00:00")
    ]


def test_the_events_export_lists_the_campaign_events_with_neutralised_cells(api, campaign):
    events = rows(api.get(f"/instances/{campaign['id']}/events/export"))

    clicks = [row for row in events if row["type"] == "clicked"]
    assert [(row["email"], row["url"], row["occurred_at"]) for row in clicks] == [
        ("person2@example.com", "'@evil", "2026-11-26T10:00:00+00:00")
    ]


@pytest.mark.parametrize("query", ["?status=bogus", "?search=" + "x" * 300, "?status=active&status=paused"])
def test_a_bad_filter_is_a_400_in_the_error_envelope(api, campaign, query):
    for url in urls(campaign)[:2]:
        response = api.get(url + query)
        assert response.status_code == 400, (url, query)
        body = response.get_json()
        assert (body["success"], body["statusCode"]) == (False, 400)


def test_another_workspace_campaign_is_a_404_and_its_contacts_are_not_exported(api, campaign, outsider):
    intruder = api.as_(outsider)
    for url in urls(campaign)[1:]:
        response = intruder.get(url)
        assert response.status_code == 404
        assert response.get_json()["success"] is False
    assert rows(intruder.get("/contacts/export")) == []


def test_the_document_describes_the_exports_as_csv(client):
    paths = client.get("/api/campaigns/v2/openapi.json").get_json()["paths"]
    for path in ("/api/campaigns/v2/contacts/export", "/api/campaigns/v2/instances/{instance_id}/events/export"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/csv"]
    params = {
        p["name"] for p in paths["/api/campaigns/v2/instances/{instance_id}/enrollments/export"]["get"]["parameters"]
    }
    assert params == {"instance_id", "status", "search"}

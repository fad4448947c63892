import pytest

from tests import factories


def test_it_enrolls_one_contact_by_data_and_by_id(api):
    instance = factories.instance(api)
    by_data = api.post(
        f"/instances/{instance['id']}/enrollments", json={"contact": {"email": "Dan@Example.com", "first_name": "Dan"}}
    )
    assert by_data.status_code == 201
    enrollment = by_data.get_json()["data"]
    assert enrollment["status"] == "enrolled"
    assert enrollment["contact"]["email"] == "dan@example.com"
    contact = api.post("/contacts", json={"email": "eve@example.com"}).get_json()["data"]
    by_id = api.post(f"/instances/{instance['id']}/enrollments", json={"contact_id": contact["id"]})
    assert by_id.status_code == 201
    assert by_id.get_json()["data"]["contact_id"] == contact["id"]


def test_enrolling_into_an_active_campaign_schedules_the_first_step(api):
    instance = factories.instance(api, status="active")
    enrollment = api.post(
        f"/instances/{instance['id']}/enrollments", json={"contact": {"email": "fay@example.com"}}
    ).get_json()["data"]
    assert enrollment["status"] == "active"
    assert enrollment["next_action_at"] is not None


def test_a_contact_cannot_be_enrolled_twice_or_while_suppressed(api):
    instance = factories.instance(api)
    body = {"contact": {"email": "gus@example.com"}}
    assert api.post(f"/instances/{instance['id']}/enrollments", json=body).status_code == 201
    again = api.post(f"/instances/{instance['id']}/enrollments", json=body)
    assert again.status_code == 409
    assert "already enrolled" in again.get_json()["message"]
    contact = api.post("/contacts", json={"email": "hal@example.com"}).get_json()["data"]
    api.put(f"/contacts/{contact['id']}/suppression", json={"status": "unsubscribed"})
    suppressed = api.post(f"/instances/{instance['id']}/enrollments", json={"contact_id": contact["id"]})
    assert suppressed.status_code == 409
    assert api.get(f"/instances/{instance['id']}/enrollments").get_json()["pagination"]["total"] == 1


def test_giving_both_or_neither_contact_forms_is_a_validation_error(api):
    instance = factories.instance(api)
    assert api.post(f"/instances/{instance['id']}/enrollments", json={}).status_code == 400
    both = {"contact_id": "00000000-0000-4000-8000-000000000000", "contact": {"email": "x@example.com"}}
    assert api.post(f"/instances/{instance['id']}/enrollments", json=both).status_code == 400


def test_bulk_enrollment_reports_every_outcome(api):
    instance = factories.instance(api)
    existing = api.post("/contacts", json={"email": "known@example.com", "first_name": "Old"}).get_json()["data"]
    blocked = api.post("/contacts", json={"email": "blocked@example.com"}).get_json()["data"]
    api.put(f"/contacts/{blocked['id']}/suppression", json={"status": "unsubscribed"})
    api.post(f"/instances/{instance['id']}/enrollments", json={"contact": {"email": "already@example.com"}})
    items = [
        {"contact": {"email": "new1@example.com", "first_name": "New"}},  # 0 enrolled, created
        {"contact": {"email": "KNOWN@example.com", "first_name": "Updated"}},  # 1 enrolled, updated
        {"contact_id": blocked["id"]},  # 2 suppressed
        {"contact": {"email": "already@example.com"}},  # 3 already enrolled
        {"contact": {"email": "broken"}},  # 4 invalid
        {"contact": {"email": "new1@example.com"}},  # 5 duplicate of 0
        {"contact_id": "00000000-0000-4000-8000-000000000001"},  # 6 not found
        {"nonsense": True},  # 7 invalid
    ]
    response = api.post(f"/instances/{instance['id']}/enrollments/bulk", json={"contacts": items})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert (data["enrolled"], data["already_enrolled"], data["suppressed"]) == (2, 1, 1)
    assert data["contacts_created"] == 1
    assert [item["index"] for item in data["invalid"]] == [4, 5, 6, 7]
    assert "duplicate of item 0" in data["invalid"][1]["reason"]
    assert "not found" in data["invalid"][2]["reason"]
    updated = api.get(f"/contacts/{existing['id']}").get_json()["data"]
    assert updated["first_name"] == "Updated"
    assert api.get(f"/contacts/{blocked['id']}").get_json()["data"]["status"] == "unsubscribed"


def test_bulk_enrollment_updates_contacts_without_erasing_fields_not_given(api):
    instance = factories.instance(api)
    api.post(
        "/contacts",
        json={"email": "ivy@example.com", "first_name": "Ivy", "company": "Acme", "custom_fields": {"a": 1}},
    )
    api.post(
        f"/instances/{instance['id']}/enrollments/bulk",
        json={"contacts": [{"contact": {"email": "ivy@example.com", "title": "CTO", "custom_fields": {"b": 2}}}]},
    )
    contact = api.get("/contacts?search=ivy").get_json()["data"][0]
    assert (contact["first_name"], contact["company"], contact["title"]) == ("Ivy", "Acme", "CTO")
    assert contact["custom_fields"] == {"a": 1, "b": 2}


def test_bulk_enrollment_of_thousands_in_one_request(api):
    instance = factories.instance(api, status="active")
    data = factories.enroll(api, instance["id"], 2500)
    assert data["enrolled"] == 2500 and data["invalid"] == []
    again = factories.enroll(api, instance["id"], 2500)
    assert (again["enrolled"], again["already_enrolled"]) == (0, 2500)
    page = api.get(f"/instances/{instance['id']}/enrollments?limit=100&page=25").get_json()
    assert page["pagination"] == {"page": 25, "limit": 100, "total": 2500, "totalPages": 25}


def test_enrollments_are_paused_resumed_and_unenrolled(api):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    paused = api.patch(f"/enrollments/{enrollment['id']}", json={"status": "paused"})
    assert paused.get_json()["data"]["status"] == "paused"
    assert api.patch(f"/enrollments/{enrollment['id']}", json={"status": "paused"}).status_code == 409
    resumed = api.patch(f"/enrollments/{enrollment['id']}", json={"status": "active"})
    assert resumed.get_json()["data"]["status"] == "active"
    removed = api.delete(f"/enrollments/{enrollment['id']}")
    assert removed.get_json()["data"]["status"] == "removed"
    assert api.patch(f"/enrollments/{enrollment['id']}", json={"status": "paused"}).status_code == 409
    assert api.delete(f"/enrollments/{enrollment['id']}").status_code == 409


def test_enrollment_list_filters_searches_and_sorts(api):
    instance = factories.instance(api)
    factories.enroll(api, instance["id"], 5)
    first = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]
    assert [e["contact"]["email"] for e in first] == sorted(e["contact"]["email"] for e in first)
    api.patch(f"/enrollments/{first[0]['id']}", json={"status": "paused"})
    paused = api.get(f"/instances/{instance['id']}/enrollments?status=paused").get_json()
    assert paused["pagination"]["total"] == 1
    found = api.get(f"/instances/{instance['id']}/enrollments?search=person3").get_json()["data"]
    assert [e["contact"]["email"] for e in found] == ["person3@example.com"]


@pytest.mark.parametrize("sort", ["enrolled_at", "-enrolled_at", "email", "-email", "status", "-next_action_at"])
def test_pages_cover_every_enrollment_once_in_order(api, sort):
    instance = factories.instance(api)
    factories.enroll(api, instance["id"], 23)
    everything = api.get(f"/instances/{instance['id']}/enrollments?sort={sort}&limit=100").get_json()["data"]
    pages = [
        api.get(f"/instances/{instance['id']}/enrollments?sort={sort}&limit=10&page={page}").get_json()["data"]
        for page in (1, 2, 3, 4)
    ]
    assert [len(p) for p in pages] == [10, 10, 3, 0]
    assert [e["id"] for p in pages for e in p] == [e["id"] for e in everything]
    assert len({e["id"] for e in everything}) == 23
    if "email" in sort:
        emails = [e["contact"]["email"] for e in everything]
        assert emails == sorted(emails, reverse=sort.startswith("-"))


def test_a_completed_campaign_takes_no_enrollments(api):
    instance = factories.instance(api, status="completed")
    response = api.post(f"/instances/{instance['id']}/enrollments/bulk", json={"contacts": factories.contacts(2)})
    assert response.status_code == 409

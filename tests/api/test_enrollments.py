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
    assert [item["reason"] for item in data["invalid"]] == [
        "row 5: email is not a valid address",
        "row 6 repeats row 1",
        "row 7: contact 00000000-0000-4000-8000-000000000001 not found",
        'row 8: give the contact as the contact\'s fields ({"email": ...}), "contact" or "contact_id"',
    ]
    assert [item["row"] for item in data["invalid"]] == [5, 6, 7, 8]
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


# Contacts live in another campaign: skipped as `in_other_campaign` unless the request allows them.


def bulk(api, instance_id: str, items: list, **options) -> dict:
    response = api.post(f"/instances/{instance_id}/enrollments/bulk", json={"contacts": items, **options})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def counts(data: dict) -> tuple[int, int, int, int, int]:
    return (
        data["enrolled"],
        data["already_enrolled"],
        data["suppressed"],
        data["in_other_campaign"],
        len(data["invalid"]),
    )


def enrollment_of(api, instance_id: str, email: str) -> dict:
    found = api.get(f"/instances/{instance_id}/enrollments?search={email}").get_json()["data"]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("live", ["enrolled", "active", "paused"])
def test_a_contact_live_in_another_campaign_is_skipped_by_index_and_named(api, live):
    other = factories.instance(api, name="Q3 outreach", status="draft" if live == "enrolled" else "active")
    factories.enroll(api, other["id"], 2)  # person0 and person1
    if live == "paused":
        for email in ("person0@example.com", "person1@example.com"):
            enrollment = enrollment_of(api, other["id"], email)
            assert api.patch(f"/enrollments/{enrollment['id']}", json={"status": "paused"}).status_code == 200
    assert enrollment_of(api, other["id"], "person0@example.com")["status"] == live
    target = factories.instance(api, name="Q4 outreach")
    items = [factories.contacts(1, start=2)[0], *factories.contacts(2)]  # person2 is free; then person0, person1

    data = bulk(api, target["id"], items)

    assert counts(data) == (1, 0, 0, 2, 0)
    assert data["skipped"] == [
        {"index": 1, "reason": "in_other_campaign", "detail": "live in campaign 'Q3 outreach'"},
        {"index": 2, "reason": "in_other_campaign", "detail": "live in campaign 'Q3 outreach'"},
    ]
    enrolled = api.get(f"/instances/{target['id']}/enrollments").get_json()["data"]
    assert [e["contact"]["email"] for e in enrolled] == ["person2@example.com"]
    assert enrollment_of(api, other["id"], "person0@example.com")["status"] == live  # untouched


def test_allow_other_campaigns_enrolls_them_in_both(api):
    other = factories.instance(api, status="active")
    factories.enroll(api, other["id"], 2)
    target = factories.instance(api)

    data = bulk(api, target["id"], factories.contacts(3), allow_other_campaigns=True)

    assert counts(data) == (3, 0, 0, 0, 0)
    assert data["skipped"] == []
    for instance in (other, target):
        assert enrollment_of(api, instance["id"], "person0@example.com")["status"] in ("active", "enrolled")


def test_an_item_may_allow_other_campaigns_for_itself(api):
    other = factories.instance(api, status="active")
    factories.enroll(api, other["id"], 2)
    target = factories.instance(api)
    items = factories.contacts(2)
    items[1]["allow_other_campaigns"] = True

    data = bulk(api, target["id"], items)

    assert counts(data) == (1, 0, 0, 1, 0)
    assert [item["index"] for item in data["skipped"]] == [0]


def test_the_detail_names_every_other_campaign_a_contact_is_live_in(api):
    for name in ("Bravo", "Alpha"):
        other = factories.instance(api, name=name)
        assert bulk(api, other["id"], factories.contacts(1), allow_other_campaigns=True)["enrolled"] == 1
    target = factories.instance(api)

    data = bulk(api, target["id"], factories.contacts(1))

    assert data["skipped"] == [
        {"index": 0, "reason": "in_other_campaign", "detail": "live in campaigns 'Alpha', 'Bravo'"}
    ]


def finish(api, other: dict, email: str, how: str) -> None:
    enrollment = enrollment_of(api, other["id"], email)
    if how == "completed":
        response = api.patch(f"/instances/{other['id']}", json={"status": "completed"})
    elif how == "replied":
        response = api.patch(f"/enrollments/{enrollment['id']}", json={"status": "replied"})
    else:
        response = api.delete(f"/enrollments/{enrollment['id']}")
    assert response.status_code == 200, response.get_json()
    assert enrollment_of(api, other["id"], email)["status"] == how


@pytest.mark.parametrize("how", ["completed", "replied", "removed"])
def test_a_contact_whose_other_enrollment_is_final_is_enrolled_without_the_flag(api, how):
    other = factories.instance(api, status="active")
    factories.enroll(api, other["id"], 1)
    finish(api, other, "person0@example.com", how)
    target = factories.instance(api)

    data = bulk(api, target["id"], factories.contacts(1))

    assert counts(data) == (1, 0, 0, 0, 0)
    assert enrollment_of(api, target["id"], "person0@example.com")["status"] == "enrolled"


def test_re_enrolling_into_the_same_campaign_stays_already_enrolled(api):
    other = factories.instance(api, status="active")
    factories.enroll(api, other["id"], 2)
    target = factories.instance(api, status="active")
    assert counts(bulk(api, target["id"], factories.contacts(2), allow_other_campaigns=True)) == (2, 0, 0, 0, 0)
    removed = enrollment_of(api, target["id"], "person1@example.com")
    assert api.delete(f"/enrollments/{removed['id']}").status_code == 200

    # Live in both (person0), or removed here and live elsewhere (person1): already enrolled here.
    data = bulk(api, target["id"], factories.contacts(2))

    assert counts(data) == (0, 2, 0, 0, 0)
    assert data["skipped"] == []
    single = api.post(f"/instances/{target['id']}/enrollments", json=factories.contacts(1)[0])
    assert single.status_code == 409
    assert "already enrolled" in single.get_json()["message"]


def test_a_suppressed_contact_counts_as_suppressed_even_when_live_elsewhere(api):
    other = factories.instance(api)
    factories.enroll(api, other["id"], 1)
    contact = api.get("/contacts?search=person0").get_json()["data"][0]
    api.put(f"/contacts/{contact['id']}/suppression", json={"status": "unsubscribed"})
    target = factories.instance(api)

    data = bulk(api, target["id"], [{"contact_id": contact["id"]}])

    assert counts(data) == (0, 0, 1, 0, 0)


def test_a_campaign_of_another_workspace_does_not_count(api, outsider):
    theirs = factories.instance(api.as_(outsider), name="Their campaign")
    factories.enroll(api.as_(outsider), theirs["id"], 1)
    mine = factories.instance(api)

    assert counts(bulk(api, mine["id"], factories.contacts(1))) == (1, 0, 0, 0, 0)


def test_one_contact_live_elsewhere_is_a_409_unless_allowed(api):
    other = factories.instance(api, name="Q3 outreach", status="active")
    factories.enroll(api, other["id"], 1)
    target = factories.instance(api)
    body = factories.contacts(1)[0]

    refused = api.post(f"/instances/{target['id']}/enrollments", json=body)

    assert refused.status_code == 409
    error = refused.get_json()
    assert "live in campaign 'Q3 outreach'" in error["message"]
    assert "allow_other_campaigns" in error["message"]
    assert error["details"] == [
        {"field": "contact", "reason": "in_other_campaign", "message": "live in campaign 'Q3 outreach'"}
    ]
    assert api.get(f"/instances/{target['id']}/enrollments").get_json()["pagination"]["total"] == 0
    allowed = api.post(f"/instances/{target['id']}/enrollments", json={**body, "allow_other_campaigns": True})
    assert allowed.status_code == 201, allowed.get_json()
    assert allowed.get_json()["data"]["contact"]["email"] == "person0@example.com"


def test_the_flag_must_be_a_boolean(api):
    target = factories.instance(api)
    response = api.post(
        f"/instances/{target['id']}/enrollments/bulk",
        json={"contacts": factories.contacts(1), "allow_other_campaigns": "yes"},
    )
    assert response.status_code == 400
    assert "allow_other_campaigns" in response.get_data(as_text=True)


def test_a_big_batch_half_live_elsewhere_counts_every_item_once(api):
    other = factories.instance(api, status="active")
    live = [factories.contacts(1, start=i)[0] for i in range(0, 2000, 2)]  # the even ones
    assert bulk(api, other["id"], live)["enrolled"] == 1000
    target = factories.instance(api, status="active")
    items = [*factories.contacts(2000), {"contact": {"email": "broken"}}]

    data = bulk(api, target["id"], items)

    assert counts(data) == (1000, 0, 0, 1000, 1)
    assert sum(counts(data)) == len(items)
    assert [item["index"] for item in data["skipped"]] == list(range(0, 2000, 2))
    assert {item["reason"] for item in data["skipped"]} == {"in_other_campaign"}
    assert api.get(f"/instances/{target['id']}/enrollments").get_json()["pagination"]["total"] == 1000

    again = bulk(api, target["id"], items, allow_other_campaigns=True)

    assert counts(again) == (1000, 1000, 0, 0, 1)
    assert api.get(f"/instances/{target['id']}/enrollments").get_json()["pagination"]["total"] == 2000

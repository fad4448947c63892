from tests import factories


def test_it_creates_a_template_and_reads_it_back(api):
    response = api.post(
        "/templates",
        json={
            "name": "Q4 outbound",
            "type": "email",
            "description": "CFOs",
            "settings": {"daily_cap": 50, "send_window": {"days": [1, 2, 3], "start": "08:00", "end": "18:00"}},
        },
    )
    assert response.status_code == 201
    data = response.get_json()["data"]
    assert data["name"] == "Q4 outbound"
    assert data["settings"]["daily_cap"] == 50
    assert data["steps"] == []
    fetched = api.get(f"/templates/{data['id']}").get_json()
    assert fetched["success"] is True
    assert fetched["data"]["description"] == "CFOs"


def test_it_lists_templates_with_search_and_pagination(api):
    for name in ("Alpha launch", "Beta launch", "Gamma"):
        api.post("/templates", json={"name": name})
    body = api.get("/templates?search=launch&limit=1").get_json()
    assert body["pagination"] == {"page": 1, "limit": 1, "total": 2, "totalPages": 2}
    assert len(body["data"]) == 1


def test_steps_keep_order_and_inserting_shifts_later_steps(api):
    template = factories.template(api, steps=2)
    template_id = template["id"]
    inserted = api.post(
        f"/templates/{template_id}/sequences/email", json={"subject": "New first", "body": "Hi", "step_number": 1}
    )
    assert inserted.status_code == 201
    steps = api.get(f"/templates/{template_id}").get_json()["data"]["steps"]
    assert [s["subject"] for s in steps] == ["New first", "Step 1 for {{ first_name }}", "Step 2 for {{ first_name }}"]
    assert [s["step_number"] for s in steps] == [1, 2, 3]


def test_moving_a_step_reorders_the_sequence(api):
    template = factories.template(api, steps=3)
    last = template["steps"][2]
    moved = api.put(f"/templates/{template['id']}/sequences/email/{last['id']}", json={"step_number": 1})
    assert moved.status_code == 200
    steps = api.get(f"/templates/{template['id']}").get_json()["data"]["steps"]
    assert [s["id"] for s in steps] == [last["id"], template["steps"][0]["id"], template["steps"][1]["id"]]


def test_deleting_a_step_closes_the_gap(api):
    template = factories.template(api, steps=3)
    first = template["steps"][0]
    assert api.delete(f"/templates/{template['id']}/sequences/email/{first['id']}").status_code == 200
    steps = api.get(f"/templates/{template['id']}").get_json()["data"]["steps"]
    assert [s["step_number"] for s in steps] == [1, 2]


def test_linkedin_steps_have_their_own_endpoint_and_make_the_template_multi_channel(api):
    template = factories.template(api, steps=1, linkedin=True)
    linkedin = next(s for s in template["steps"] if s["channel"] == "linkedin")
    assert linkedin["action_type"] == "connection_request"
    assert linkedin["message"] == "Hi!"
    assert template["type"] == "multi_channel"
    # An email endpoint does not reach a LinkedIn step.
    response = api.put(f"/templates/{template['id']}/sequences/email/{linkedin['id']}", json={"subject": "x"})
    assert response.status_code == 404


def test_a_connection_note_is_at_most_linkedins_300_characters(api):
    template = factories.template(api, steps=0)
    base = f"/templates/{template['id']}/sequences/linkedin"
    too_long = {"action_type": "connection_request", "message": "x" * 301}
    response = api.post(base, json=too_long)
    assert response.status_code == 400
    assert response.get_json()["details"] == [
        {"field": "message", "message": "at most 300 characters on LinkedIn (301 given)"}
    ]
    assert api.post(base, json={**too_long, "action_type": "message"}).status_code == 201  # a message may be longer
    note = api.post(base, json={**too_long, "message": "x" * 300}).get_json()["data"]
    response = api.put(f"{base}/{note['id']}", json={"message": "x" * 301})
    assert response.status_code == 400
    steps = api.get(f"/templates/{template['id']}").get_json()["data"]["steps"]
    assert [len(s["message"]) for s in steps] == [301, 300]


def test_a_template_used_by_a_campaign_cannot_be_deleted(api):
    instance = factories.instance(api)
    response = api.delete(f"/templates/{instance['template_id']}")
    assert response.status_code == 409
    assert "deactivate" in response.get_json()["message"]


def test_unknown_fields_and_bad_values_are_a_validation_error(api):
    response = api.post("/templates", json={"name": "x", "owner_id": "me"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False and body["error"] == "Validation Error"
    assert body["details"][0]["field"] == "owner_id"
    assert api.post("/templates", json={"name": ""}).status_code == 400
    assert api.post("/templates", json={"name": "x", "settings": {"daily_cap": -1}}).status_code == 400

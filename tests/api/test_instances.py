import pytest

from tests import factories


def test_it_creates_a_draft_instance_from_a_template(api):
    template = factories.template(api)
    response = api.post(
        "/instances", json={"template_id": template["id"], "name": "Q4 CFOs", "settings": {"daily_cap": 30}}
    )
    assert response.status_code == 201
    data = response.get_json()["data"]
    assert data["status"] == "draft"
    assert data["settings"] == {"daily_cap": 30}
    assert api.get(f"/instances/{data['id']}").get_json()["data"]["name"] == "Q4 CFOs"


def test_an_inactive_template_cannot_start_a_campaign(api):
    template = factories.template(api, is_active=False)
    response = api.post("/instances", json={"template_id": template["id"], "name": "x"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("path", "final"),
    [
        (["active"], "active"),
        (["active", "paused"], "paused"),
        (["active", "paused", "active"], "active"),
        (["active", "completed"], "completed"),
        (["active", "paused", "completed"], "completed"),
        (["completed"], "completed"),
    ],
)
def test_it_follows_the_status_state_machine(api, path, final):
    instance = factories.instance(api)
    for status in path:
        response = api.patch(f"/instances/{instance['id']}", json={"status": status})
        assert response.status_code == 200, response.get_json()
    data = api.get(f"/instances/{instance['id']}").get_json()["data"]
    assert data["status"] == final


@pytest.mark.parametrize(
    ("path", "bad", "allowed"),
    [
        ([], "paused", "active, completed"),
        (["completed"], "active", "none"),
        (["active", "paused"], "paused", "active, completed"),
    ],
)
def test_an_invalid_transition_is_a_409_listing_the_allowed_ones(api, path, bad, allowed):
    instance = factories.instance(api)
    for status in path:
        api.patch(f"/instances/{instance['id']}", json={"status": status})
    response = api.patch(f"/instances/{instance['id']}", json={"status": bad})
    assert response.status_code == 409
    assert allowed in response.get_json()["message"]


def test_a_template_without_active_steps_cannot_launch(api):
    template = factories.template(api, steps=0)
    instance = factories.instance(api, template_data=template)
    response = api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    assert response.status_code == 409
    assert "no active steps" in response.get_json()["message"]
    assert api.get(f"/instances/{instance['id']}").get_json()["data"]["status"] == "draft"


def test_launching_activates_waiting_enrollments(api):
    instance = factories.instance(api)
    factories.enroll(api, instance["id"], 3)
    statuses = {e["status"] for e in api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]}
    assert statuses == {"enrolled"}
    api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    assert {e["status"] for e in enrollments} == {"active"}
    assert all(e["next_action_at"] for e in enrollments)


def test_completing_ends_live_enrollments(api):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 2)
    api.patch(f"/instances/{instance['id']}", json={"status": "completed"})
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    assert {e["status"] for e in enrollments} == {"completed"}


def test_it_lists_instances_filtered_by_status(api):
    factories.instance(api, status="active")
    factories.instance(api)
    body = api.get("/instances?status=active").get_json()
    assert body["pagination"]["total"] == 1
    assert body["data"][0]["status"] == "active"


def test_a_live_campaign_is_edited_in_one_request(api):
    instance = factories.instance(api, status="active", settings={"daily_cap": 30, "track_opens": True})
    response = api.patch(
        f"/instances/{instance['id']}",
        json={"name": "Q4 CFOs, take 2", "settings": {"daily_cap": 50, "track_opens": None}, "status": "paused"},
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert (data["name"], data["settings"], data["status"]) == ("Q4 CFOs, take 2", {"daily_cap": 50}, "paused")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": None}, 400, "name cannot be null"),
        ({"settings": {"daily_cap": 0}}, 400, "daily_cap"),
        ({"start_at": "2020-01-01T09:00:00Z"}, 409, "future"),
        ({"settings": {"mailbox_ids": ["6f1c1e3e-4f43-4b8e-9d0e-0c7f7cfc0a11"]}}, 404, "Mailbox"),
    ],
)
def test_an_edit_that_cannot_apply_is_refused_and_changes_nothing(api, body, status, message):
    instance = factories.instance(api, settings={"daily_cap": 30})
    response = api.patch(f"/instances/{instance['id']}", json=body)
    assert response.status_code == status, response.get_json()
    assert message in response.get_json()["message"]
    assert api.get(f"/instances/{instance['id']}").get_json()["data"]["settings"] == {"daily_cap": 30}


def test_a_draft_is_scheduled_and_the_schedule_cancelled(api):
    instance = factories.instance(api)
    response = api.patch(f"/instances/{instance['id']}", json={"start_at": "2099-01-05T08:00:00+01:00"})
    assert response.get_json()["data"]["start_at"].startswith("2099-01-05T07:00:00")
    response = api.patch(f"/instances/{instance['id']}", json={"start_at": None})
    assert response.get_json()["data"]["start_at"] is None


def test_a_draft_enrollment_has_no_wait_to_skip_and_a_sent_delivery_no_retry(api):
    instance = factories.instance(api)
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    response = api.post(f"/enrollments/{enrollment['id']}/skip-wait", json={})
    assert response.status_code == 409
    assert "enrolled" in response.get_json()["message"]
    assert api.post("/deliveries/6f1c1e3e-4f43-4b8e-9d0e-0c7f7cfc0a11/retry", json={}).status_code == 404

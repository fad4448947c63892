"""Bulk actions on a campaign's enrollments: by selection (each one reported) or by the list's filter."""

import uuid

import pytest

from tests import factories


def enrollments_of(api, instance_id, **params) -> list[dict]:
    query = "&".join(f"{key}={value}" for key, value in {"limit": 100, **params}.items())
    return api.get(f"/instances/{instance_id}/enrollments?{query}").get_json()["data"]


def act(api, instance_id, **body):
    return api.post(f"/instances/{instance_id}/enrollments/actions", json=body)


@pytest.fixture
def live(api):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 4)
    return instance


def test_a_selection_is_paused_and_each_one_reported(api, live):
    first, second, *_ = enrollments_of(api, live["id"], sort="email")
    api.patch(f"/enrollments/{second['id']}", json={"status": "paused"})
    stranger = str(uuid.uuid4())
    response = act(api, live["id"], action="pause", enrollment_ids=[first["id"], second["id"], stranger])
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert (data["matched"], data["changed"], data["skipped"]) == (2, 1, 1)
    assert [(r["enrollment_id"], r["outcome"]) for r in data["results"]] == [
        (first["id"], "changed"),
        (second["id"], "skipped"),
        (stranger, "not_found"),
    ]
    assert data["results"][1]["reason"] == "it is paused"
    assert {e["status"] for e in enrollments_of(api, live["id"], status="paused")} == {"paused"}


def test_the_filter_takes_every_match_and_resume_makes_past_due_steps_due_now(api, live):
    assert act(api, live["id"], action="pause", filter={}).get_json()["data"]["changed"] == 4
    data = act(api, live["id"], action="resume", filter={"status": "paused", "search": "person1"}).get_json()["data"]
    assert (data["matched"], data["changed"], data["results"]) == (1, 1, [])
    resumed = enrollments_of(api, live["id"], status="active")
    assert [e["contact"]["email"] for e in resumed] == ["person1@example.com"]
    assert resumed[0]["next_action_at"] is not None


def test_marking_many_replied_records_an_event_for_each(api, live):
    ids = [e["id"] for e in enrollments_of(api, live["id"])][:2]
    data = act(api, live["id"], action="mark_replied", enrollment_ids=ids).get_json()["data"]
    assert data["changed"] == 2
    for enrollment_id in ids:
        assert api.get(f"/enrollments/{enrollment_id}").get_json()["data"]["status"] == "replied"
        types = [e["type"] for e in api.get(f"/enrollments/{enrollment_id}/events").get_json()["data"]]
        assert types.count("replied") == 1


def test_a_move_enrolls_in_the_other_campaign_and_unenrolls_here(api, live):
    other = factories.instance(api)
    data = act(api, live["id"], action="move", filter={"search": "person2"}, target_instance_id=other["id"])
    assert data.status_code == 200, data.get_json()
    assert data.get_json()["data"]["changed"] == 1
    [moved] = enrollments_of(api, live["id"], status="removed")
    assert moved["contact"]["email"] == "person2@example.com" and "moved to" in moved["status_reason"]
    assert [e["contact"]["email"] for e in enrollments_of(api, other["id"])] == ["person2@example.com"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"action": "pause"}, 400),
        ({"action": "pause", "filter": {}, "enrollment_ids": [str(uuid.uuid4())]}, 400),
        ({"action": "move", "filter": {}}, 409),
        ({"action": "explode", "filter": {}}, 400),
        ({"action": "move", "filter": {}, "target_instance_id": str(uuid.uuid4())}, 404),
    ],
)
def test_a_bad_action_is_refused_and_changes_nothing(api, live, body, status):
    response = act(api, live["id"], **body)
    assert response.status_code == status, response.get_json()
    assert {e["status"] for e in enrollments_of(api, live["id"])} == {"active"}


def test_moving_into_the_same_campaign_or_another_workspaces_is_refused(api, live, outsider):
    assert act(api, live["id"], action="move", filter={}, target_instance_id=live["id"]).status_code == 409
    theirs = factories.instance(api.as_(outsider))
    assert act(api, live["id"], action="move", filter={}, target_instance_id=theirs["id"]).status_code == 404
    assert act(api.as_(outsider), live["id"], action="pause", filter={}).status_code == 404
    assert {e["status"] for e in enrollments_of(api, live["id"])} == {"active"}

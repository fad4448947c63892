"""The "Edit steps for this campaign" page: counts first, then changes for this campaign only."""

from datetime import UTC, datetime, timedelta

from tests.api.test_campaign_steps import copy_id, launched, steps_of
from tests.web.conftest import csrf_token
from webapp.worker import Worker


def test_the_page_shows_who_a_change_concerns_and_edits_only_this_campaign(api, app, owner, login):
    template, instance = launched(api)
    Worker(app).run_once(now=datetime.now(UTC) + timedelta(minutes=1))
    web = login(owner)
    path = f"/campaigns/{instance['id']}/steps"

    page = web.get(path).get_data(as_text=True)
    assert "Edit steps for this campaign" in page
    assert "<strong>2</strong> contact(s) waiting on this step" in page
    assert "Edit steps for this campaign" in web.get(f"/campaigns/{instance['id']}").get_data(as_text=True)
    copy = copy_id(app, instance["id"])
    assert web.get(f"/templates/{copy}").status_code == 404
    assert copy not in web.get("/templates").get_data(as_text=True)

    step_two = steps_of(api, instance["id"])[1]
    token = csrf_token(web, path)
    asked = web.post(f"{path}/{step_two['id']}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "2 contact(s) are waiting on this step" in asked.get_data(as_text=True)
    assert len(steps_of(api, instance["id"])) == 3

    saved = web.post(
        f"{path}/{step_two['id']}",
        data={"csrf_token": token, "delay_days": "6", "delay_hours": "0", "is_active": "on"},
    )
    assert saved.status_code == 303
    assert steps_of(api, instance["id"])[1]["delay_days"] == 6
    assert [s["delay_days"] for s in api.get(f"/templates/{template['id']}").get_json()["data"]["steps"]] == [0, 2, 3]

    removed = web.post(f"{path}/{step_two['id']}/delete", data={"csrf_token": token, "waiting": "skip"})
    assert removed.status_code == 303
    assert [s["subject"] for s in steps_of(api, instance["id"])] == ["Step 1", "Step 3"]
    assert web.post(f"{path}/{step_two['id']}/delete", data={"waiting": "skip"}).status_code == 400  # no CSRF token


def test_another_workspace_gets_404_for_a_campaigns_steps(api, outsider, login):
    _, instance = launched(api, contacts=1)
    step = steps_of(api, instance["id"])[1]
    web = login(outsider)
    path = f"/campaigns/{instance['id']}/steps"
    token = csrf_token(web, "/campaigns")

    assert web.get(path).status_code == 404
    assert web.post(f"{path}/{step['id']}/delete", data={"csrf_token": token, "waiting": "stop"}).status_code == 404
    assert web.post(path, data={"csrf_token": token, "subject": "x", "body": "y"}).status_code == 404
    assert len(steps_of(api, instance["id"])) == 3

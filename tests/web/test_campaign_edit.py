"""Steering a campaign from its pages: the edit form (name, settings, scheduled launch), and the
enrollment page's "Skip the wait" and "Send the failed step again"."""

import uuid

import sqlalchemy as sa

from tests import factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, SequenceStep
from webapp.models.enums import DeliveryStatus
from webapp.services import lifecycle


def html(response) -> str:
    return response.get_data(as_text=True)


def test_the_edit_form_shows_the_campaigns_own_settings_and_saves_changes(login, owner, api):
    web = login(owner)
    instance = factories.instance(api, name="Spring", settings={"daily_cap": 25, "track_opens": False}, status="active")
    page = html(web.get(f"/campaigns/{instance['id']}/edit"))
    assert 'value="Spring"' in page and 'value="25"' in page
    assert "Launch at" not in page  # only a draft is scheduled
    response = web.post(
        f"/campaigns/{instance['id']}/edit",
        data={
            "csrf_token": csrf_token(web, f"/campaigns/{instance['id']}/edit"),
            "name": "Spring, again",
            "settings.daily_cap": "40",
            "settings.track_opens": "",
            "settings.send_window.start": "08:00",
            "settings.send_window.days": ["1", "2"],
        },
    )
    assert response.status_code == 303, html(response)
    data = api.get(f"/instances/{instance['id']}").get_json()["data"]
    assert data["name"] == "Spring, again"
    assert data["settings"] == {"daily_cap": 40, "send_window": {"days": [1, 2], "start": "08:00"}}


def test_a_bad_edit_is_shown_on_the_form_and_saves_nothing(login, owner, api):
    web = login(owner)
    instance = factories.instance(api, name="Spring", settings={"daily_cap": 25})
    token = csrf_token(web, f"/campaigns/{instance['id']}/edit")
    response = web.post(
        f"/campaigns/{instance['id']}/edit",
        data={"csrf_token": token, "name": "Renamed", "settings.daily_cap": "0", "start_at": "2020-01-01T09:00"},
    )
    assert response.status_code == 422
    assert "field--invalid" in html(response)
    data = api.get(f"/instances/{instance['id']}").get_json()["data"]
    assert (data["name"], data["settings"]) == ("Spring", {"daily_cap": 25})
    response = web.post(
        f"/campaigns/{instance['id']}/edit",
        data={"csrf_token": token, "name": "Renamed", "start_at": "2020-01-01T09:00"},
    )
    assert response.status_code == 422
    assert "must be in the future" in html(response) or "in the future" in html(response)
    assert web.post(f"/campaigns/{instance['id']}/edit", data={"name": "No token"}).status_code == 400


def test_a_draft_is_scheduled_in_the_users_zone_and_the_page_says_when(login, owner, api):
    web = login(owner)
    instance = factories.instance(api, name="Later")
    factories.enroll(api, instance["id"], 1)
    response = web.post(
        f"/campaigns/{instance['id']}/edit",
        data={
            "csrf_token": csrf_token(web, f"/campaigns/{instance['id']}/edit"),
            "name": "Later",
            "start_at": "2099-01-05T08:00",
        },
    )
    assert response.status_code == 303, html(response)
    assert api.get(f"/instances/{instance['id']}").get_json()["data"]["start_at"].startswith("2099-01-05T08:00:00")
    assert "Launches by itself" in html(web.get(f"/campaigns/{instance['id']}"))


def test_another_workspaces_campaign_has_no_edit_page(login, owner, outsider, api):
    theirs = factories.instance(api.as_(outsider))
    assert login(owner).get(f"/campaigns/{theirs['id']}/edit").status_code == 404


def test_the_enrollment_page_skips_a_wait_and_sends_a_failed_step_again(login, owner, api, app):
    web = login(owner)
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 2)
    first, second = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    with app.app_context():
        later = db.session.get(CampaignEnrollment, uuid.UUID(first["id"]))
        later.next_action_at = later.next_action_at.replace(year=2099)
        failed = db.session.get(CampaignEnrollment, uuid.UUID(second["id"]))
        step_id = db.session.scalar(sa.select(SequenceStep.id).where(SequenceStep.position == 1).limit(1))
        delivery = Delivery(
            workspace_id=failed.workspace_id, enrollment_id=failed.id, step_id=step_id, status=DeliveryStatus.FAILED
        )
        db.session.add(delivery)
        lifecycle.change("fail", actor=lifecycle.Actor.WORKER, ids=[failed.id], reason="send failed")
        db.session.commit()
        delivery_id = delivery.id
    page_url = f"/campaigns/{instance['id']}/enrollments/{first['id']}"
    assert "Skip the wait" in html(web.get(page_url))
    response = web.post(f"{page_url}/skip-wait", data={"csrf_token": csrf_token(web, page_url), "next": page_url})
    assert response.status_code == 303
    assert api.get(f"/enrollments/{first['id']}").get_json()["data"]["next_action_at"] < "2099"
    failed_url = f"/campaigns/{instance['id']}/enrollments/{second['id']}"
    assert "Send the failed step again" in html(web.get(failed_url))
    response = web.post(
        f"/campaigns/{instance['id']}/deliveries/{delivery_id}/retry",
        data={"csrf_token": csrf_token(web, failed_url), "next": failed_url},
    )
    assert response.status_code == 303
    assert api.get(f"/enrollments/{second['id']}").get_json()["data"]["status"] == "active"


def test_ticked_enrollments_or_all_that_match_get_one_action(login, owner, api):
    web = login(owner)
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 3)
    rows = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]
    page_url = f"/campaigns/{instance['id']}"
    page = html(web.get(page_url))
    assert 'form="bulk-actions"' in page and "Apply to all 3" in page
    token = csrf_token(web, page_url)
    response = web.post(
        f"{page_url}/enrollments/actions",
        data={"csrf_token": token, "action": "pause", "scope": "selection", "enrollment_ids": [rows[0]["id"]]},
    )
    assert response.status_code == 303
    assert "1 of 1 changed" in html(web.get(page_url))
    response = web.post(
        f"{page_url}/enrollments/actions",
        data={"csrf_token": token, "action": "unenroll", "scope": "filter", "status": "active"},
    )
    assert response.status_code == 303
    statuses = [e["status"] for e in api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]]
    assert statuses == ["paused", "removed", "removed"]
    response = web.post(f"{page_url}/enrollments/actions", data={"csrf_token": token, "action": "pause"})
    assert response.status_code == 303
    assert "Tick the enrollments first" in html(web.get(page_url))

"""Cloning a template (settings and every step) and a campaign (a new draft, without contacts)."""

import uuid

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignEvent, Delivery, SequenceStep

SETTINGS = {"daily_cap": 40, "send_window": {"days": [1, 2, 3], "start": "08:00", "end": "18:00"}, "stop_on": ["reply"]}
STEP_COLUMNS = ("channel", "action", "delay_days", "delay_hours", "subject", "body", "variants", "thread", "is_active")


def step_rows(app, template_id: str) -> list[dict]:
    with app.app_context():
        steps = _db.session.scalars(
            sa.select(SequenceStep).where(SequenceStep.template_id == uuid.UUID(template_id)).order_by("position")
        )
        rows = [{"position": s.position, **{c: getattr(s, c) for c in STEP_COLUMNS}} for s in steps]
        _db.session.remove()
    return rows


@pytest.fixture
def template(app, api):
    """An inactive-step, threaded, multi-channel template with A/B variants on its first step."""
    data = factories.template(api, steps=2, linkedin=True, settings=SETTINGS, description="CFOs in the EU")
    base = f"/templates/{data['id']}/sequences/email"
    assert api.post(base, json={"subject": "", "body": "Bumping this", "delay_days": 4}).status_code == 201
    second = data["steps"][1]["id"]
    assert api.put(f"{base}/{second}", json={"is_active": False, "delay_hours": 5}).status_code == 200
    with app.app_context():
        step = _db.session.get(SequenceStep, uuid.UUID(data["steps"][0]["id"]))
        step.variants = [{"subject": "Variant B", "weight": 50}]
        _db.session.commit()
        _db.session.remove()
    return api.get(f"/templates/{data['id']}").get_json()["data"]


def test_a_template_clone_has_the_settings_and_every_step_column_by_column(app, api, template):
    response = api.post(f"/templates/{template['id']}/clone")
    assert response.status_code == 201, response.get_json()
    clone = response.get_json()["data"]
    assert clone == api.get(f"/templates/{clone['id']}").get_json()["data"]  # the same shape as GET
    assert clone["id"] != template["id"] and clone["name"] == f"{template['name']} (copy)"
    for key in ("type", "path_type", "description", "settings", "is_active"):
        assert clone[key] == template[key], key
    assert clone["type"] == "multi_channel" and clone["settings"]["daily_cap"] == 40
    assert step_rows(app, clone["id"]) == step_rows(app, template["id"])
    assert len(clone["steps"]) == 4 and not {s["id"] for s in clone["steps"]} & {s["id"] for s in template["steps"]}
    assert [s["thread"] for s in clone["steps"] if s["channel"] == "email"] == [False, False, True]


def test_the_copy_and_the_original_change_independently(app, api, template):
    clone = api.post(f"/templates/{template['id']}/clone").get_json()["data"]
    first = clone["steps"][0]["id"]
    api.put(f"/templates/{clone['id']}/sequences/email/{first}", json={"subject": "Changed in the copy"})
    api.put(f"/templates/{clone['id']}", json={"settings": {"daily_cap": 5}})
    with app.app_context():
        _db.session.get(SequenceStep, uuid.UUID(first)).variants.append({"subject": "C"})
        _db.session.commit()
        _db.session.remove()
    original = api.get(f"/templates/{template['id']}").get_json()["data"]
    assert original["steps"][0]["subject"] == template["steps"][0]["subject"]
    assert original["settings"] == template["settings"]
    assert step_rows(app, template["id"])[0]["variants"] == [{"subject": "Variant B", "weight": 50}]


def test_copies_are_numbered_and_a_given_name_is_used_as_is(api):
    template = factories.template(api, steps=0, name="Founders")
    names = [api.post(f"/templates/{template['id']}/clone").get_json()["data"]["name"] for _ in range(3)]
    assert names == ["Founders (copy)", "Founders (copy 2)", "Founders (copy 3)"]
    copy = api.get("/templates?search=copy 2").get_json()["data"][0]
    assert api.post(f"/templates/{copy['id']}/clone", json={}).get_json()["data"]["name"] == "Founders (copy 4)"
    named = api.post(f"/templates/{template['id']}/clone", json={"name": "  Founders DE "})
    assert named.status_code == 201 and named.get_json()["data"]["name"] == "Founders DE"


def test_a_long_name_still_fits(api):
    template = factories.template(api, steps=0, name="x" * 255)
    clone = api.post(f"/templates/{template['id']}/clone")
    assert clone.status_code == 201
    assert clone.get_json()["data"]["name"] == "x" * 240 + " (copy)"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": 7}, "name"), ({"title": "x"}, "title"), (["x"], None)],
)
def test_a_bad_body_is_a_400_and_copies_nothing(api, body, field):
    template = factories.template(api, steps=0)
    for path in (f"/templates/{template['id']}/clone", f"/instances/{factories.instance(api)['id']}/clone"):
        response = api.post(path, json=body)
        assert response.status_code == 400, response.get_json()
        error = response.get_json()
        assert error["success"] is False and error["error"] == "Validation Error"
        if field:
            assert error["details"][0]["field"] == field
    assert api.get("/templates?search=(copy)").get_json()["pagination"]["total"] == 0
    assert api.get("/instances?search=(copy)").get_json()["pagination"]["total"] == 0


def test_a_campaign_clone_is_a_new_draft_with_the_template_and_settings_and_no_contacts(app, api):
    source = factories.instance(api, settings={"daily_cap": 25, "track_opens": False}, status="paused", name="Q4")
    factories.enroll(api, source["id"], n=3)
    enrollment = api.get(f"/instances/{source['id']}/enrollments").get_json()["data"][0]
    stored = api.post(
        "/events/webhook",
        json={"events": [{"provider_event_id": "evt-1", "type": "opened", "enrollment_id": enrollment["id"]}]},
    )
    assert stored.get_json()["data"]["stored"] == 1

    response = api.post(f"/instances/{source['id']}/clone")
    assert response.status_code == 201, response.get_json()
    clone = response.get_json()["data"]
    assert clone == api.get(f"/instances/{clone['id']}").get_json()["data"]
    assert clone["name"] == "Q4 (copy)" and clone["status"] == "draft"
    assert (clone["template_id"], clone["settings"]) == (source["template_id"], source["settings"])
    assert clone["started_at"] is None and clone["paused_at"] is None and clone["completed_at"] is None
    with app.app_context():
        clone_id = uuid.UUID(clone["id"])
        for model in (CampaignEnrollment, CampaignEvent):
            assert _db.session.scalar(sa.select(sa.func.count()).where(model.instance_id == clone_id)) == 0
        delivered = sa.select(sa.func.count()).select_from(Delivery).join(CampaignEnrollment)
        assert _db.session.scalar(delivered.where(CampaignEnrollment.instance_id == clone_id)) == 0
        _db.session.remove()
    # The original keeps its contacts and status; the copy can be launched on its own.
    assert api.get(f"/instances/{source['id']}").get_json()["data"]["status"] == "paused"
    assert api.get(f"/instances/{source['id']}/enrollments").get_json()["pagination"]["total"] == 3
    assert api.patch(f"/instances/{clone['id']}", json={"status": "active"}).status_code == 200
    renamed = api.post(f"/instances/{source['id']}/clone", json={"name": "Q1"}).get_json()["data"]
    assert renamed["name"] == "Q1" and renamed["status"] == "draft"
    assert api.post(f"/instances/{source['id']}/clone").get_json()["data"]["name"] == "Q4 (copy 2)"


def test_a_campaign_whose_template_was_deactivated_is_not_cloned(api):
    source = factories.instance(api)
    api.put(f"/templates/{source['template_id']}", json={"is_active": False})
    response = api.post(f"/instances/{source['id']}/clone")
    assert response.status_code == 409
    assert "inactive" in response.get_json()["message"]


def test_a_teammate_clones_and_another_workspace_gets_a_404(api, teammate, outsider):
    instance = factories.instance(api)
    for path in (f"/templates/{instance['template_id']}/clone", f"/instances/{instance['id']}/clone"):
        assert api.as_(teammate).post(path).status_code == 201
        response = api.as_(outsider).post(path, json={"name": "Mine now"})
        assert response.status_code == 404 and response.get_json()["error"] == "Not Found"
        assert api.as_(None).post(path).status_code == 401
    assert api.as_(outsider).get("/templates").get_json()["pagination"]["total"] == 0
    assert api.as_(outsider).get("/instances").get_json()["pagination"]["total"] == 0


def test_the_openapi_document_says_the_body_is_optional(api):
    paths = api.get("/openapi.json").get_json()["paths"]
    for path in ("/api/campaigns/v2/templates/{template_id}/clone", "/api/campaigns/v2/instances/{instance_id}/clone"):
        operation = paths[path]["post"]
        assert operation["requestBody"]["required"] is False
        assert "201" in operation["responses"]


def test_a_launched_campaigns_clone_takes_its_own_steps_not_the_templates_new_ones(api):
    campaign = factories.instance(api, status="active")
    own = api.get(f"/instances/{campaign['id']}/steps").get_json()["data"]["steps"]
    template_step = api.get(f"/templates/{campaign['template_id']}").get_json()["data"]["steps"][0]
    edited = api.put(
        f"/templates/{campaign['template_id']}/sequences/email/{template_step['id']}", json={"subject": "Changed later"}
    )
    assert edited.status_code == 200, edited.get_json()
    clone = api.post(f"/instances/{campaign['id']}/clone", json={}).get_json()["data"]
    assert (clone["status"], clone["template_id"]) == ("draft", campaign["template_id"])
    steps = api.get(f"/instances/{clone['id']}/steps").get_json()["data"]
    assert [s["subject"] for s in steps["steps"]] == [s["subject"] for s in own]
    assert "Changed later" not in [s["subject"] for s in steps["steps"]]

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from tests import factories


@pytest.fixture
def campaign(api):
    """An active campaign with two email steps and three enrollments."""
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 3)
    enrollments = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]
    template = api.get(f"/templates/{instance['template_id']}").get_json()["data"]
    return {"instance": instance, "enrollments": enrollments, "steps": template["steps"]}


def event(enrollment_id, type_, n, **extra):
    return {
        "provider_event_id": f"evt-{n}",
        "type": type_,
        "enrollment_id": enrollment_id,
        "occurred_at": "2026-11-20T10:00:00Z",
        **extra,
    }


def test_it_stores_one_event_and_lists_it_on_the_enrollment(api, campaign):
    enrollment = campaign["enrollments"][0]
    response = api.post("/events/webhook", json=event(enrollment["id"], "delivered", 1, metadata={"smtp": "250"}))
    assert response.status_code == 200
    assert response.get_json()["data"] == {"received": 1, "stored": 1, "duplicates": 0, "skipped": []}
    events = api.get(f"/enrollments/{enrollment['id']}/events").get_json()["data"]
    assert [(e["type"], e["metadata"]) for e in events] == [("delivered", {"smtp": "250"})]


def test_a_batch_is_deduplicated_by_provider_event_id(api, campaign):
    ids = [e["id"] for e in campaign["enrollments"]]
    batch = {"events": [event(ids[0], "opened", 1), event(ids[1], "opened", 2), event(ids[1], "opened", 2)]}
    first = api.post("/events/webhook", json=batch).get_json()["data"]
    assert (first["stored"], first["duplicates"]) == (2, 1)
    again = api.post("/events/webhook", json=batch).get_json()["data"]
    assert (again["stored"], again["duplicates"]) == (0, 3)


def test_events_can_target_an_enrollment_by_email_and_instance(api, campaign):
    instance_id = campaign["instance"]["id"]
    body = {"provider_event_id": "x1", "type": "clicked", "email": "PERSON1@example.com", "instance_id": instance_id}
    assert api.post("/events/webhook", json=body).get_json()["data"]["stored"] == 1
    unknown = {**body, "provider_event_id": "x2", "email": "nobody@example.com"}
    skipped = api.post("/events/webhook", json=unknown).get_json()["data"]
    assert skipped["stored"] == 0 and skipped["skipped"][0]["index"] == 0


def test_a_reply_stops_the_enrollment(api, campaign):
    enrollment = campaign["enrollments"][0]
    api.post("/events/webhook", json=event(enrollment["id"], "replied", 1))
    updated = api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]
    assert updated["status"] == "replied"
    assert updated["next_action_at"] is None
    assert "replied" in updated["status_reason"]


def test_an_unsubscribe_suppresses_the_contact_in_every_campaign(api, campaign):
    enrollment = campaign["enrollments"][0]
    other = factories.instance(api, status="active")
    added = api.post(
        f"/instances/{other['id']}/enrollments",
        json={"contact_id": enrollment["contact_id"], "allow_other_campaigns": True},
    )
    assert added.status_code == 201, added.get_json()
    api.post("/events/webhook", json=event(enrollment["id"], "unsubscribed", 1))
    assert api.get(f"/contacts/{enrollment['contact_id']}").get_json()["data"]["status"] == "unsubscribed"
    statuses = {e["status"] for e in api.get(f"/instances/{other['id']}/enrollments").get_json()["data"]}
    assert statuses == {"unsubscribed"}
    # Suppressed contacts are never enrolled again.
    again = api.post(
        f"/instances/{other['id']}/enrollments/bulk", json={"contacts": [{"contact_id": enrollment["contact_id"]}]}
    ).get_json()["data"]
    assert again["suppressed"] == 1 and again["enrolled"] == 0


def test_a_hard_bounce_suppresses_but_a_soft_bounce_does_not(api, campaign):
    soft, hard = campaign["enrollments"][0], campaign["enrollments"][1]
    api.post(
        "/events/webhook",
        json={
            "events": [
                event(soft["id"], "bounced", 1, metadata={"bounce_type": "soft"}),
                event(hard["id"], "bounced", 2, metadata={"bounce_type": "hard"}),
            ]
        },
    )
    assert api.get(f"/enrollments/{soft['id']}").get_json()["data"]["status"] == "active"
    assert api.get(f"/enrollments/{hard['id']}").get_json()["data"]["status"] == "bounced"
    assert api.get(f"/contacts/{hard['contact_id']}").get_json()["data"]["status"] == "bounced"


def test_stop_rules_can_keep_a_replied_contact_in_the_sequence(api):
    template = factories.template(api, settings={"stop_on": ["bounce", "unsubscribe"]})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    api.post("/events/webhook", json=event(enrollment["id"], "replied", 1))
    assert api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]["status"] == "active"


def test_final_states_are_sticky_whatever_the_event_order(api, campaign):
    enrollment = campaign["enrollments"][0]
    api.post("/events/webhook", json=event(enrollment["id"], "unsubscribed", 1))
    api.post("/events/webhook", json=event(enrollment["id"], "replied", 2))
    assert api.get(f"/enrollments/{enrollment['id']}").get_json()["data"]["status"] == "unsubscribed"


def test_in_one_batch_the_earliest_stopping_event_decides(api, campaign):
    """A batch is not in time order: a reply at 09:00 sent after an unsubscribe at 11:00 still
    ends the enrollment as replied, and two suppressing events keep the contact's first."""
    first, second = campaign["enrollments"][0], campaign["enrollments"][1]
    at = {"9": "2026-11-20T09:00:00Z", "10": "2026-11-20T10:00:00Z", "11": "2026-11-20T11:00:00Z"}
    batch = [
        event(first["id"], "unsubscribed", 1, occurred_at=at["11"]),
        event(first["id"], "replied", 2, occurred_at=at["9"]),
        event(second["id"], "complained", 3, occurred_at=at["11"]),
        event(second["id"], "bounced", 4, occurred_at=at["10"], metadata={"bounce_type": "hard"}),
    ]
    assert api.post("/events/webhook", json={"events": batch}).get_json()["data"]["stored"] == 4
    assert api.get(f"/enrollments/{first['id']}").get_json()["data"]["status"] == "replied"
    assert api.get(f"/contacts/{first['contact_id']}").get_json()["data"]["status"] == "unsubscribed"
    assert api.get(f"/enrollments/{second['id']}").get_json()["data"]["status"] == "bounced"
    assert api.get(f"/contacts/{second['contact_id']}").get_json()["data"]["status"] == "bounced"


def test_a_step_from_another_campaign_is_refused(api, campaign):
    other = factories.template(api)
    response = api.post(
        "/events/webhook", json=event(campaign["enrollments"][0]["id"], "opened", 1, step_id=other["steps"][0]["id"])
    )
    assert response.get_json()["data"]["skipped"][0]["reason"].endswith("not part of this campaign")


def _signed(app_secret, body: bytes, *, timestamp=None, msg_id="msg_1"):
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(timestamp or time.time(), tz=UTC)
    signature = Webhook(app_secret).sign(msg_id, stamp, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


def _workspace_secret(app, owner):
    from webapp.extensions import db
    from webapp.models import Workspace

    with app.app_context():
        return db.session.get(Workspace, owner.workspace_id).webhook_secret


def test_signed_webhooks_are_accepted_without_an_api_key(app, client, owner, api, campaign):
    secret = _workspace_secret(app, owner)
    body = json.dumps(event(campaign["enrollments"][0]["id"], "delivered", 9)).encode()
    url = f"/api/campaigns/v2/events/webhook/{owner.workspace_id}"
    response = client.post(url, data=body, headers=_signed(secret, body))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["stored"] == 1


@pytest.mark.parametrize("tamper", ["body", "stale", "future", "wrong-secret", "missing"])
def test_bad_signatures_are_401_and_store_nothing(app, client, owner, api, campaign, tamper):
    secret = _workspace_secret(app, owner)
    body = json.dumps(event(campaign["enrollments"][0]["id"], "unsubscribed", 9)).encode()
    headers = _signed(secret, body)
    if tamper == "body":
        body = body.replace(b"unsubscribed", b"replied")
    elif tamper == "stale":
        headers = _signed(secret, body, timestamp=time.time() - 3600)
    elif tamper == "future":
        headers = _signed(secret, body, timestamp=time.time() + 3600)
    elif tamper == "wrong-secret":
        headers = _signed("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", body)
    else:
        headers = {"Content-Type": "application/json"}
    response = client.post(f"/api/campaigns/v2/events/webhook/{owner.workspace_id}", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["success"] is False
    enrollment = api.get(f"/enrollments/{campaign['enrollments'][0]['id']}").get_json()["data"]
    assert enrollment["status"] == "active"


def test_a_signature_is_checked_on_the_raw_body(app, client, owner, api, campaign):
    secret = _workspace_secret(app, owner)
    payload = event(campaign["enrollments"][0]["id"], "delivered", 9)
    headers = _signed(secret, json.dumps(payload).encode())
    reserialized = json.dumps(payload, indent=2).encode()  # same JSON, other bytes
    response = client.post(f"/api/campaigns/v2/events/webhook/{owner.workspace_id}", data=reserialized, headers=headers)
    assert response.status_code == 401

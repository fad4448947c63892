"""Mailgun webhooks: HMAC-SHA256 of timestamp + token inside the body, one event per request.

Payloads follow Mailgun's documented webhook samples (`signature` + `event-data`, Message-ID
without angle brackets in `event-data.message.headers`).
"""

import hashlib
import hmac
import json
import secrets
import time
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import ApiClient
from tests.webhooks.helpers import add_deliveries, status_of, totals
from webapp.extensions import db
from webapp.models import Delivery
from webapp.webhooks import routes

SIGNING_KEY = "6f2b1c9d0e8a47f5b3c2d1e0f9a8b7c6-2ac825a1-8b1ec4d2"


def event_data(kind: str, sent, **fields) -> dict:
    """`event-data` shaped like Mailgun's documented samples."""
    return {
        "event": kind,
        "timestamp": 1529006854.329574,
        "id": fields.pop("id", secrets.token_urlsafe(16)),
        "log-level": "info",
        "recipient": sent.email,
        "recipient-domain": sent.email.partition("@")[2],
        "tags": ["my_tag_1", "my_tag_2"],
        "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1"},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        "envelope": {"transport": "smtp", "sender": "bob@mg.drumbeat.test", "targets": sent.email},
        "message": {
            "headers": {
                "to": f"Alice <{sent.email}>",
                "message-id": sent.message_id.strip("<>"),
                "from": "Bob <bob@mg.drumbeat.test>",
                "subject": "Step 1",
            },
            "attachments": [],
            "size": 111,
        },
        **fields,
    }


def delivered_status() -> dict:
    return {
        "tls": True,
        "mx-host": "smtp-in.example.com",
        "code": 250,
        "description": "",
        "session-seconds": 0.4331989288330078,
        "utf8": True,
        "attempt-no": 1,
        "message": "OK",
        "certificate-verified": True,
    }


def signature(*, key: str = SIGNING_KEY, timestamp: int | None = None, token: str | None = None) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def post(client, workspace_id, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/webhooks/mailgun/{workspace_id}", data=data, content_type="application/json")


def post_event(client, workspace_id, data: dict, **signed):
    return post(client, workspace_id, {"signature": signature(**signed), "event-data": data})


@pytest.fixture
def configured(configure):
    configure("mailgun", {"signing_key": SIGNING_KEY})


def test_signed_events_are_stored_and_applied(client, api, campaign, configured, stored):
    first, second, third = campaign["sent"]
    workspace_id = api.persona.workspace_id
    posts = [
        event_data("delivered", first, **{"delivery-status": delivered_status()}),
        event_data("opened", first, ip="50.56.129.169", **{"client-info": {"client-name": "Chrome"}}),
        event_data("clicked", first, url="https://drumbeat.test/pricing", ip="50.56.129.169"),
        event_data(
            "failed",
            second,
            severity="permanent",
            reason="bounce",
            **{
                "delivery-status": {
                    "attempt-no": 1,
                    "code": 550,
                    "message": "5.1.1 The email account that you tried to reach does not exist.",
                    "description": "",
                }
            },
        ),
        event_data("complained", third),
    ]

    answers = [post_event(client, workspace_id, data) for data in posts]

    assert [a.status_code for a in answers] == [200] * 5
    assert answers[0].get_json() == {
        "success": True,
        "data": {"received": 1, "stored": 1, "duplicates": 0, "skipped": 0, "ignored": 0},
    }
    assert sorted(t for _, t, _ in stored("mailgun")) == ["bounced", "clicked", "complained", "delivered", "opened"]
    assert status_of(api, first) == ("active", "subscribed")
    assert status_of(api, second) == ("bounced", "bounced")
    assert status_of(api, third) == ("unsubscribed", "complained")
    counts = totals(api, campaign["instance"]["id"])
    assert (counts["delivered"], counts["opened"], counts["clicked"], counts["bounced"]) == (1, 1, 1, 1)


def test_a_temporary_failure_is_a_soft_bounce(client, api, campaign, configured):
    sent = campaign["sent"][0]
    failed = event_data("failed", sent, severity="temporary", reason="generic")

    assert post_event(client, api.persona.workspace_id, failed).get_json()["data"]["stored"] == 1
    [event] = api.get(f"/enrollments/{sent.enrollment_id}/events").get_json()["data"]
    assert (event["type"], event["metadata"]["bounce_type"]) == ("bounced", "soft")
    assert status_of(api, sent) == ("active", "subscribed")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("suppress-unsubscribe", ("unsubscribed", "unsubscribed")),
        ("suppress-complaint", ("unsubscribed", "complained")),
    ],
)
def test_a_drop_to_a_suppressed_address_carries_the_reason(client, api, campaign, configured, reason, expected):
    sent = campaign["sent"][0]
    post_event(client, api.persona.workspace_id, event_data("failed", sent, severity="permanent", reason=reason))
    assert status_of(api, sent) == expected


def test_a_user_variable_names_the_delivery(client, api, campaign, configured, stored):
    sent = campaign["sent"][1]
    data = event_data("opened", sent, **{"user-variables": {"drumbeat_delivery_id": sent.delivery_id}})
    data["message"]["headers"]["message-id"] = "20130503182626.18666.16540@sandbox.mailgun.org"

    assert post_event(client, api.persona.workspace_id, data).get_json()["data"]["stored"] == 1


def test_the_same_event_posted_twice_is_stored_once(client, api, campaign, configured, stored):
    data = event_data("opened", campaign["sent"][0], id="DACSsAdVSeGpLid7TN03WA")
    body = {"signature": signature(), "event-data": data}

    first = post(client, api.persona.workspace_id, body).get_json()["data"]
    replayed = post(client, api.persona.workspace_id, body).get_json()["data"]
    retried = post_event(client, api.persona.workspace_id, data).get_json()["data"]

    assert first["stored"] == 1
    assert (replayed["stored"], replayed["duplicates"]) == (0, 1)
    assert (retried["stored"], retried["duplicates"]) == (0, 1)
    assert len(stored()) == 1


@pytest.mark.parametrize("kind", ["accepted", "rejected", "stored", "list_member_uploaded"])
def test_untracked_event_types_are_accepted_and_ignored(client, api, campaign, configured, stored, kind):
    response = post_event(client, api.persona.workspace_id, event_data(kind, campaign["sent"][0]))

    assert response.status_code == 200
    assert response.get_json()["data"]["ignored"] == 1
    assert stored() == []


def test_an_event_for_another_workspaces_message_is_skipped(app, client, api, campaign, configured, outsider, stored):
    _, theirs = add_deliveries(app, ApiClient(client, outsider), outsider.workspace_id, n=1, domain="globex.test")
    data = event_data("complained", theirs[0], **{"user-variables": {"drumbeat_delivery_id": theirs[0].delivery_id}})

    response = post_event(client, api.persona.workspace_id, data)

    assert response.status_code == 200
    assert response.get_json()["data"]["skipped"] == 1
    assert stored() == []
    assert status_of(ApiClient(client, outsider), theirs[0]) == ("active", "subscribed")


def test_a_subaccount_event_verifies_with_the_parent_signature(client, api, campaign, configured, stored):
    parent = signature()
    own = signature(key="the-subaccount-key", timestamp=int(parent["timestamp"]), token=parent["token"])
    body = {
        "signature": {**own, "parent-signature": parent["signature"]},
        "event-data": event_data("delivered", campaign["sent"][0]),
    }

    assert post(client, api.persona.workspace_id, body).status_code == 200
    assert len(stored()) == 1


def signed_complaint(campaign, **signed) -> dict:
    return {"signature": signature(**signed), "event-data": event_data("complained", campaign["sent"][0])}


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda c: signed_complaint(c, key="not-the-signing-key"), id="wrong key"),
        pytest.param(lambda c: signed_complaint(c, timestamp=int(time.time()) - 3600), id="stale timestamp"),
        pytest.param(lambda c: signed_complaint(c, timestamp=int(time.time()) + 3600), id="future timestamp"),
        pytest.param(
            lambda c: {
                **signed_complaint(c),
                "signature": {**signed_complaint(c)["signature"], "token": "another-token"},
            },
            id="tampered",
        ),
        pytest.param(lambda c: {"event-data": signed_complaint(c)["event-data"]}, id="no signature"),
        pytest.param(
            lambda c: {**signed_complaint(c), "signature": {"timestamp": "1", "token": "t"}}, id="signature missing"
        ),
        pytest.param(lambda c: b"timestamp=1&token=t&signature=s", id="form body"),
        pytest.param(lambda c: b"[" * 5000, id="deeply nested"),
    ],
)
def test_a_request_that_does_not_verify_is_refused_with_406(client, api, campaign, configured, stored, make_body):
    response = post(client, api.persona.workspace_id, make_body(campaign))

    assert response.status_code == 406
    assert response.get_json()["statusCode"] == 406
    assert stored() == []
    assert status_of(api, campaign["sent"][0]) == ("active", "subscribed")


def test_an_unknown_workspace_is_406_and_one_without_a_key_is_401(client, api, campaign, stored):
    unconfigured = post(client, api.persona.workspace_id, signed_complaint(campaign))
    unknown = post(client, uuid.uuid4(), signed_complaint(campaign))

    # No key yet: a refusal Mailgun retries (for about 8 hours) while the key is being saved.
    assert unconfigured.status_code == 401
    assert unknown.status_code == 406
    assert stored() == []


def test_malformed_event_data_behind_a_valid_signature_is_refused_for_good(client, api, configured, stored):
    for data in ("not an object", {"event": "delivered", "timestamp": 1529006854.3}):
        response = post(client, api.persona.workspace_id, {"signature": signature(), "event-data": data})
        assert response.status_code == 406
    assert stored() == []


def test_the_signature_does_not_cover_the_event_data(client, api, campaign, configured, stored):
    """Mailgun signs timestamp + token only: a re-serialized body verifies. Replays are limited by
    the timestamp window and the event-id deduplication (no token cache yet)."""
    body = json.dumps(signed_complaint(campaign), indent=2).encode()

    assert post(client, api.persona.workspace_id, body).status_code == 200


def test_a_database_outage_is_a_503_that_mailgun_retries_never_a_406(client, api, campaign, configured, monkeypatch):
    def unavailable(*args, **kwargs):
        raise OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(routes, "ingest_provider_events", unavailable)

    response = post_event(client, api.persona.workspace_id, event_data("delivered", campaign["sent"][0]))

    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_a_delivery_whose_outcome_was_unknown_is_found_by_the_id_in_our_message_id(
    app, client, api, campaign, configured, stored
):
    """A crash between SMTP and recording leaves no stored Message-ID; ours embeds the delivery id."""
    sent = campaign["sent"][0]
    with app.app_context():
        delivery = db.session.get(Delivery, uuid.UUID(sent.delivery_id))
        delivery.status, delivery.message_id = "unknown", None
        db.session.commit()

    response = post_event(client, api.persona.workspace_id, event_data("delivered", sent))

    assert response.get_json()["data"]["stored"] == 1

"""SendGrid's Signed Event Webhook: ECDSA over timestamp + raw body, a JSON array of events.

Payloads follow SendGrid's documented sample events (Event Webhook reference); the signature
test vector is the one published in SendGrid's own SDK (sendgrid-python, test_eventwebhook.py).
"""

import base64
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import ApiClient
from tests.webhooks.helpers import add_deliveries, status_of, totals
from webapp.webhooks import sendgrid
from webapp.webhooks.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())

# SendGrid's SDK test vector: the exact bytes SendGrid signed, trailing CRLF included.
VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNE"
    "c6wEA3F+g=="
)
VECTOR_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
VECTOR_TIMESTAMP = "1600112502"
VECTOR_EVENTS = [
    {
        "email": "hello@world.com",
        "event": "dropped",
        "reason": "Bounced Address",
        "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
        "timestamp": 1600112492,
    }
]
VECTOR_BODY = (json.dumps(VECTOR_EVENTS, sort_keys=True, separators=(",", ":")) + "\r\n").encode()

# Events that name the message by smtp-id; engagement events carry only our custom argument.
SMTP_ID_EVENTS = {"processed", "deferred", "delivered", "bounce", "dropped"}


def public_key(private_key) -> str:
    der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sg_event(kind: str, sent, n: int, **fields) -> dict:
    """One event shaped like SendGrid's documented samples."""
    event = {
        "email": sent.email,
        "timestamp": 1513299569,
        "event": kind,
        "category": "cat facts",
        "sg_event_id": f"sg_event_id-{kind}-{n}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    if kind in SMTP_ID_EVENTS:
        event["smtp-id"] = sent.message_id
    else:
        event["drumbeat_delivery_id"] = sent.delivery_id
    return {**event, **fields}


def signed_headers(body: bytes, *, key=KEY, timestamp: str | None = None) -> dict:
    timestamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sendgrid.sign(key, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
    }


def post(client, workspace_id, body: bytes, headers: dict):
    return client.post(f"/webhooks/sendgrid/{workspace_id}", data=body, headers=headers)


def post_events(client, workspace_id, events: list, **kw):
    body = json.dumps(events).encode()
    return post(client, workspace_id, body, signed_headers(body, **kw))


@pytest.fixture
def configured(configure):
    configure("sendgrid", {"public_key": public_key(KEY)})


def test_sendgrids_own_test_vector_verifies_and_a_reserialized_copy_does_not(client, owner, configure, stored):
    configure("sendgrid", {"public_key": VECTOR_KEY})
    headers = {SIGNATURE_HEADER: VECTOR_SIGNATURE, TIMESTAMP_HEADER: VECTOR_TIMESTAMP}

    accepted = post(client, owner.workspace_id, VECTOR_BODY, headers)

    assert accepted.status_code == 200, accepted.get_json()
    # A real SendGrid message, not one of ours: verified, then skipped.
    assert accepted.get_json() == {
        "success": True,
        "data": {"received": 1, "stored": 0, "duplicates": 0, "skipped": 1, "ignored": 0},
    }
    reserialized = json.dumps(json.loads(VECTOR_BODY)).encode() + b"\r\n"
    refused = post(client, owner.workspace_id, reserialized, headers)
    assert refused.status_code == 401
    assert refused.get_json()["success"] is False


def test_a_signed_batch_is_stored_and_applied(client, api, campaign, configured, stored):
    first, second, third = campaign["sent"]
    events = [
        sg_event("processed", first, 1, pool={"name": "new_MY_test", "id": 210}),
        sg_event("deferred", first, 2, response="400 try again later", attempt="5"),
        sg_event("delivered", first, 3, response="250 OK"),
        sg_event("open", first, 4, useragent="Mozilla/4.0 (compatible; MSIE 6.1; Windows XP)", ip="255.255.255.255"),
        sg_event("open", first, 5, useragent="Mozilla/4.0", ip="255.255.255.255"),
        sg_event("click", first, 6, url="http://www.sendgrid.com/", url_offset={"index": 0, "type": "html"}),
        sg_event("bounce", second, 7, reason="500 unknown recipient", status="5.0.0", type="bounce"),
        sg_event("spamreport", third, 8),
        sg_event("some_future_event", first, 9),
    ]

    response = post_events(client, api.persona.workspace_id, events)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {"received": 9, "stored": 6, "duplicates": 0, "skipped": 0, "ignored": 3}
    assert sorted(type_ for _, type_, _ in stored("sendgrid")) == [
        "bounced",
        "clicked",
        "complained",
        "delivered",
        "opened",
        "opened",
    ]
    assert status_of(api, first) == ("active", "subscribed")
    assert status_of(api, second) == ("bounced", "bounced")
    assert status_of(api, third) == ("unsubscribed", "complained")
    counts = totals(api, campaign["instance"]["id"])
    assert (counts["delivered"], counts["opened"], counts["clicked"], counts["bounced"]) == (1, 1, 1, 1)


def test_events_keep_sendgrids_details_and_the_event_time(api, client, campaign, configured):
    sent = campaign["sent"][0]
    bounce = sg_event("bounce", sent, 1, reason="500 unknown recipient", status="5.0.0", type="bounce")

    post_events(client, api.persona.workspace_id, [bounce])

    [event] = api.get(f"/enrollments/{sent.enrollment_id}/events").get_json()["data"]
    assert event["provider"] == "sendgrid"
    assert event["occurred_at"].startswith("2017-12-15T00:59:29")
    assert event["step_id"] == sent.step_id
    assert event["metadata"]["bounce_type"] == "hard"
    assert event["metadata"]["reason"] == "500 unknown recipient"
    assert event["metadata"]["message_id"] == sent.message_id
    assert "email" not in event["metadata"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event": "bounce", "type": "blocked"}, ("bounced", "soft")),
        ({"event": "bounce", "type": "bounce"}, ("bounced", "hard")),
        ({"event": "dropped", "reason": "Bounced Address"}, ("bounced", "hard")),
        ({"event": "dropped", "reason": "Spam Content (if spam checker app enabled)"}, ("bounced", "soft")),
        ({"event": "dropped", "reason": "Unsubscribed Address"}, ("unsubscribed", None)),
        ({"event": "dropped", "reason": "Spam Reporting Address"}, ("complained", None)),
        ({"event": "group_unsubscribe", "asm_group_id": 10}, ("unsubscribed", None)),
        ({"event": "unsubscribe"}, ("unsubscribed", None)),
    ],
)
def test_it_maps_sendgrid_events(fields, expected):
    [event] = sendgrid.parse([{"sg_event_id": "e1", "timestamp": 1513299569, **fields}]).events
    assert (event.type, event.metadata.get("bounce_type")) == expected


@pytest.mark.parametrize("kind", ["processed", "deferred", "group_resubscribe", "machine_learning_v9"])
def test_untracked_event_types_are_accepted_and_ignored(client, api, campaign, configured, stored, kind):
    response = post_events(client, api.persona.workspace_id, [sg_event(kind, campaign["sent"][0], 1)])

    assert response.status_code == 200
    assert response.get_json()["data"]["ignored"] == 1
    assert stored() == []


def test_a_blocked_bounce_is_soft_and_suppresses_nobody(client, api, campaign, configured):
    sent = campaign["sent"][0]
    blocked = sg_event("bounce", sent, 1, reason="550 blocked", status="5.7.1", type="blocked")

    assert post_events(client, api.persona.workspace_id, [blocked]).get_json()["data"]["stored"] == 1
    assert status_of(api, sent) == ("active", "subscribed")


def test_the_same_batch_posted_twice_is_stored_once(client, api, campaign, configured, stored):
    sent = campaign["sent"][0]
    events = [sg_event("delivered", sent, 1), sg_event("open", sent, 2), sg_event("open", sent, 2)]

    first = post_events(client, api.persona.workspace_id, events).get_json()["data"]
    again = post_events(client, api.persona.workspace_id, events).get_json()["data"]

    assert (first["stored"], first["duplicates"]) == (2, 1)
    assert (again["stored"], again["duplicates"]) == (0, 3)
    assert len(stored()) == 2


def test_an_event_for_another_workspaces_message_is_skipped(app, client, api, campaign, configured, outsider, stored):
    _, theirs = add_deliveries(app, ApiClient(client, outsider), outsider.workspace_id, n=1, domain="globex.test")
    events = [sg_event("delivered", theirs[0], 1), sg_event("spamreport", theirs[0], 2)]

    response = post_events(client, api.persona.workspace_id, events)

    assert response.status_code == 200
    assert response.get_json()["data"] == {"received": 2, "stored": 0, "duplicates": 0, "skipped": 2, "ignored": 0}
    assert stored() == []


def test_a_message_id_that_matches_no_delivery_is_skipped(client, api, campaign, configured, stored):
    stranger = sg_event("delivered", campaign["sent"][0], 1, **{"smtp-id": f"<{uuid.uuid4()}@elsewhere.test>"})

    assert post_events(client, api.persona.workspace_id, [stranger]).get_json()["data"]["skipped"] == 1
    assert stored() == []


def signed_batch(campaign) -> bytes:
    return json.dumps([sg_event("spamreport", campaign["sent"][0], 1)]).encode()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, h: (body.replace(b"spamreport", b"delivered"), h), id="tampered body"),
        pytest.param(lambda body, h: (json.dumps(json.loads(body), indent=2).encode(), h), id="re-serialized body"),
        pytest.param(lambda body, h: (body, signed_headers(body, key=OTHER_KEY)), id="wrong key"),
        pytest.param(lambda body, h: (body, {**h, TIMESTAMP_HEADER: str(int(time.time()) + 1)}), id="other timestamp"),
        pytest.param(lambda body, h: (body, {k: v for k, v in h.items() if k != SIGNATURE_HEADER}), id="no signature"),
        pytest.param(lambda body, h: (body, {k: v for k, v in h.items() if k != TIMESTAMP_HEADER}), id="no timestamp"),
        pytest.param(lambda body, h: (body, {**h, SIGNATURE_HEADER: "not base64!"}), id="garbage signature"),
        pytest.param(lambda body, h: (body, {**h, TIMESTAMP_HEADER: "12ab"}), id="garbage timestamp"),
    ],
)
def test_a_request_that_does_not_verify_is_refused_and_changes_nothing(
    client, api, campaign, configured, stored, tamper
):
    body = signed_batch(campaign)
    body, headers = tamper(body, signed_headers(body))

    response = post(client, api.persona.workspace_id, body, headers)

    assert response.status_code == 401
    assert response.get_json()["statusCode"] == 401
    assert stored() == []
    assert status_of(api, campaign["sent"][0]) == ("active", "subscribed")


def test_an_unknown_or_unconfigured_workspace_is_refused(client, api, campaign, stored):
    body = signed_batch(campaign)

    unconfigured = post(client, api.persona.workspace_id, body, signed_headers(body))
    unknown = post(client, uuid.uuid4(), body, signed_headers(body))

    assert (unconfigured.status_code, unknown.status_code) == (401, 401)
    assert unconfigured.get_json()["message"] == unknown.get_json()["message"]
    assert stored() == []


def test_a_signed_payload_that_is_not_an_array_is_a_400(client, api, configured, stored):
    for body in (b'{"event": "open"}', b"[not json"):
        response = post(client, api.persona.workspace_id, body, signed_headers(body))
        assert response.status_code == 400
        assert response.get_json()["success"] is False
    assert stored() == []


def test_events_without_an_event_id_are_skipped_not_fatal(client, api, campaign, configured, stored):
    sent = campaign["sent"][0]
    events = [{**sg_event("delivered", sent, 1), "sg_event_id": None}, "not an event", sg_event("open", sent, 2)]

    data = post_events(client, api.persona.workspace_id, events).get_json()["data"]

    assert (data["received"], data["stored"], data["skipped"]) == (3, 1, 2)


def test_the_routes_need_no_csrf_token_and_answer_json_errors(client, owner):
    response = client.post(f"/webhooks/sendgrid/{owner.workspace_id}", data=b"[]")
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert client.get(f"/webhooks/sendgrid/{owner.workspace_id}").status_code == 405
    assert client.post("/webhooks/sendgrid/not-a-uuid", data=b"[]").get_json()["statusCode"] == 404


def test_an_old_signed_timestamp_is_accepted_and_a_replay_stores_nothing(client, api, campaign, configured, stored):
    """SendGrid retries for up to 24 hours and documents no window: dedupe, not the clock, stops replays."""
    body = json.dumps([sg_event("spamreport", campaign["sent"][0], 1)]).encode()
    headers = signed_headers(body, timestamp=str(int(time.time()) - 2 * 86400))

    first = post(client, api.persona.workspace_id, body, headers).get_json()["data"]
    replay = post(client, api.persona.workspace_id, body, headers).get_json()["data"]

    assert (first["stored"], replay["stored"], replay["duplicates"]) == (1, 0, 1)


def test_a_late_delivered_after_a_bounce_does_not_revive_the_contact(client, api, campaign, configured):
    sent = campaign["sent"][0]
    events = [
        sg_event("bounce", sent, 1, type="bounce", timestamp=1513299569),
        sg_event("delivered", sent, 2, timestamp=1513299600),
    ]

    post_events(client, api.persona.workspace_id, events[:1])
    post_events(client, api.persona.workspace_id, events[1:])

    assert status_of(api, sent) == ("bounced", "bounced")

"""Postmark webhooks: one record per request, authenticated by HTTP basic auth only.

Payloads follow Postmark's documented webhook samples (Delivery, Bounce, SpamComplaint, Open,
Click, SubscriptionChange); our delivery id travels as `Metadata` (X-PM-Metadata-* header).
"""

import base64
import json
import uuid

import pytest

from tests.conftest import ApiClient
from tests.webhooks.helpers import add_deliveries, status_of, totals

USERNAME = "postmark-hooks"
PASSWORD = "s3cret-long-enough-for-basic-auth"
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def basic(username: str = USERNAME, password: str = PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def record(record_type: str, sent, **fields) -> dict:
    """A record shaped like Postmark's documented samples, carrying our delivery id as metadata."""
    base = {
        "RecordType": record_type,
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": fields.pop("MessageID", POSTMARK_ID),
        "Tag": "welcome-email",
        "Metadata": {"drumbeat_delivery_id": sent.delivery_id, "a_key": "a_value"},
    }
    if record_type == "Delivery":
        base |= {
            "Recipient": sent.email,
            "DeliveredAt": "2019-11-05T16:33:54.9070259Z",
            "Details": "Test delivery webhook details",
        }
    elif record_type in ("Bounce", "SpamComplaint"):
        base |= {
            "ID": 4323372036854775807,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "Test bounce details",
            "Email": sent.email,
            "From": "sender@drumbeat.test",
            "BouncedAt": "2019-11-05T16:33:54.9070259Z",
            "DumpAvailable": True,
            "Inactive": True,
            "CanActivate": True,
            "Subject": "Test subject",
            "Content": "<Full dump of bounce>" * 1000,
        }
    elif record_type in ("Open", "Click"):
        base |= {
            "Recipient": sent.email,
            "ReceivedAt": "2019-11-05T16:33:54.9070259Z",
            "Platform": "WebMail",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36",
            "OS": {"Name": "OS X 10.7 Lion", "Family": "OS X 10", "Company": "Apple Computer, Inc."},
            "Client": {"Name": "Chrome 35.0.1916.153", "Family": "Chrome", "Company": "Google"},
            "Geo": {"CountryISOCode": "RS", "Country": "Serbia", "City": "Novi Sad", "IP": "188.2.95.4"},
        }
        if record_type == "Open":
            base |= {"FirstOpen": True, "ReadSeconds": 5}
        else:
            base |= {"ClickLocation": "HTML", "OriginalLink": "https://example.com"}
    elif record_type == "SubscriptionChange":
        base |= {
            "ChangedAt": "2020-02-01T10:53:34.416071Z",
            "Recipient": sent.email,
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        }
    return {**base, **fields}


def post(client, workspace_id, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = basic() if headers is None else headers
    return client.post(
        f"/webhooks/postmark/{workspace_id}", data=data, content_type="application/json", headers=headers
    )


@pytest.fixture
def configured(configure):
    configure("postmark", {"username": USERNAME, "password": PASSWORD})


def test_records_are_stored_and_applied(client, api, campaign, configured, stored):
    first, second, third = campaign["sent"]
    workspace_id = api.persona.workspace_id
    records = [
        record("Delivery", first),
        record("Open", first),
        record("Click", first),
        record("Bounce", second),
        record(
            "SpamComplaint",
            third,
            Type="SpamComplaint",
            TypeCode=100001,
            Name="Spam complaint",
            Description="The subscriber explicitly marked this message as spam.",
        ),
    ]

    answers = [post(client, workspace_id, r) for r in records]

    assert [a.status_code for a in answers] == [200] * 5
    assert answers[0].get_json() == {
        "success": True,
        "data": {"received": 1, "stored": 1, "duplicates": 0, "skipped": 0, "ignored": 0},
    }
    assert sorted(t for _, t, _ in stored("postmark")) == ["bounced", "clicked", "complained", "delivered", "opened"]
    assert status_of(api, first) == ("active", "subscribed")
    assert status_of(api, second) == ("bounced", "bounced")
    assert status_of(api, third) == ("unsubscribed", "complained")
    counts = totals(api, campaign["instance"]["id"])
    assert (counts["delivered"], counts["opened"], counts["clicked"], counts["bounced"]) == (1, 1, 1, 1)


def test_the_event_id_is_built_from_message_id_record_type_and_time(client, api, campaign, configured, stored):
    post(client, api.persona.workspace_id, record("Delivery", campaign["sent"][0]))

    assert stored() == [("postmark", "delivered", f"{POSTMARK_ID}:Delivery:2019-11-05T16:33:54.9070259Z")]
    [event] = api.get(f"/enrollments/{campaign['sent'][0].enrollment_id}/events").get_json()["data"]
    assert event["occurred_at"].startswith("2019-11-05T16:33:54.907025")
    assert event["metadata"]["postmark_message_id"] == POSTMARK_ID


def test_the_same_record_posted_twice_is_stored_once(client, api, campaign, configured, stored):
    open_ = record("Open", campaign["sent"][0])

    first = post(client, api.persona.workspace_id, open_).get_json()["data"]
    again = post(client, api.persona.workspace_id, open_).get_json()["data"]
    later = post(client, api.persona.workspace_id, {**open_, "ReceivedAt": "2019-11-06T08:00:00Z"}).get_json()["data"]

    assert (first["stored"], again["duplicates"], later["stored"]) == (1, 1, 1)
    assert len(stored()) == 2
    assert totals(api, campaign["instance"]["id"])["opened"] == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"Type": "SoftBounce", "TypeCode": 4096, "Inactive": False}, ("active", "subscribed", 1)),
        ({"Type": "Transient", "TypeCode": 2, "Inactive": False}, ("active", "subscribed", 1)),
        ({"Type": "BadEmailAddress", "TypeCode": 100000}, ("bounced", "bounced", 1)),
        ({"Type": "Blocked", "TypeCode": 100006, "Inactive": True}, ("bounced", "bounced", 1)),
        ({"Type": "AutoResponder", "TypeCode": 64, "Inactive": False}, ("active", "subscribed", 0)),
        ({"Type": "Unsubscribe", "TypeCode": 16}, ("unsubscribed", "unsubscribed", 1)),
    ],
)
def test_bounce_types_map_to_hard_soft_or_nothing(client, api, campaign, configured, stored, fields, expected):
    sent = campaign["sent"][0]
    post(client, api.persona.workspace_id, record("Bounce", sent, **fields))
    assert (*status_of(api, sent), len(stored())) == expected


def test_a_manual_suppression_unsubscribes_and_a_bounce_suppression_is_not_counted_twice(
    client, api, campaign, configured, stored
):
    first, second = campaign["sent"][:2]
    hard = record("SubscriptionChange", second, SuppressionReason="HardBounce")
    reactivated = record("SubscriptionChange", second, SuppressSending=False, ChangedAt="2020-02-02T00:00:00Z")

    post(client, api.persona.workspace_id, record("SubscriptionChange", first))
    ignored = [post(client, api.persona.workspace_id, r).get_json()["data"]["ignored"] for r in (hard, reactivated)]

    assert status_of(api, first) == ("unsubscribed", "unsubscribed")
    assert ignored == [1, 1]
    assert [t for _, t, _ in stored()] == ["unsubscribed"]


def test_our_message_id_in_the_headers_or_metadata_finds_the_delivery(client, api, campaign, configured, stored):
    first, second = campaign["sent"][:2]
    by_header = record("Delivery", first, Metadata={}, Headers=[{"Name": "Message-ID", "Value": first.message_id}])
    by_metadata = record(
        "Delivery", second, MessageID=str(uuid.uuid4()), Metadata={"drumbeat_message_id": second.message_id}
    )

    answers = [post(client, api.persona.workspace_id, r).get_json()["data"] for r in (by_header, by_metadata)]

    assert [a["stored"] for a in answers] == [1, 1]


@pytest.mark.parametrize("record_type", ["Inbound", "SMTPApiError", "SomethingNew"])
def test_unknown_record_types_are_accepted_and_ignored(client, api, campaign, configured, stored, record_type):
    response = post(client, api.persona.workspace_id, record(record_type, campaign["sent"][0]))

    assert response.status_code == 200
    assert response.get_json()["data"]["ignored"] == 1
    assert stored() == []


def test_a_record_for_another_workspaces_message_is_skipped(app, client, api, campaign, configured, outsider, stored):
    _, theirs = add_deliveries(app, ApiClient(client, outsider), outsider.workspace_id, n=1, domain="globex.test")

    response = post(client, api.persona.workspace_id, record("SpamComplaint", theirs[0], Type="SpamComplaint"))

    assert response.status_code == 200
    assert response.get_json()["data"]["skipped"] == 1
    assert stored() == []


def test_a_record_without_our_ids_is_skipped(client, api, campaign, configured, stored):
    response = post(client, api.persona.workspace_id, record("Delivery", campaign["sent"][0], Metadata={}))

    assert response.get_json()["data"] == {"received": 1, "stored": 0, "duplicates": 0, "skipped": 1, "ignored": 0}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(basic(password="wrong-password-but-long-enough"), id="wrong password"),
        pytest.param(basic(username="someone-else"), id="wrong username"),
        pytest.param(basic(password=PASSWORD[:-1]), id="password prefix"),
        pytest.param({}, id="no credentials"),
        pytest.param({"Authorization": "Bearer " + PASSWORD}, id="not basic"),
        pytest.param({"Authorization": "Basic %%%"}, id="garbage"),
    ],
)
def test_wrong_credentials_are_refused_and_change_nothing(client, api, campaign, configured, stored, headers):
    response = post(client, api.persona.workspace_id, record("Bounce", campaign["sent"][0]), headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.get_json()["statusCode"] == 401
    assert stored() == []
    assert status_of(api, campaign["sent"][0]) == ("active", "subscribed")


def test_an_unknown_or_unconfigured_workspace_is_refused(client, api, campaign, stored):
    body = record("Bounce", campaign["sent"][0])

    unconfigured = post(client, api.persona.workspace_id, body)
    unknown = post(client, uuid.uuid4(), body)

    assert (unconfigured.status_code, unknown.status_code) == (401, 401)
    assert stored() == []


def test_credentials_of_another_workspace_do_not_open_this_one(client, api, campaign, configure, outsider, stored):
    configure("postmark", {"username": USERNAME, "password": PASSWORD}, persona=outsider)
    configure("postmark", {"username": USERNAME, "password": "a-different-password-entirely"})

    response = post(client, api.persona.workspace_id, record("Bounce", campaign["sent"][0]))

    assert response.status_code == 401
    assert stored() == []


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"{not json", json.dumps({"MessageID": POSTMARK_ID}).encode(), b""],
)
def test_a_malformed_record_behind_valid_credentials_is_a_400(client, api, configured, stored, body):
    response = post(client, api.persona.workspace_id, body)

    assert response.status_code == 400
    assert stored() == []


def test_a_tracked_record_without_a_message_id_is_a_400(client, api, campaign, configured):
    response = post(client, api.persona.workspace_id, record("Delivery", campaign["sent"][0], MessageID=None))
    assert response.status_code == 400

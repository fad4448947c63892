"""POST /instances/:id/test-send: a step rendered for a contact, sent through the real SMTP path
(an aiosmtpd sink), marked as a test and counted nowhere."""

import email
import uuid
from email import policy

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import make_config
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignEvent, Delivery, OutboxMessage


@pytest.fixture
def limits() -> dict:
    return {}


@pytest.fixture
def app_config(database_url_for_test, limits):
    return make_config(database_url_for_test, **limits)


@pytest.fixture
def smtp(app, smtp_server):
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port)
    return smtp_server


@pytest.fixture
def campaign(api) -> dict:
    template = factories.template(api, linkedin=True)
    instance = factories.instance(api, template_data=template, name="Founders")
    factories.enroll(api, instance["id"], 2)
    return instance


def received(sink) -> list:
    return [
        (mail_from, rcpts, email.message_from_bytes(content, policy=policy.default))
        for _, mail_from, rcpts, content in sink.received
    ]


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Delivery, CampaignEvent, OutboxMessage)
        )


def enrollment_rows(app, instance_id) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            sa.select(
                CampaignEnrollment.status, CampaignEnrollment.current_step, CampaignEnrollment.next_action_at
            ).where(CampaignEnrollment.instance_id == uuid.UUID(instance_id))
        ).all()


def test_it_sends_the_step_for_the_first_contact_to_the_keys_user_and_counts_nothing(app, api, smtp, sink, campaign):
    before = enrollment_rows(app, campaign["id"])

    response = api.post(f"/instances/{campaign['id']}/test-send", json={"step": 2})

    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data == {
        "to": "owner@acme.test",
        "sender": "outreach@localhost",
        "subject": "[Test] Step 2 for Person0",
        "step": 2,
        "contact_email": "person0@example.com",
        "stored_in_outbox": False,
    }
    ((mail_from, rcpts, message),) = received(sink)
    assert (mail_from, rcpts) == ("outreach@localhost", ["owner@acme.test"])
    assert message["Subject"] == "[Test] Step 2 for Person0"
    assert "Hello Person0, step 2." in message.get_body(("plain",)).get_content()
    assert message["List-Unsubscribe"]
    assert "/t/o/" not in message.as_string()  # no open pixel: a test is not tracked
    assert counts(app) == (0, 0, 0)
    assert enrollment_rows(app, campaign["id"]) == before
    performance = api.get(f"/instances/{campaign['id']}/performance").get_json()["data"]
    assert performance["totals"]["sent"] == 0


def test_it_renders_for_the_chosen_contact_and_sends_to_the_given_address(api, smtp, sink, campaign):
    person1 = api.get(f"/instances/{campaign['id']}/enrollments?sort=email").get_json()["data"][1]["contact"]

    response = api.post(
        f"/instances/{campaign['id']}/test-send",
        json={"step_id": api.get(f"/templates/{campaign['template_id']}").get_json()["data"]["steps"][0]["id"],
              "contact_id": person1["id"], "to": "Reviewer@Acme.test"},
    )  # fmt: skip

    assert response.status_code == 200, response.get_json()
    ((_, rcpts, message),) = received(sink)
    assert rcpts == ["reviewer@acme.test"] and message["Subject"] == "[Test] Step 1 for Person1"


def test_a_missing_value_is_a_422_naming_the_field_and_nothing_is_sent(api, smtp, sink, campaign):
    contact = api.post("/contacts", json={"email": "nameless@example.com"}).get_json()["data"]

    response = api.post(f"/instances/{campaign['id']}/test-send", json={"step": 1, "contact_id": contact["id"]})

    assert response.status_code == 422
    body = response.get_json()
    assert "first_name" in body["message"] and "nameless@example.com" in body["message"]
    assert body["details"][0]["variables"] == ["first_name"]
    assert sink.received == []


@pytest.mark.parametrize("refusal", ["mail_reply", "data_reply"])
def test_a_refusing_mail_server_is_a_502_with_its_reason(app, api, smtp, sink, campaign, refusal):
    setattr(sink, refusal, "550 5.7.1 Relaying denied")

    response = api.post(f"/instances/{campaign['id']}/test-send", json={"step": 1})

    assert response.status_code == 502
    body = response.get_json()
    assert body["error"] == "Bad Gateway" and "Relaying denied" in body["message"]
    assert counts(app) == (0, 0, 0)


def test_an_unreachable_mail_server_is_a_502(app, api, campaign, free_port):
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=free_port, SMTP_TIMEOUT=2)

    response = api.post(f"/instances/{campaign['id']}/test-send", json={"step": 1})

    assert response.status_code == 502 and response.get_json()["statusCode"] == 502


def test_with_the_outbox_transport_the_test_lands_in_the_outbox_without_a_delivery(app, api, campaign):
    response = api.post(f"/instances/{campaign['id']}/test-send", json={"step": 1})

    assert response.status_code == 200 and response.get_json()["data"]["stored_in_outbox"] is True
    with app.app_context():
        (stored,) = db.session.scalars(sa.select(OutboxMessage)).all()
        assert (stored.delivery_id, stored.to_email, stored.subject) == (
            None,
            "owner@acme.test",
            "[Test] Step 1 for Person0",
        )
    assert counts(app)[:2] == (0, 0)


def test_a_campaign_with_nobody_enrolled_uses_a_sample_contact(api, smtp, sink):
    instance = factories.instance(api)

    response = api.post(f"/instances/{instance['id']}/test-send", json={"step": 1})

    assert response.status_code == 200 and response.get_json()["data"]["contact_email"] is None
    ((_, _, message),) = received(sink)
    assert message["Subject"] == "[Test] Step 1 for Ada"


def test_bad_requests_are_clear_4xx(api, outsider, campaign):
    path = f"/instances/{campaign['id']}/test-send"

    linkedin = api.post(path, json={"step": 3})
    assert linkedin.status_code == 422 and "LinkedIn" in linkedin.get_json()["message"]
    assert api.post(path, json={"step": 9}).status_code == 404
    assert api.post(path, json={"step": 1, "step_id": str(uuid.uuid4())}).status_code == 400
    assert api.post(path, json={}).status_code == 400
    assert api.post(path, json={"step": 1, "to": "not an address"}).status_code == 400
    assert api.post(path, json={"step": 1, "contact_id": str(uuid.uuid4())}).status_code == 404
    assert api.as_(outsider).post(path, json={"step": 1}).status_code == 404
    outsiders_contact = api.as_(outsider).post("/contacts", json={"email": "x@globex.test"}).get_json()["data"]
    assert api.post(path, json={"step": 1, "contact_id": outsiders_contact["id"]}).status_code == 404


@pytest.mark.parametrize(
    "limits", [{"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_TEST_SEND": "2 per minute"}]
)
def test_test_sends_have_their_own_rate_limit(api, campaign):
    path = f"/instances/{campaign['id']}/test-send"

    statuses = [api.post(path, json={"step": 1}).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert api.get(f"/instances/{campaign['id']}").status_code == 200  # other requests still go

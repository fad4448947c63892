"""Tenancy: another workspace's objects do not exist (404), directly or by reference.

The owner builds a full workspace; the outsider, with a valid key for another workspace, then
calls every registered operation that takes an id with the owner's ids. The list of operations
comes from the registry, so a new endpoint is covered as soon as it is declared.
"""

import json
import re
import time
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests import builders, factories
from webapp.api import MISSING_KEY
from webapp.api.base import registry
from webapp.api.openapi import PATH_PARAM
from webapp.extensions import db as _db
from webapp.models import ApiKey, Delivery, Task, Workspace, utcnow
from webapp.services.api_keys import revoke_api_key
from webapp.webhooks import standard

ENVELOPE = {"success", "error", "message", "statusCode", "details"}
SECRET = "owner-secret"  # in every name and email the owner creates, so a leak is easy to spot

# A valid body per request model, so that a 404 cannot hide behind a 400.
VALID_BODIES = {
    "EnrollmentActionIn": {"action": "unenroll", "filter": {}},
    "TemplateUpdate": {"name": "Hijacked"},
    "EmailStepIn": {"subject": "Hijacked", "body": "Hijacked"},
    "EmailStepUpdate": {"subject": "Hijacked"},
    "LinkedInStepIn": {"action_type": "message", "message": "Hijacked"},
    "LinkedInStepUpdate": {"message": "Hijacked"},
    "InstanceStatusIn": {"status": "paused"},
    "InstanceUpdateIn": {"name": "Hijacked", "status": "paused"},
    "TestSendIn": {"step": 1, "to": "planted@outsider.test"},
    "CampaignStepIn": {"channel": "email", "subject": "Hijacked", "body": "Hijacked"},
    "EnrollmentIn": {"contact": {"email": "planted@outsider.test"}},
    "BulkEnrollmentIn": {"contacts": [{"contact": {"email": "planted@outsider.test"}}]},
    "EnrollmentStatusIn": {"status": "paused"},
    "ContactUpdate": {"first_name": "Hijacked"},
    "SuppressionIn": {"status": "unsubscribed"},
    "TaskFinishIn": {"note": "Hijacked"},
    "ResolveDeliveryIn": {"sent": True},
    "ReplyUpdate": {"lead_status": "interested"},
}


def path_params(op) -> list[str]:
    return [m.group(2) for m in PATH_PARAM.finditer(op.rule)]


def fill(op, ids: dict) -> str:
    def value(match):
        name = match.group(2)
        if name == "step_id":
            name = "linkedin_step_id" if "/linkedin/" in op.rule else "email_step_id"
        assert name in ids, f"{op.endpoint}: add the owner's <{name}> to the `owned` fixture"
        return str(ids[name])

    return PATH_PARAM.sub(value, op.rule)


def body_for(op):
    if op.body is None:
        return None
    name = op.body.__name__
    body = VALID_BODIES.get(name)
    if body is None:  # a new model whose fields are all optional
        body = {}
    op.body.model_validate(body)  # fails loudly when a new model needs an entry in VALID_BODIES
    return body


ID_OPERATIONS = [op for op in registry.operations if path_params(op)]


KEY_USE_COLUMNS = ("last_used_at", "updated_at")


def snapshot(app) -> dict[str, list[str]]:
    """Every row of every table (api_keys without the use time, which any request may touch)."""
    with app.app_context():
        rows = {}
        for table in _db.metadata.sorted_tables:
            columns = [c for c in table.c if not (table.name == "api_keys" and c.name in KEY_USE_COLUMNS)]
            rows[table.name] = sorted(repr(tuple(row)) for row in _db.session.execute(sa.select(*columns)))
        _db.session.remove()
    return rows


def changed_tables(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def assert_not_found(response, leaks: set[str]):
    assert response.status_code == 404, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) == ENVELOPE
    assert body["success"] is False and body["statusCode"] == 404 and body["error"] == "Not Found"
    text = response.get_data(as_text=True)
    leaked = [value for value in leaks if value in text]
    assert not leaked, f"owner data in the body: {leaked}"


@pytest.fixture
def owned(app, api, owner):
    """A full workspace: template with email and LinkedIn steps, campaign, contacts, enrollments,
    events, an open task and an unknown delivery."""
    template = factories.template(api, steps=2, linkedin=True, name=f"{SECRET} sequence")
    instance = factories.instance(api, template_data=template, status="active", name=f"{SECRET} campaign")
    contact = api.post("/contacts", json={"email": f"vip@{SECRET}.test", "first_name": "Secretname"})
    assert contact.status_code == 201
    contact = contact.get_json()["data"]
    factories.enroll(api, instance["id"], n=3, domain=f"{SECRET}.test")
    single = api.post(f"/instances/{instance['id']}/enrollments", json={"contact_id": contact["id"]})
    assert single.status_code == 201, single.get_json()
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    events = api.post(
        "/events/webhook",
        json={
            "events": [
                {"provider_event_id": f"{SECRET}-1", "type": "sent", "enrollment_id": enrollments[0]["id"]},
                {"provider_event_id": f"{SECRET}-2", "type": "opened", "enrollment_id": enrollments[0]["id"]},
                {"provider_event_id": f"{SECRET}-3", "type": "sent", "enrollment_id": enrollments[1]["id"]},
            ]
        },
    )
    assert events.get_json()["data"]["stored"] == 3
    email_step = next(s for s in template["steps"] if s["channel"] == "email")
    linkedin_step = next(s for s in template["steps"] if s["channel"] == "linkedin")
    mailbox = api.post(
        "/mailboxes",
        json={
            "name": f"{SECRET} mailbox",
            "from_email": f"rep@{SECRET}.test",
            "smtp": {"host": "smtp.example.test", "username": "rep", "password": f"{SECRET}-password"},
        },
    )
    assert mailbox.status_code == 201, mailbox.get_json()
    with app.app_context():
        task = Task(
            workspace_id=owner.workspace_id,
            enrollment_id=uuid.UUID(enrollments[0]["id"]),
            step_id=uuid.UUID(linkedin_step["id"]),
            type="connection_request",
            due_at=utcnow(),
        )
        delivery = Delivery(
            workspace_id=owner.workspace_id,
            enrollment_id=uuid.UUID(enrollments[1]["id"]),
            step_id=uuid.UUID(email_step["id"]),
            status="unknown",
        )
        _db.session.add_all([task, delivery])
        _db.session.commit()
        task_id, delivery_id = str(task.id), str(delivery.id)
        _db.session.remove()
    ids = {
        "template_id": template["id"],
        "email_step_id": email_step["id"],
        "linkedin_step_id": linkedin_step["id"],
        "instance_id": instance["id"],
        "enrollment_id": enrollments[0]["id"],
        "contact_id": contact["id"],
        "workspace_id": str(owner.workspace_id),
        "task_id": task_id,
        "delivery_id": delivery_id,
        "mailbox_id": mailbox.get_json()["data"]["id"],
    }
    with app.app_context():
        reply = builders.inbound_message(
            uuid.UUID(ids["mailbox_id"]), uid=1, subject=f"Re: {SECRET}", snippet=f"{SECRET} answer"
        )
        ids["reply_id"] = str(reply.id)
    all_ids = {ids[k] for k in ids} | {e["id"] for e in enrollments} | {e["contact_id"] for e in enrollments}
    return SimpleNamespace(
        ids=ids,
        all_ids=all_ids,
        template=template,
        instance=instance,
        contact=contact,
        enrollments=enrollments,
        leaks={SECRET, "Secretname"},
    )


@pytest.fixture
def theirs(api, outsider):
    """The outsider's own client, template, campaign and enrollments."""
    client = api.as_(outsider)
    template = factories.template(client, steps=1, linkedin=True)
    instance = factories.instance(client, template_data=template, status="active")
    factories.enroll(client, instance["id"], n=2, domain="outsider.test")
    enrollments = client.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    return SimpleNamespace(api=client, template=template, instance=instance, enrollments=enrollments)


def test_the_fixture_covers_every_operation_that_takes_an_id():
    names = {name for op in ID_OPERATIONS for name in path_params(op)}
    assert names <= {"template_id", "step_id", "instance_id", "enrollment_id", "contact_id", "workspace_id"} | {
        "task_id",
        "delivery_id",
        "mailbox_id",
        "reply_id",
    }, "a new kind of id: add the owner's object to the `owned` fixture"
    assert len(ID_OPERATIONS) >= 20


@pytest.mark.parametrize("op", [op for op in ID_OPERATIONS if op.auth], ids=lambda op: f"{op.method} {op.rule}")
def test_another_workspace_gets_404_for_every_operation_that_takes_an_id(app, api, outsider, owned, op):
    intruder = api.as_(outsider)
    before = snapshot(app)
    url = fill(op, owned.ids)
    response = intruder.request(op.method, url, json=body_for(op))
    requested = set(re.findall(r"[0-9a-f-]{36}", url))
    assert_not_found(response, owned.leaks | (owned.all_ids - requested))
    assert changed_tables(before, snapshot(app)) == []
    # The owner still sees the object unchanged.
    if op.method == "GET":
        assert api.request("GET", url).status_code == 200


@pytest.mark.parametrize(
    "op", [op for op in ID_OPERATIONS if "step_id" in path_params(op)], ids=lambda op: f"{op.method} {op.rule}"
)
def test_an_own_template_does_not_reach_another_workspace_step(app, owned, theirs, op):
    ids = {**owned.ids, "template_id": theirs.template["id"]}
    before = snapshot(app)
    response = theirs.api.request(op.method, fill(op, ids), json=body_for(op))
    assert_not_found(response, owned.leaks)
    assert changed_tables(before, snapshot(app)) == []


def test_signed_webhooks_for_another_workspace_are_refused_like_an_unknown_one(app, client, owned, theirs, outsider):
    with app.app_context():
        secret = _db.session.get(Workspace, outsider.workspace_id).webhook_secret
    body = json.dumps(
        {"provider_event_id": "forged-1", "type": "replied", "enrollment_id": owned.enrollments[0]["id"]}
    ).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_forged",
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard.sign(secret, "msg_forged", stamp, body),
    }
    before = snapshot(app)
    answers = []
    for workspace_id in (owned.ids["workspace_id"], uuid.uuid4()):
        response = client.post(f"/api/campaigns/v2/events/webhook/{workspace_id}", data=body, headers=headers)
        assert response.status_code == 401
        assert set(response.get_json()) == ENVELOPE
        answers.append(response.get_json())
    assert answers[0] == answers[1]
    assert changed_tables(before, snapshot(app)) == []


# --- Indirect references ---------------------------------------------------------------------------


def test_enrolling_another_workspace_contact_is_404_and_writes_nothing(app, owned, theirs):
    before = snapshot(app)
    response = theirs.api.post(
        f"/instances/{theirs.instance['id']}/enrollments", json={"contact_id": owned.contact["id"]}
    )
    assert_not_found(response, owned.leaks)
    assert changed_tables(before, snapshot(app)) == []


def test_a_campaign_cannot_be_created_from_another_workspace_template(app, owned, theirs):
    before = snapshot(app)
    response = theirs.api.post("/instances", json={"template_id": owned.template["id"], "name": "Borrowed"})
    assert_not_found(response, owned.leaks)
    assert changed_tables(before, snapshot(app)) == []


def test_events_for_another_workspace_enrollment_are_skipped_and_not_stored(app, owned, theirs):
    before = snapshot(app)
    response = theirs.api.post(
        "/events/webhook",
        json={
            "events": [
                {"provider_event_id": "x-1", "type": "replied", "enrollment_id": owned.enrollments[0]["id"]},
                {"provider_event_id": "x-2", "type": "unsubscribed", "enrollment_id": owned.enrollments[1]["id"]},
                {
                    "provider_event_id": "x-3",
                    "type": "bounced",
                    "email": owned.enrollments[2]["contact"]["email"],
                    "instance_id": owned.instance["id"],
                },
                # The owner's provider_event_id: deduplication is per workspace, not a cross-tenant oracle.
                {"provider_event_id": f"{SECRET}-1", "type": "sent", "enrollment_id": owned.enrollments[0]["id"]},
            ]
        },
    )
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["stored"] == 0 and data["duplicates"] == 0
    assert [item["index"] for item in data["skipped"]] == [0, 1, 2, 3]
    text = response.get_data(as_text=True)
    assert not [value for value in owned.leaks if value in text]
    assert changed_tables(before, snapshot(app)) == []


def test_bulk_enrollment_with_mixed_ids_enrolls_only_own_contacts(app, api, owned, theirs, outsider):
    own = theirs.api.post("/contacts", json={"email": "mine@outsider.test"}).get_json()["data"]
    other = next(e["contact_id"] for e in owned.enrollments if e["contact_id"] != owned.contact["id"])
    owner_contacts = [owned.contact["id"], other]
    owner_view = _owner_rows(app, outsider)
    response = theirs.api.post(
        f"/instances/{theirs.instance['id']}/enrollments/bulk",
        json={
            "contacts": [
                {"contact_id": owner_contacts[0]},
                {"contact_id": own["id"]},
                {"contact_id": owner_contacts[1]},
            ]
        },
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["enrolled"] == 1 and data["contacts_created"] == 0
    assert [item["index"] for item in data["invalid"]] == [0, 2]
    assert all("not found" in item["reason"] for item in data["invalid"]), data["invalid"]
    assert not [value for value in owned.leaks if value in response.get_data(as_text=True)]
    assert _owner_rows(app, outsider) == owner_view
    listed = theirs.api.get(f"/instances/{theirs.instance['id']}/enrollments?limit=100").get_json()["data"]
    assert {e["contact_id"] for e in listed}.isdisjoint(owned.all_ids)
    # The owner's contacts are enrolled nowhere new.
    for contact_id in owner_contacts:
        assert api.get(f"/contacts/{contact_id}").status_code == 200


def _owner_rows(app, outsider) -> dict:
    """The snapshot without the outsider's own rows."""
    rows = snapshot(app)
    mine = repr(uuid.UUID(str(outsider.workspace_id)))
    return {name: [row for row in table if mine not in row] for name, table in rows.items()}


def test_bulk_enrollment_by_email_never_touches_another_workspace_contact(app, owned, theirs, outsider):
    owner_view = _owner_rows(app, outsider)
    email = owned.contact["email"]
    response = theirs.api.post(
        f"/instances/{theirs.instance['id']}/enrollments/bulk",
        json={"contacts": [{"contact": {"email": email, "first_name": "Overwritten", "custom_fields": {"x": 1}}}]},
    )
    assert response.status_code == 200
    assert response.get_json()["data"]["contacts_created"] == 1  # a contact of the outsider's own
    assert _owner_rows(app, outsider) == owner_view


READABLE_IDS = {"template_id", "instance_id", "enrollment_id", "contact_id"}


@pytest.mark.parametrize(
    "op",
    [
        op
        for op in registry.operations
        if op.method == "GET" and op.auth and op.endpoint != "openapi_json" and set(path_params(op)) <= READABLE_IDS
    ],
    ids=lambda op: op.rule,
)
def test_reads_never_return_another_workspace_objects(owned, theirs, op):
    ids = {
        "template_id": theirs.template["id"],
        "email_step_id": next(s["id"] for s in theirs.template["steps"] if s["channel"] == "email"),
        "linkedin_step_id": next(s["id"] for s in theirs.template["steps"] if s["channel"] == "linkedin"),
        "instance_id": theirs.instance["id"],
        "enrollment_id": theirs.enrollments[0]["id"],
        "contact_id": theirs.enrollments[0]["contact_id"],
    }
    url = fill(op, ids)
    for query in ("", "?limit=100", f"?search={SECRET}&limit=100", "?status=all&limit=100"):
        response = theirs.api.get(url + query)
        assert response.status_code in (200, 400), response.get_json()
        text = response.get_data(as_text=True)
        assert not [value for value in owned.leaks | owned.all_ids if value in text], (url + query, text[:500])


def test_performance_counts_only_the_workspace_own_events(api, owned, theirs):
    owner_before = api.get(f"/instances/{owned.instance['id']}/performance").get_json()["data"]
    mine = theirs.enrollments[0]["id"]
    response = theirs.api.post(
        "/events/webhook",
        json={
            "events": [
                {"provider_event_id": "own-sent", "type": "sent", "enrollment_id": mine},
                {"provider_event_id": "own-open", "type": "opened", "enrollment_id": mine},
                {"provider_event_id": "their-open", "type": "opened", "enrollment_id": owned.enrollments[1]["id"]},
                {"provider_event_id": "their-reply", "type": "replied", "enrollment_id": owned.enrollments[2]["id"]},
            ]
        },
    )
    assert response.get_json()["data"]["stored"] == 2
    data = theirs.api.get(f"/instances/{theirs.instance['id']}/performance").get_json()["data"]
    totals, contacts = data["totals"], data["contacts"]
    assert totals["enrolled"] == 2
    assert (totals["sent"], totals["opened"], totals["replied"]) == (1, 1, 0)
    assert (contacts["emailed"], contacts["opened"], contacts["replied"], data["rates"]["open_rate"]) == (1, 1, 0, 1.0)
    owner_after = api.get(f"/instances/{owned.instance['id']}/performance").get_json()["data"]
    assert owner_after == owner_before
    assert (owner_after["totals"]["sent"], owner_after["totals"]["opened"]) == (2, 1)


# --- Authentication ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [op for op in registry.operations if op.auth], ids=lambda op: f"{op.method} {op.rule}")
def test_every_operation_needs_a_key(app, client, op):
    url = PATH_PARAM.sub(lambda m: str(uuid.uuid4()), op.rule)
    before = snapshot(app)
    response = client.open(url, method=op.method, json={} if op.method in ("POST", "PUT", "PATCH") else None)
    assert response.status_code == 401
    assert response.get_json() == {
        "success": False,
        "error": "Unauthorized",
        "message": MISSING_KEY,
        "statusCode": 401,
        "details": [],
    }
    assert MISSING_KEY == "Missing API key. Provide via Authorization: Bearer <key> or X-API-Key: <key> header"
    assert changed_tables(before, snapshot(app)) == []


def test_the_key_works_in_either_header(client, owner):
    for headers in ({"X-API-Key": owner.api_key}, {"Authorization": f"Bearer {owner.api_key}"}):
        response = client.get("/api/campaigns/v2/templates", headers=headers)
        assert response.status_code == 200, headers


@pytest.mark.parametrize("name", ["api_key", "apiKey", "key", "access_token", "token", "X-API-Key"])
def test_a_key_in_the_query_string_is_not_accepted(client, owner, name):
    response = client.get(f"/api/campaigns/v2/templates?{name}={owner.api_key}")
    assert response.status_code == 401
    assert response.get_json()["message"] == MISSING_KEY


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer dbk_nothing_here"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer " + "a" * 5000},
    ],
)
def test_a_wrong_key_is_401(client, headers):
    response = client.get("/api/campaigns/v2/templates", headers=headers)
    assert response.status_code == 401
    assert set(response.get_json()) == ENVELOPE


def test_a_revoked_key_is_refused_at_once(app, client, owner):
    assert client.get("/api/campaigns/v2/templates", headers=owner.headers).status_code == 200
    with app.app_context():
        prefix = owner.api_key.split("_")[1]
        key = _db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))
        revoke_api_key(_db.session.get(Workspace, owner.workspace_id), key.id)
        _db.session.remove()
    for headers in (owner.headers, {"X-API-Key": owner.api_key}):
        response = client.get("/api/campaigns/v2/templates", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["message"] == "Invalid or revoked API key."


def test_a_key_only_opens_its_own_workspace(api, owned, outsider):
    """Sanity check of the fixture: the owner reads what the outsider cannot."""
    assert api.get(f"/templates/{owned.ids['template_id']}").status_code == 200
    assert api.as_(outsider).get(f"/templates/{owned.ids['template_id']}").status_code == 404

"""Bad input: every write operation answers a clear 4xx envelope and writes nothing.

The generic cases run over every POST, PUT and PATCH operation in the registry (new endpoints
are covered as they are declared); the specific ones check each limit of the contract.
"""

import json
import time
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests import builders, factories
from webapp.api.base import registry
from webapp.api.openapi import PATH_PARAM, RAW_BODIES
from webapp.extensions import db as _db
from webapp.models import Workspace
from webapp.schemas.enrollments import MAX_BULK
from webapp.schemas.events import MAX_BATCH, EventWebhookIn
from webapp.webhooks import standard

ENVELOPE = {"success", "error", "message", "statusCode", "details"}
WRITE_OPERATIONS = [op for op in registry.operations if op.method in ("POST", "PUT", "PATCH")]
WITH_ID = [op for op in registry.operations if PATH_PARAM.search(op.rule)]
PAGINATED = [op for op in registry.operations if op.paginated]

# A valid body per operation, so that each bad variant differs from a good request in one way.
VALID_BODIES = {
    "EnrollmentActionIn": {"action": "pause", "filter": {}},
    "TestSendIn": {"step": 1, "to": "valid@example.com"},
    "CampaignStepIn": {"channel": "email", "subject": "Valid", "body": "Valid"},
    "CampaignStepUpdate": {"subject": "Valid"},
    "TemplateIn": {"name": "Valid"},
    "TemplateUpdate": {"name": "Valid"},
    "EmailStepIn": {"subject": "Valid", "body": "Valid"},
    "EmailStepUpdate": {"subject": "Valid"},
    "LinkedInStepIn": {"action_type": "message", "message": "Valid"},
    "LinkedInStepUpdate": {"message": "Valid"},
    "InstanceIn": {"name": "Valid"},  # template_id added from the world
    "InstanceStatusIn": {"status": "paused"},
    "EnrollmentIn": {"contact": {"email": "valid@example.org"}},
    "BulkEnrollmentIn": {"contacts": [{"contact": {"email": "valid@example.org"}}]},
    "EnrollmentStatusIn": {"status": "paused"},
    "ContactData": {"email": "valid@example.org"},
    "ContactUpdate": {"first_name": "Valid"},
    "SuppressionIn": {"status": "unsubscribed"},
    "TaskFinishIn": {"note": "Valid"},
    "ResolveDeliveryIn": {"sent": True},
    "MailboxIn": {
        "name": "Valid",
        "from_email": "valid@example.org",
        "smtp": {"host": "smtp.example.org", "username": "valid", "password": "valid-secret"},
    },
    "MailboxUpdate": {"name": "Valid"},
    "MailboxCheckIn": {"servers": ["smtp"]},
    "ReplyUpdate": {"lead_status": "interested"},
}


def snapshot(app) -> dict[str, list[str]]:
    """Every row of every table, but the API key's use time, which any request may touch."""
    with app.app_context():
        rows = {}
        for table in _db.metadata.sorted_tables:
            columns = [
                c for c in table.c if not (table.name == "api_keys" and c.name in ("last_used_at", "updated_at"))
            ]
            rows[table.name] = sorted(repr(tuple(row)) for row in _db.session.execute(sa.select(*columns)))
        _db.session.remove()
    return rows


def assert_rejected(response, status: int = 400, *, mentions: tuple[str, ...] = ()):
    text = response.get_data(as_text=True)
    assert response.status_code == status, (response.status_code, text[:500])
    body = response.get_json()
    assert body is not None and set(body) == ENVELOPE, text[:500]
    assert body["success"] is False and body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], list)
    assert len(body["message"]) > 10
    for word in mentions:
        assert word.lower() in body["message"].lower(), body["message"]
    return body


@pytest.fixture
def world(app, api, owner):
    template = factories.template(api, steps=1, linkedin=True)
    instance = factories.instance(api, template_data=template)
    factories.enroll(api, instance["id"], n=2)
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    with app.app_context():
        secret = _db.session.get(Workspace, owner.workspace_id).webhook_secret
    ids = {
        "template_id": template["id"],
        "email_step_id": next(s["id"] for s in template["steps"] if s["channel"] == "email"),
        "linkedin_step_id": next(s["id"] for s in template["steps"] if s["channel"] == "linkedin"),
        "instance_id": instance["id"],
        "enrollment_id": enrollments[0]["id"],
        "contact_id": enrollments[0]["contact_id"],
        "workspace_id": str(owner.workspace_id),
        "task_id": str(uuid.uuid4()),
        "delivery_id": str(uuid.uuid4()),
        "mailbox_id": api.post("/mailboxes", json=VALID_BODIES["MailboxIn"]).get_json()["data"]["id"],
    }
    with app.app_context():
        ids["reply_id"] = str(builders.inbound_message(uuid.UUID(ids["mailbox_id"]), uid=1).id)
    return SimpleNamespace(app=app, api=api, ids=ids, secret=secret, enrollments=enrollments, instance=instance)


def url_for(op, world) -> str:
    def value(match):
        name = match.group(2)
        if name == "step_id":
            name = "linkedin_step_id" if "/linkedin/" in op.rule else "email_step_id"
        return world.ids[name]

    return PATH_PARAM.sub(value, op.rule)


def valid_body(op, world) -> dict:
    model = RAW_BODIES.get(op.endpoint) if op.raw_body else op.body
    if model is None or model is EventWebhookIn:
        return {"provider_event_id": f"ok-{uuid.uuid4()}", "type": "sent", "enrollment_id": world.ids["enrollment_id"]}
    body = json.loads(json.dumps(VALID_BODIES.get(model.__name__, {})))
    if model.__name__ == "InstanceIn":
        body["template_id"] = world.ids["template_id"]
    model.model_validate(body)  # a new model needs an entry in VALID_BODIES
    return body


def body_or_none(op, world) -> dict | None:
    return valid_body(op, world) if op.body is not None or op.raw_body else None


def send(op, world, data: bytes | str | dict, *, content_type="application/json", **kw):
    """Send `data` (a dict is sent as JSON) as the raw body of `op`, signed for signed webhooks."""
    if isinstance(data, dict):
        data = json.dumps(data)
    raw = data if isinstance(data, bytes) else data.encode()
    headers = {"Content-Type": content_type} if content_type else {}
    if not op.auth:
        stamp = int(time.time())
        headers.update(
            {
                "webhook-id": "msg_test",
                "webhook-timestamp": str(stamp),
                "webhook-signature": standard.sign(world.secret, "msg_test", stamp, raw),
            }
        )
    return world.api.request(op.method, url_for(op, world), data=raw, headers=headers, **kw)


def op_id(op) -> str:
    return f"{op.method} {op.rule.removeprefix('/api/campaigns/v2')}"


# --- Generic: every write operation ------------------------------------------------------------------

RAW_CASES = {
    "malformed JSON": (b'{"name": ', ("malformed json",)),
    "trailing garbage": (b'{"name": "x"} {}', ("malformed json",)),
    "a list": (b"[]", ("object",)),
    "a list of objects": (b'[{"name": "x"}]', ("object",)),
    "a string": (b'"name"', ("object",)),
    "a number": (b"42", ("object",)),
    "null": (b"null", ("object",)),
    "true": (b"true", ("object",)),
    "NaN": (b'{"name": NaN}', ("nan",)),
    "Infinity": (b'{"name": -Infinity}', ("infinity",)),
    "empty body": (b"", ("required",)),
    "whitespace body": (b"  \n ", ("required",)),
    "nested 10,000 deep": (b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", ("nested",)),
    "nested 500 deep": (b'{"a": ' + b'{"b": ' * 500 + b"1" + b"}" * 500 + b"}", ("nested",)),
    "invalid UTF-8": (b'{"name": "\xff\xfe"}', ("malformed json",)),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_unusable_bodies_are_400_and_write_nothing(world, case):
    data, mentions = RAW_CASES[case]
    before = snapshot(world.app)
    for op in WRITE_OPERATIONS:
        if op.body_optional and not data.strip():
            continue  # no body at all is the default request (a clone's)
        body = assert_rejected(send(op, world, data), mentions=mentions)
        assert body["error"] == "Validation Error", op_id(op)
    assert snapshot(world.app) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_json_body_with_another_content_type_is_refused(world, content_type):
    before = snapshot(world.app)
    for op in WRITE_OPERATIONS:
        response = send(op, world, json.dumps(valid_body(op, world)), content_type=content_type)
        assert_rejected(response, mentions=("content-type",))
    assert snapshot(world.app) == before


def test_form_data_is_refused(world):
    before = snapshot(world.app)
    for op in WRITE_OPERATIONS:
        if not op.auth:
            continue
        response = world.api.request(op.method, url_for(op, world), data={"name": "x", "email": "a@b.co"})
        assert_rejected(response, mentions=("content-type",))
    assert snapshot(world.app) == before


MASS_ASSIGNMENT = {
    "id": str(uuid.uuid4()),
    "workspace_id": str(uuid.uuid4()),
    "created_at": "2020-01-01T00:00:00Z",
    "updated_at": "2020-01-01T00:00:00Z",
    "status": "completed",
    "owner_id": "me",
    "is_admin": True,
}


@pytest.mark.parametrize("field", list(MASS_ASSIGNMENT))
def test_fields_a_client_may_not_set_are_400(world, field):
    before = snapshot(world.app)
    tried = 0
    for op in WRITE_OPERATIONS:
        body = valid_body(op, world)
        if field in body or (op.body is not None and field in op.body.model_fields):
            continue  # e.g. `status` is the whole point of a PATCH
        tried += 1
        response = send(op, world, {**body, field: MASS_ASSIGNMENT[field]})
        error = assert_rejected(response, mentions=(field,))
        assert [d["field"] for d in error["details"]] == [field], (op_id(op), error)
    assert tried >= 10
    assert snapshot(world.app) == before


def test_a_body_over_the_size_limit_is_413(world):
    limit = world.app.config["MAX_CONTENT_LENGTH"]
    raw = b'{"name": "' + b"a" * limit + b'"}'
    before = snapshot(world.app)
    for op in WRITE_OPERATIONS:
        body = assert_rejected(send(op, world, raw), status=413, mentions=("too large",))
        assert body["error"] == "Request Entity Too Large"
    assert snapshot(world.app) == before


@pytest.mark.parametrize("op", WITH_ID, ids=op_id)
def test_a_malformed_id_in_the_path_is_a_404_envelope(world, op):
    before = snapshot(world.app)
    for bad in ("not-a-uuid", "1", "0" * 33, str(uuid.uuid4()) + "0", "%00", "..%2f..%2f"):
        url = PATH_PARAM.sub(bad, op.rule, count=1)
        url = PATH_PARAM.sub(lambda m: str(uuid.uuid4()), url)
        response = world.api.request(op.method, url, json=body_or_none(op, world))
        body = assert_rejected(response, status=404)
        assert body["error"] == "Not Found"
    assert snapshot(world.app) == before


@pytest.mark.parametrize("op", [op for op in WITH_ID if op.auth], ids=op_id)
def test_an_unknown_id_in_the_path_is_404(world, op):
    # Signed webhooks answer 401 for an unknown workspace instead (test_tenancy checks that).
    before = snapshot(world.app)
    url = PATH_PARAM.sub(lambda m: str(uuid.uuid4()), op.rule)
    response = world.api.request(op.method, url, json=body_or_none(op, world))
    assert_rejected(response, status=404, mentions=("not found",))
    assert snapshot(world.app) == before


# --- Specific values ---------------------------------------------------------------------------------

LONG = "x" * 300


def bad_values(world) -> list[tuple[str, str, dict, str]]:
    """(method, path, body, word the message must contain)."""
    tid, iid = world.ids["template_id"], world.ids["instance_id"]
    email_step = f"/templates/{tid}/sequences/email"
    linkedin_step = f"/templates/{tid}/sequences/linkedin"
    good_step = {"subject": "s", "body": "b"}
    event = {"provider_event_id": "e-1", "type": "sent", "enrollment_id": world.ids["enrollment_id"]}
    return [
        # wrong types
        ("POST", "/templates", {"name": 123}, "name"),
        ("POST", "/templates", {"name": ["x"]}, "name"),
        ("POST", "/templates", {"name": "x", "is_active": "yes"}, "is_active"),
        ("POST", "/templates", {"name": "x", "is_active": 1}, "is_active"),
        ("POST", "/templates", {"name": "x", "settings": "fast"}, "settings"),
        ("POST", "/templates", {"name": "x", "settings": {"daily_cap": "50"}}, "daily_cap"),
        ("POST", "/templates", {"name": "x", "settings": {"track_opens": "false"}}, "track_opens"),
        ("POST", "/templates", {"name": "x", "type": "fax"}, "type"),
        ("POST", email_step, {**good_step, "delay_days": "5"}, "delay_days"),
        ("POST", email_step, {**good_step, "delay_days": True}, "delay_days"),
        ("POST", email_step, {**good_step, "delay_days": 1.5}, "delay_days"),
        ("POST", linkedin_step, {"action_type": "poke"}, "action_type"),
        ("PATCH", f"/instances/{iid}", {"status": 1}, "status"),
        ("PATCH", f"/instances/{iid}", {"status": "draft"}, "status"),
        ("POST", "/contacts", {"email": 42}, "email"),
        ("POST", "/contacts", {"email": "a@b.co", "custom_fields": ["x"]}, "custom_fields"),
        ("POST", f"/instances/{iid}/enrollments/bulk", {"contacts": "everyone"}, "contacts"),
        ("POST", "/events/webhook", {**event, "occurred_at": 1700000000}, "occurred_at"),
        ("POST", "/events/webhook", {**event, "type": "viewed"}, "type"),
        ("POST", "/events/webhook", {"events": {"0": event}}, "events"),
        # empty strings
        ("POST", "/templates", {"name": ""}, "name"),
        ("POST", "/templates", {"name": "   "}, "name"),
        ("POST", email_step, {"subject": "s", "body": ""}, "body"),
        ("POST", "/contacts", {"email": ""}, "email"),
        ("POST", "/instances", {"template_id": "", "name": "x"}, "template_id"),
        ("POST", "/events/webhook", {**event, "provider_event_id": ""}, "provider_event_id"),
        # too long
        ("POST", "/templates", {"name": "x" * 256}, "name"),
        ("POST", "/templates", {"name": "x", "description": "x" * 5001}, "description"),
        ("POST", email_step, {"subject": "s" * 999, "body": "b"}, "subject"),
        ("POST", email_step, {"subject": "s", "body": "b" * (64 * 1024 + 1)}, "body"),
        ("POST", linkedin_step, {"action_type": "message", "message": "m" * 8001}, "message"),
        ("POST", "/contacts", {"email": f"{'a' * 310}@example.org"}, "email"),
        ("POST", "/contacts", {"email": "a@b.co", "first_name": LONG}, "first_name"),
        ("POST", "/contacts", {"email": "a@b.co", "linkedin_url": "https://x.co/" + "a" * 500}, "linkedin_url"),
        ("POST", "/templates", {"name": "x", "settings": {"from_name": LONG}}, "from_name"),
        ("POST", "/events/webhook", {**event, "provider_event_id": "p" * 256}, "provider_event_id"),
        # out of range
        ("POST", email_step, {**good_step, "delay_days": 366}, "delay_days"),
        ("POST", email_step, {**good_step, "delay_days": -1}, "delay_days"),
        ("POST", email_step, {**good_step, "delay_hours": 24}, "delay_hours"),
        ("POST", email_step, {**good_step, "step_number": 0}, "step_number"),
        ("POST", email_step, {**good_step, "step_number": 10**30}, "step_number"),
        ("POST", "/templates", {"name": "x", "settings": {"daily_cap": 0}}, "daily_cap"),
        ("POST", "/templates", {"name": "x", "settings": {"send_window": {"days": [8]}}}, "days"),
        ("POST", "/templates", {"name": "x", "settings": {"send_window": {"start": "25:00"}}}, "start"),
        ("POST", "/templates", {"name": "x", "settings": {"send_window": {"start": "09:00", "end": "09:00"}}}, "end"),
        ("POST", "/templates", {"name": "x", "settings": {"skip_holidays": "France"}}, "skip_holidays"),
        ("POST", "/contacts", {"email": "a@b.co", "timezone": "Mars/Olympus"}, "timezone"),
        # other bad values
        ("POST", email_step, {"subject": "Hi\r\nBcc: x@evil.test", "body": "b"}, "subject"),
        ("POST", "/contacts", {"email": "not-an-email"}, "email"),
        ("POST", "/contacts", {"email": "a@b.co", "linkedin_url": "javascript:alert(1)"}, "linkedin_url"),
        ("POST", "/events/webhook", {**event, "occurred_at": "2026-01-01T09:00:00"}, "time zone"),
        ("POST", "/events/webhook", {"provider_event_id": "e", "type": "sent"}, "enrollment_id"),
        # malformed UUIDs in the body
        ("POST", "/instances", {"template_id": "not-a-uuid", "name": "x"}, "template_id"),
        ("POST", "/instances", {"template_id": 12, "name": "x"}, "template_id"),
        ("POST", f"/instances/{iid}/enrollments", {"contact_id": "1234"}, "contact_id"),
        ("POST", "/events/webhook", {**event, "enrollment_id": "nope"}, "enrollment_id"),
        ("POST", f"/instances/{iid}/enrollments", {}, "contact_id"),
        ("POST", f"/instances/{iid}/enrollments", {"contact_id": world.ids["contact_id"], "contact": {}}, "contact"),
    ]


def test_wrong_types_empty_long_and_out_of_range_values_are_400(world):
    before = snapshot(world.app)
    for method, path, body, word in bad_values(world):
        response = world.api.request(method, path, json=body)
        assert response.status_code == 400, (method, path, body, response.get_json())
        error = assert_rejected(response, mentions=(word,))
        assert error["details"], (path, body)
    assert snapshot(world.app) == before


@pytest.mark.parametrize("where", ["contact", "enrollment", "bulk", "event", "update"])
@pytest.mark.parametrize(
    "value, word",
    [
        ({"blob": "x" * (10 * 1024)}, "10 kb"),
        ({f"k{i}": "v" * 100 for i in range(120)}, "10 kb"),
        ({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "nested deeper than 5"),
        ({"a": [[[[[[1]]]]]]}, "nested deeper than 5"),
    ],
    ids=["one big value", "many keys", "six objects deep", "six arrays deep"],
)
def test_free_form_json_is_bounded(world, where, value, word):
    iid = world.ids["instance_id"]
    before = snapshot(world.app)
    contact = {"email": "free@example.org", "custom_fields": value}
    request = {
        "contact": ("POST", "/contacts", contact),
        "enrollment": ("POST", f"/instances/{iid}/enrollments", {"contact": contact}),
        "bulk": ("POST", f"/instances/{iid}/enrollments/bulk", {"contacts": [{"contact": contact}]}),
        "event": (
            "POST",
            "/events/webhook",
            {"provider_event_id": "m", "type": "sent", "enrollment_id": world.ids["enrollment_id"], "metadata": value},
        ),
        "update": ("PATCH", f"/contacts/{world.ids['contact_id']}", {"custom_fields": value}),
    }[where]
    response = world.api.request(request[0], request[1], json=request[2])
    if where == "bulk":  # items are checked one by one and reported by index
        assert response.status_code == 200
        data = response.get_json()["data"]
        assert data["enrolled"] == 0 and data["contacts_created"] == 0
        assert [item["index"] for item in data["invalid"]] == [0]
        assert word in data["invalid"][0]["reason"].lower()
    else:
        assert_rejected(response, mentions=(word,))
    assert snapshot(world.app) == before


def test_free_form_json_at_the_limits_is_accepted(world):
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    response = world.api.post("/contacts", json={"email": "deep@example.org", "custom_fields": deep})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["data"]["custom_fields"] == deep
    big = {"blob": "x" * (10 * 1024 - 20)}
    assert world.api.post("/contacts", json={"email": "big@example.org", "custom_fields": big}).status_code == 201
    # Sizes are UTF-8 bytes of the JSON: 5,000 two-byte characters fit, 5,200 do not.
    accented = {"blob": "é" * 5000}
    assert world.api.post("/contacts", json={"email": "e1@example.org", "custom_fields": accented}).status_code == 201
    too_big = {"blob": "é" * 5200}
    response = world.api.post("/contacts", json={"email": "e2@example.org", "custom_fields": too_big})
    assert_rejected(response, mentions=("10 kb",))


def test_settings_too_big_or_unknown_are_400(world):
    before = snapshot(world.app)
    for settings in ({"notes": "x" * 20_000}, {"send_window": {"days": [1] * 5000}}, {"stop_on": ["reply"] * 50}):
        response = world.api.post("/templates", json={"name": "x", "settings": settings})
        error = assert_rejected(response, mentions=("settings",))
        assert all(d["field"].startswith("settings") for d in error["details"])
    assert snapshot(world.app) == before


def test_bulk_enrollment_over_the_limit_is_400_and_names_it(world):
    items = [{"contact_id": str(uuid.uuid4())} for _ in range(MAX_BULK + 1)]
    before = snapshot(world.app)
    response = world.api.post(f"/instances/{world.ids['instance_id']}/enrollments/bulk", json={"contacts": items})
    assert_rejected(response, mentions=(str(MAX_BULK),))
    response = world.api.post(f"/instances/{world.ids['instance_id']}/enrollments/bulk", json={"contacts": []})
    assert_rejected(response, mentions=("contacts",))
    assert snapshot(world.app) == before


def test_an_event_batch_over_the_limit_is_400_and_names_it(world):
    events = [
        {"provider_event_id": f"b-{i}", "type": "sent", "enrollment_id": world.ids["enrollment_id"]}
        for i in range(MAX_BATCH + 1)
    ]
    before = snapshot(world.app)
    assert_rejected(world.api.post("/events/webhook", json={"events": events}), mentions=(str(MAX_BATCH),))
    assert_rejected(world.api.post("/events/webhook", json={"events": []}), mentions=("events",))
    assert snapshot(world.app) == before


@pytest.mark.parametrize("op", PAGINATED, ids=op_id)
def test_query_parameters_out_of_range_are_400(world, op):
    maximum = op.query.model_json_schema()["properties"]["limit"]["maximum"]
    url = url_for(op, world)
    before = snapshot(world.app)
    for query in ("limit=0", f"limit={maximum + 1}", "limit=-5", "limit=abc", "limit=1e3", "limit=", "page=0"):
        assert_rejected(world.api.get(f"{url}?{query}"), mentions=(query.split("=")[0],))
    for query in ("page=-1", "page=abc", "page=1.5", f"page={10**20}", "page=100001", "page=1&page=2"):
        assert_rejected(world.api.get(f"{url}?{query}"), mentions=("page",))
    assert world.api.get(f"{url}?limit={maximum}&page=1").status_code == 200
    assert snapshot(world.app) == before


@pytest.mark.parametrize(
    "raw, where",
    [
        (b'{"name": "a\\u0000b"}', "name"),
        (b'{"name": "x", "description": "\\ud800"}', "description"),
        (b'{"email": "a@b.co", "custom_fields": {"k\\u0000": 1}}', "custom_fields.k"),
        (b'{"contacts": [{"contact": {"email": "a@b.co", "title": "\\udfff"}}]}', "contacts.0.contact.title"),
        # A surrogate sent as raw (invalid) UTF-8 bytes, which json.loads decodes as it is.
        (b'{"name": "x", "description": "\xed\xa0\x80"}', "description"),
        # The same escapes in a UTF-16 body, which json.loads also reads.
        ('{"name": "a\\u0000b"}'.encode("utf-16"), "name"),
    ],
)
def test_text_that_no_database_can_store_is_400(world, raw, where):
    """NUL and unpaired surrogates: PostgreSQL and UTF-8 refuse them, which used to be a 500."""
    before = snapshot(world.app)
    for op in WRITE_OPERATIONS:
        error = assert_rejected(send(op, world, raw), mentions=("nul",))
        assert error["details"][0]["field"].startswith(where.split(".")[0]), (op_id(op), error)
    assert snapshot(world.app) == before


@pytest.mark.parametrize("op", PAGINATED, ids=op_id)
def test_a_nul_in_a_query_parameter_is_400(world, op):
    for name in ("search", "status"):
        response = world.api.get(f"{url_for(op, world)}?{name}=a%00b")
        assert_rejected(response, mentions=(name, "nul"))


def test_a_bad_idempotency_key_is_400(world):
    before = snapshot(world.app)
    for key in ("k" * 256, "k" * 1000):
        response = world.api.post("/templates", json={"name": "x"}, headers={"Idempotency-Key": key})
        assert_rejected(response, mentions=("idempotency-key",))
    assert snapshot(world.app) == before


# --- Transactions ------------------------------------------------------------------------------------


def test_bulk_enrollment_enrolls_the_valid_items_and_reports_the_invalid_by_index(world):
    iid = world.ids["instance_id"]
    items = [
        {"contact": {"email": "good1@example.org"}},
        {"contact": {"email": "not an email"}},
        {"contact_id": "nope"},
        {"contact": {"email": "good2@example.org", "is_admin": True}},
        "just a string",
        {"contact": {"email": "good3@example.org"}},
        {"contact": {"email": "GOOD1@example.org"}},
        {"contact_id": str(uuid.uuid4())},
    ]
    response = world.api.post(f"/instances/{iid}/enrollments/bulk", json={"contacts": items})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["enrolled"] == 2 and data["contacts_created"] == 2
    reasons = {item["index"]: item["reason"] for item in data["invalid"]}
    assert sorted(reasons) == [1, 2, 3, 4, 6, 7]
    assert "email" in reasons[1] and "contact_id" in reasons[2] and "is_admin" in reasons[3]
    assert reasons[6] == "row 7 repeats row 1" and "not found" in reasons[7]
    emails = {
        e["contact"]["email"] for e in world.api.get(f"/instances/{iid}/enrollments?limit=100").get_json()["data"]
    }
    assert {"good1@example.org", "good3@example.org"} <= emails
    assert "good2@example.org" not in emails


def test_an_event_batch_with_one_malformed_event_writes_nothing(world):
    good = {"provider_event_id": "good", "type": "opened", "enrollment_id": world.ids["enrollment_id"]}
    before = snapshot(world.app)
    for bad in (
        {"provider_event_id": "bad", "type": "teleported", "enrollment_id": world.ids["enrollment_id"]},
        {"provider_event_id": "bad", "type": "sent"},
        "not an event",
        {**good, "provider_event_id": "bad", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
    ):
        response = world.api.post("/events/webhook", json={"events": [good, good | {"provider_event_id": "g2"}, bad]})
        error = assert_rejected(response)
        assert any(d["field"].startswith("events.2") for d in error["details"]), error
    assert snapshot(world.app) == before
    stored = world.api.post("/events/webhook", json={"events": [good]}).get_json()["data"]
    assert stored["stored"] == 1

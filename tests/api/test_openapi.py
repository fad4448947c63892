"""The OpenAPI document: public, valid 3.1, complete, and true to what the API does.

The last test fuzzes every operation in-process with schemathesis (all checks: no 5xx, only
documented status codes and content types, responses matching their schemas, invalid data
rejected, valid data accepted, auth enforced).
"""

import json
import re
import shutil
import uuid
from types import SimpleNamespace

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests import factories
from tests.conftest import PG_URL, ApiClient, make_config, make_persona
from webapp import create_app
from webapp.api.base import IDEMPOTENCY_KEY, check_json_values, registry
from webapp.api.openapi import PATH_PARAM
from webapp.errors import ValidationFailed
from webapp.extensions import db as _db
from webapp.models import Delivery, Task, utcnow
from webapp.schemas.common import EMAIL_PATTERN, check_json_limits, normalize_email

SPEC_URL = "/api/campaigns/v2/openapi.json"


def _spec_path(rule: str) -> str:
    return PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_document_is_public_and_json(client):
    response = client.get(SPEC_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    spec = response.get_json()
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"]


def test_the_document_loads_as_valid_openapi(app):
    schema = schemathesis.openapi.from_wsgi(SPEC_URL, app)
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises with the offending path
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert labels == {f"{op.method} {_spec_path(op.rule)}" for op in registry.operations}


def test_every_operation_is_documented_with_its_body_and_errors(client):
    spec = client.get(SPEC_URL).get_json()
    for op in registry.operations:
        entry = spec["paths"][_spec_path(op.rule)][op.method.lower()]
        assert entry["operationId"] == op.endpoint
        responses = entry["responses"]
        assert str(op.status) in responses, op.endpoint
        assert {"400", "413", "429"} <= set(responses), op.endpoint
        if op.auth:
            assert "401" in responses, op.endpoint
        if "<" in op.rule:
            assert "404" in responses, op.endpoint
        path_params = {p["name"] for p in entry["parameters"] if p["in"] == "path"}
        assert path_params == {m.group(2) for m in PATH_PARAM.finditer(op.rule)}
        if op.body is not None or op.raw_body:
            body = entry["requestBody"]
            assert body["required"] is not op.body_optional
            schema = _resolve(spec, body["content"]["application/json"]["schema"])
            alternatives = [_resolve(spec, s) for s in schema.get("anyOf", [schema])]
            for alternative in alternatives:
                assert alternative.get("type") == "object", op.endpoint
                assert alternative.get("additionalProperties") is False, op.endpoint
        else:
            assert "requestBody" not in entry, op.endpoint


def test_every_object_schema_in_a_request_forbids_unknown_fields(client):
    spec = client.get(SPEC_URL).get_json()
    request_models = {
        _resolve(spec, {"$ref": ref})["title"]
        for path in spec["paths"].values()
        for entry in path.values()
        for ref in _refs(entry.get("requestBody", {}))
    }
    seen: set[str] = set()
    todo = list(request_models)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        schema = spec["components"]["schemas"][name]
        if schema.get("type") == "object":
            assert schema.get("additionalProperties") is False, name
        todo.extend(ref.rsplit("/", 1)[1] for ref in _refs(schema))
    assert {"TemplateIn", "CampaignSettings", "SendWindow", "ContactData", "EventIn"} <= seen


def _refs(value) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for v in value.values() for ref in _refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _refs(v)]
    return []


def test_the_document_exposes_no_server_secrets(app, client):
    document = client.get(SPEC_URL).get_json()
    text = json.dumps(document).lower()
    for word in ("test-secret-key", app.config["ENCRYPTION_KEY"].lower(), "sqlite:", "postgresql"):
        assert word not in text
    # Passwords are write-only: request bodies take them, no response carries one.
    schemas = document["components"]["schemas"]
    with_password = {name for name, schema in schemas.items() if "password" in schema.get("properties", {})}
    assert with_password == {"SmtpIn", "SmtpUpdate", "ImapIn", "ImapUpdate"}


# --- Fuzzing -----------------------------------------------------------------------------------
#
# The schema is loaded at import time from an app without a database (the document needs none).
# The generated tests share one app with an API key and real objects, whose ids the fuzzer uses
# for path parameters half of the time; what one operation changes, the next one sees.

FUZZ_ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


def _fewer_zones(context, raw_schema):
    # The coverage phase sends every enum value; 600 zones per field would be 600 requests each.
    raw_schema["components"]["schemas"]["TimeZone"]["enum"] = FUZZ_ZONES


schemathesis.hook("before_load_schema")(_fewer_zones)
try:
    schema = schemathesis.openapi.from_wsgi(SPEC_URL, create_app(make_config("sqlite://")))
finally:
    GLOBAL_HOOK_DISPATCHER.unregister(_fewer_zones)
KNOWN: dict[str, list[dict]] = {}


@pytest.fixture(scope="module")
def fuzzed(migrated_url, tmp_path_factory):
    """One app with real objects for every fuzzed operation (a world per operation doubled the run)."""
    if PG_URL:
        url = migrated_url
    else:
        path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
        shutil.copy(migrated_url.removeprefix("sqlite:///"), path)
        url = f"sqlite:///{path}"
    app = create_app(make_config(url))
    owner = make_persona(app, "owner@acme.test", "Acme")
    _build_world(app, ApiClient(app.test_client(), owner), owner)
    yield SimpleNamespace(app=app, owner=owner)
    KNOWN.clear()
    with app.app_context():
        _db.session.remove()
        if PG_URL:
            with _db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {', '.join(t.name for t in _db.metadata.sorted_tables)} CASCADE"))
        _db.engine.dispose()


def _build_world(app, api, owner) -> None:
    template = factories.template(api, steps=2, linkedin=True)
    spare = factories.template(api, steps=1)
    instance = factories.instance(api, template_data=template, status="active")
    draft = factories.instance(api, template_data=spare)
    factories.enroll(api, instance["id"], n=3)
    factories.enroll(api, draft["id"], n=2, start=10)
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    contacts = api.get("/contacts").get_json()["data"]
    api.post(
        "/events/webhook",
        json={"events": [{"provider_event_id": "seed-1", "type": "opened", "enrollment_id": enrollments[0]["id"]}]},
    )
    # The campaign runs on its own copy of the template's steps (taken at launch).
    campaign_steps = api.get(f"/instances/{instance['id']}/steps").get_json()["data"]["steps"]
    steps = {s["channel"]: s["id"] for s in campaign_steps}
    with app.app_context():  # what the worker would have left: an open task and an unknown delivery
        task = Task(
            workspace_id=owner.workspace_id,
            enrollment_id=uuid.UUID(enrollments[0]["id"]),
            step_id=uuid.UUID(steps["linkedin"]),
            type="connection_request",
            due_at=utcnow(),
        )
        delivery = Delivery(
            workspace_id=owner.workspace_id,
            enrollment_id=uuid.UUID(enrollments[1]["id"]),
            step_id=uuid.UUID(steps["email"]),
            status="unknown",
        )
        _db.session.add_all([task, delivery])
        _db.session.commit()
        task_id, delivery_id = str(task.id), str(delivery.id)
        _db.session.remove()
    KNOWN.clear()
    KNOWN.update(
        {
            "template_id": [{"template_id": t["id"]} for t in (template, spare)],
            "instance_id": [{"instance_id": i["id"]} for i in (instance, draft)],
            "enrollment_id": [{"enrollment_id": e["id"]} for e in enrollments],
            "contact_id": [{"contact_id": c["id"]} for c in contacts],
            "workspace_id": [{"workspace_id": str(owner.workspace_id)}],
            "task_id": [{"task_id": task_id}],
            "delivery_id": [{"delivery_id": delivery_id}],
            "campaign_step": [{"instance_id": instance["id"], "step_id": s["id"]} for s in campaign_steps],
            **{
                channel: [
                    {"template_id": template["id"], "step_id": s["id"]}
                    for s in template["steps"]
                    if s["channel"] == channel
                ]
                for channel in ("email", "linkedin")
            },
        }
    )


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters or not KNOWN or not all(_is_uuid(v) for v in path_parameters.values()):
        return st.just(path_parameters)
    if "step_id" in path_parameters and "instance_id" in path_parameters:
        key = "campaign_step"
    elif "step_id" in path_parameters:
        key = "linkedin" if "/linkedin/" in context.operation.path else "email"
    else:
        (key,) = path_parameters
    if key not in KNOWN:  # a new kind of id: random ids only, until the world has one
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.sampled_from(KNOWN[key]))


@schema.hook
def filter_body(context, body):
    """Leave out requests that break a rule JSON Schema cannot express, stated in the descriptions:
    a send window's start and end differ; free-form JSON is small, shallow and without NUL; an
    internationalised email domain is a valid IDN."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            window = item.get("send_window")
            if isinstance(window, dict) and "start" in window and window.get("start") == window.get("end"):
                return False
            for key in ("custom_fields", "metadata"):
                if isinstance(item.get(key), dict) and not _free_form_ok(item[key]):
                    return False
            for key in ("email", "from_email"):
                if isinstance(item.get(key), str) and not _idn_ok(item[key]):
                    return False
            stack.extend(item.values())
    return True


def _free_form_ok(value: dict) -> bool:
    try:
        check_json_limits(value)
        check_json_values(value)
    except (ValueError, ValidationFailed):
        return False
    return True


def _idn_ok(email: str) -> bool:
    """False for an address the pattern lets through but whose domain is no valid IDN."""
    if not re.fullmatch(EMAIL_PATTERN, email):
        return True
    try:
        normalize_email(email)
    except ValueError:
        return False
    return True


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schema.parametrize()
@hypothesis.settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_matches_its_document(case, fuzzed):
    app, owner = fuzzed.app, fuzzed.owner
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and IDEMPOTENCY_KEY.fullmatch(key):
        # A replayed key with another body is a documented 422; the fuzzer would reuse keys.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if case.operation.path.endswith("/enrollments/bulk"):
        # By contract, invalid items do not fail the request: they come back in `invalid`.
        response = case.call(app=app, headers=owner.headers)
        case.validate_response(response, headers=owner.headers, excluded_checks=[negative_data_rejection])
        if case.method == "POST" and case.meta.generation.mode.is_negative and response.status_code == 200:
            assert response.json()["data"]["invalid"], "a schema-violating bulk request was accepted whole"
        return
    case.call_and_validate(app=app, headers=owner.headers)

"""Logs: one JSON object per line, a request id per request, and no secrets or email addresses."""

import io
import json
import logging
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import structlog

from webapp import create_app
from webapp.extensions import db
from webapp.webhooks import standard


class Logs:
    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def text(self) -> str:
        """The raw output, and the same records decoded (JSON escapes non-ASCII characters)."""
        raw = self.stream.getvalue()
        return raw + "\n" + "\n".join(json.dumps(record, ensure_ascii=False) for record in self.records())

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def requests(self) -> list[dict]:
        return [r for r in self.records() if r["event"] == "request"]

    def assert_absent(self, *secrets: str) -> None:
        text = self.text
        assert self.records(), "nothing was logged"
        for secret in secrets:
            assert secret not in text


def drumbeat_handler() -> logging.StreamHandler:
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_drumbeat", False)]
    return handler


@pytest.fixture
def logs(app):
    """What the app's log handler (the one on stderr) writes, captured."""
    handler = drumbeat_handler()
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield Logs(stream)
    handler.setStream(previous)


@pytest.fixture
def boom(app):
    """GET /api/test/boom raises with `message`."""
    raised = {}

    def view():
        raise RuntimeError(raised["message"])

    app.add_url_rule("/api/test/boom", "boom", view)

    def set_message(message: str) -> str:
        raised["message"] = message
        return "/api/test/boom"

    return set_message


def test_it_logs_one_json_object_per_line_on_stderr(app, api, logs):
    api.get("/templates")
    api.get("/templates/not-a-uuid")
    structlog.get_logger("drumbeat.test").info("structured", campaign="Q4")
    logging.getLogger("drumbeat.test").warning("stdlib %s", "formatted")

    records = logs.records()
    assert len(records) >= 4
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys()
    assert {"event": "structured", "campaign": "Q4", "level": "info"}.items() <= records[-2].items()
    assert {"event": "stdlib formatted", "level": "warning"}.items() <= records[-1].items()


def test_the_lines_go_to_stderr(capsys, app_config):
    app = create_app(app_config)
    try:
        app.test_client().get("/healthz")
        captured = capsys.readouterr()
    finally:
        drumbeat_handler().setStream(sys.stderr)
        with app.app_context():
            db.engine.dispose()

    assert json.loads(captured.err.splitlines()[-1])["path"] == "/healthz"
    assert captured.out == ""


def test_each_request_is_logged_with_the_request_id_it_returns(api, logs):
    first = api.get("/templates")
    second = api.get("/templates/not-a-uuid")

    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert ids[0] != ids[1]
    logged = logs.requests()
    assert [r["request_id"] for r in logged] == ids
    assert logged[0]["method"] == "GET"
    assert logged[0]["path"] == "/api/campaigns/v2/templates"
    assert [r["status"] for r in logged] == [200, 404]
    assert logged[0]["duration_ms"] >= 0


def test_every_record_of_a_request_carries_its_id(api, logs, boom):
    response = api.get(boom("kaboom"))

    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert response.get_json()["message"] == "An unexpected error occurred."
    assert {r["request_id"] for r in logs.records()} == {request_id}
    assert len(logs.records()) == 2


def test_a_valid_incoming_request_id_is_reused_and_an_invalid_one_replaced(api, logs):
    reused = api.get("/templates", headers={"X-Request-ID": "lb-7f3a.42_x"})
    replaced = api.get("/templates", headers={"X-Request-ID": 'x", "level": "critical'})
    too_long = api.get("/templates", headers={"X-Request-ID": "a" * 65})

    assert reused.headers["X-Request-ID"] == "lb-7f3a.42_x"
    assert len(replaced.headers["X-Request-ID"]) == 32
    assert len(too_long.headers["X-Request-ID"]) == 32
    assert [r["request_id"] for r in logs.requests()] == [
        "lb-7f3a.42_x",
        replaced.headers["X-Request-ID"],
        too_long.headers["X-Request-ID"],
    ]


def test_api_keys_never_reach_the_logs(app, api, client, owner, logs, boom):
    key = owner.api_key
    secret = key.rsplit("_", 1)[1]
    wrong = key[: -len(secret)] + "f" * len(secret)
    assert api.get("/templates").status_code == 200
    assert client.get("/api/campaigns/v2/templates", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/api/campaigns/v2/templates", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    assert client.get("/api/campaigns/v2/templates", headers={"X-API-Key": "not-a-key-at-all"}).status_code == 401
    assert api.get(boom(f"upstream rejected {key}")).status_code == 500
    logging.getLogger("drumbeat.test").info("got key %s", key, extra={"header": f"Bearer {key}", "raw": key.encode()})
    structlog.get_logger("drumbeat.test").info("auth", api_key=key, presented=[wrong])

    logs.assert_absent(key, secret, wrong, wrong.rsplit("_", 1)[1], "not-a-key-at-all")
    assert "Traceback" in logs.text
    assert f"upstream rejected {key.rsplit('_', 1)[0]}_[REDACTED]" in logs.text


def test_passwords_never_reach_the_logs(app, owner, logs):
    from webapp.services.users import authenticate_user

    runner = app.test_cli_runner()
    short = "Sh0rt!"
    result = runner.invoke(
        args=["users", "create", "--email", "new@acme.test", "--password", short, "--workspace", "X"]
    )
    assert result.exit_code != 0
    with app.app_context():
        assert authenticate_user(owner.email, "Wr0ng-Passw0rd-xyz") is None
        assert authenticate_user(owner.email, owner.password) is not None
        assert authenticate_user("nobody@acme.test", "An0ther-Passw0rd") is None
    logging.getLogger("drumbeat.test").info("login with password=Wr0ng-Passw0rd-xyz", extra={"password": short})

    logs.assert_absent(short, "Wr0ng-Passw0rd-xyz", owner.password, "An0ther-Passw0rd")
    assert short not in result.output


def test_webhook_secrets_and_signatures_never_reach_the_logs(app, client, owner, logs):
    with app.app_context():
        secret = owner.workspace.webhook_secret
    body = json.dumps({"provider_event_id": "e1", "type": "opened", "enrollment_id": str(uuid.uuid4())}).encode()
    timestamp = int(time.time())
    signature = standard.sign(secret, "msg_1", timestamp, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(timestamp), "content-type": "application/json"}
    url = f"/api/campaigns/v2/events/webhook/{owner.workspace_id}"

    good = client.post(url, data=body, headers={**headers, "webhook-signature": signature})
    bad = client.post(url, data=body, headers={**headers, "webhook-signature": signature[:-6] + "AAAAA="})
    logging.getLogger("drumbeat.test").warning(f"verify {signature} with {secret}", extra={"secret": secret})
    structlog.get_logger("drumbeat.test").info("webhook", headers={"webhook-signature": signature}, note=secret)

    assert good.status_code == 200, good.get_json()
    assert bad.status_code == 401
    logs.assert_absent(secret, secret.removeprefix("whsec_"), signature, signature.removeprefix("v1,"))


def test_email_addresses_are_masked(api, logs, boom):
    response = api.get(boom("could not send to alice.smith@example.org (jörg.müller@example.org)"))
    assert response.status_code == 500
    created = api.post("/contacts", json={"email": "Bob.Jones@Example.org", "first_name": "Bob"})
    duplicate = api.post("/contacts", json={"email": "bob.jones@example.org"})
    structlog.get_logger("drumbeat.test").info("imported", contacts=["carol@example.org"], by="dave@example.org")

    assert created.status_code == 201
    assert duplicate.status_code == 409
    assert "bob.jones@example.org" in duplicate.get_json()["message"]
    logs.assert_absent("alice.smith@", "jörg.müller@", "müller@", "bob.jones@", "Bob.Jones@", "carol@", "dave@")
    refused = [r for r in logs.records() if r["event"] == "request refused"]
    assert refused and refused[-1]["status"] == 409
    assert "b***@example.org" in refused[-1]["reason"]
    assert "a***@example.org" in logs.text
    assert "j***@example.org" in logs.text


def test_failed_sql_keeps_its_parameters_out_of_the_logs(app, api, owner, logs):
    def insert_duplicate():
        from webapp.models import User

        now = datetime.now(UTC)
        db.session.execute(
            sa.insert(User).values(
                id=uuid.uuid4(),
                workspace_id=owner.workspace_id,
                email=owner.email,
                password_hash="$argon2id$S3cr3tHash",
                role="member",
                session_version=1,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )

    app.add_url_rule("/api/test/sql", "sql", insert_duplicate)

    response = api.get("/api/test/sql")

    assert response.status_code == 500
    assert "IntegrityError" in logs.text
    logs.assert_absent("S3cr3tHash", str(owner.workspace_id), owner.email)


def test_tokens_in_tracking_and_unsubscribe_paths_are_not_logged(app, client, logs):
    token = "eyJlbnJvbGxtZW50IjoiMTIzIn0.Zm9vYmFyYmF6"
    app.add_url_rule("/u/<token>", "test_unsubscribe", lambda token: "ok")
    app.add_url_rule("/t/c/<token>", "test_click", lambda token: "ok")

    client.get(f"/u/{token}")
    client.get(f"/t/c/{token}")

    assert [r["path"] for r in logs.requests()] == ["/u/[REDACTED]", "/t/c/[REDACTED]"]
    logs.assert_absent(token)

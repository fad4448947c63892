"""Health endpoints, and the API when the database is unreachable or drops its connections."""

import re
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, make_config
from webapp import create_app
from webapp.extensions import db

API = "/api/campaigns/v2"
SOME_KEY = "dbk_0123456789ab_" + "0" * 48


def unreachable_url(tmp_path) -> str:
    if PG_URL:
        return "postgresql+psycopg://postgres@127.0.0.1:1/none"
    return f"sqlite:///{tmp_path / 'no-such-directory' / 'drumbeat.db'}"


@pytest.fixture
def down_app(tmp_path):
    """An app whose database does not answer."""
    app = create_app(make_config(unreachable_url(tmp_path), DATABASE_CONNECT_TIMEOUT=1))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def assert_unavailable(response):
    assert response.status_code == 503, (response.request.method, response.request.path, response.get_data())
    body = response.get_json()
    assert body["success"] is False
    assert body["statusCode"] == 503
    assert body["error"] == "Service Unavailable"
    assert response.headers["Retry-After"]


def calls(app, *, api: bool):
    """Every rule (of the API, or outside it) with every method, path parameters filled with a UUID."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/") != api or rule.endpoint in ("api.openapi_json", "static"):
            continue
        path = re.sub(r"<[^>]+>", lambda _: str(uuid.uuid4()), rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_healthz_answers_whether_or_not_the_database_does(client, down_app):
    for app_client in (client, down_app.test_client()):
        response = app_client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {"success": True, "data": {"status": "ok"}}


def test_readyz_is_200_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["data"]["status"] == "ready"


def test_readyz_is_503_with_the_envelope_when_the_database_is_down(down_app):
    assert_unavailable(down_app.test_client().get("/readyz"))


def test_every_api_call_is_503_not_500_when_the_database_is_down(down_app):
    client = down_app.test_client()
    api_calls = list(calls(down_app, api=True))
    assert len(api_calls) > 20
    for method, path in api_calls:
        assert_unavailable(client.open(path, method=method, json={}, headers={"Authorization": f"Bearer {SOME_KEY}"}))


def test_no_page_or_callback_answers_500_when_the_database_is_down(down_app):
    client = down_app.test_client()
    for method, path in calls(down_app, api=False):
        response = client.open(path, method=method, json={})
        assert response.status_code != 500, (method, path)
        if response.status_code == 503:
            assert response.headers["Retry-After"]


def test_the_openapi_document_needs_no_database(down_app):
    assert down_app.test_client().get(f"{API}/openapi.json").status_code == 200


@pytest.mark.postgres
def test_it_recovers_when_the_server_drops_its_connections(app, api, database_url_for_test):
    assert api.get("/templates").status_code == 200
    assert api.get("/readyz").status_code == 200
    with app.app_context():
        in_pool = db.engine.pool.checkedin()
    assert in_pool >= 1

    killer = sa.create_engine(database_url_for_test, poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    killer.dispose()
    assert killed >= 1

    assert api.get("/templates").status_code == 200
    assert api.post("/templates", json={"name": "After the restart"}).status_code == 201
    assert api.get("/readyz").status_code == 200


@pytest.mark.postgres
def test_connections_to_postgresql_give_up_after_the_connect_timeout(app):
    with app.app_context(), db.engine.connect() as conn:
        parameters = conn.connection.dbapi_connection.info.get_parameters()
    assert parameters["connect_timeout"] == str(app.config["DATABASE_CONNECT_TIMEOUT"])

"""Fixtures. The schema always comes from the migrations.

On SQLite each test gets a copy of a freshly migrated database file; on PostgreSQL
(TEST_DATABASE_URL) the tables are emptied after each test. Either way, services commit
for real, so tests see exactly what users would.
"""

import contextlib
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from webapp import create_app
from webapp.config import TestConfig, database_url
from webapp.extensions import db as _db

PG_URL = os.environ.get("TEST_DATABASE_URL")
pytest_plugins = ["tests.smtp_sink", "tests.pg_cluster", "tests.imap_server"]


def _cache_url_builders() -> None:
    """Every test builds an app, and 70 of the 80 ms that takes are werkzeug compiling the same
    URL builders again (Python code generated per rule). A builder depends only on its rule's
    parsed parts and defaults, never on the app: compile each once per test process."""
    from werkzeug.routing.rules import Rule

    compile_builder, cache = Rule._compile_builder, {}

    def cached(self, append_unknown=True):
        defaults = tuple(sorted((key, repr(value)) for key, value in (self.defaults or {}).items()))
        key = (self.rule, self.host, self.subdomain, tuple(self._trace), defaults, append_unknown)
        if key not in cache:
            cache[key] = compile_builder(self, append_unknown)
        return cache[key]

    Rule._compile_builder = cached


_cache_url_builders()


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (runs only when TEST_DATABASE_URL is set)")


def pytest_collection_modifyitems(config, items):
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def make_config(url: str, **overrides) -> type[TestConfig]:
    return type("Config", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": url, **overrides})


@contextlib.contextmanager
def scratch_postgres_database(base_url: str):
    """A new database beside TEST_DATABASE_URL's, dropped afterwards: concurrent runs don't collide."""
    base = sa.engine.make_url(database_url(base_url))
    name = f"{base.database}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_url(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        if PG_URL:
            url = stack.enter_context(scratch_postgres_database(PG_URL))
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'template.db'}"
        app = create_app(make_config(url))
        with app.app_context():
            upgrade()
            _db.engine.dispose()
        yield url


@pytest.fixture
def database_url_for_test(migrated_url, tmp_path) -> str:
    if PG_URL:
        return migrated_url
    path = tmp_path / "test.db"
    shutil.copy(migrated_url.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def app_config(database_url_for_test):
    """Override in a test module to change settings (e.g. rate limits)."""
    return make_config(database_url_for_test)


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    yield app
    with app.app_context():
        _db.session.remove()
        if PG_URL:  # DELETE, children first: ten times cheaper than TRUNCATE for a test's few rows
            with _db.engine.begin() as conn:
                for table in reversed(_db.metadata.sorted_tables):
                    conn.execute(table.delete())
        _db.engine.dispose()


@pytest.fixture
def ctx(app):
    """An application context for calling services directly."""
    with app.app_context():
        yield


@pytest.fixture
def db(ctx):
    return _db


@dataclass
class Persona:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    password: str
    api_key: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def workspace(self):
        from webapp.models import Workspace

        return _db.session.get(Workspace, self.workspace_id)


def make_persona(app, email: str, workspace: str, password: str = "correct horse battery") -> Persona:
    from webapp.services.api_keys import create_api_key_for_user
    from webapp.services.users import create_user

    with app.app_context():
        user = create_user(email=email, password=password, workspace_name=workspace)
        _, key = create_api_key_for_user(email=email, name="tests")
        return Persona(user.workspace_id, user.id, user.email, password, key)


@pytest.fixture
def owner(app) -> Persona:
    return make_persona(app, "owner@acme.test", "Acme")


@pytest.fixture
def teammate(app, owner) -> Persona:
    return make_persona(app, "teammate@acme.test", "Acme")


@pytest.fixture
def outsider(app) -> Persona:
    return make_persona(app, "outsider@globex.test", "Globex")


class ApiClient:
    """The test client, speaking JSON to /api/campaigns/v2 with a persona's key."""

    prefix = "/api/campaigns/v2"

    def __init__(self, client, persona: Persona | None):
        self.client = client
        self.persona = persona

    def request(self, method: str, path: str, json=None, headers=None, **kwargs):
        all_headers = dict(self.persona.headers if self.persona else {})
        all_headers.update(headers or {})
        url = path if path.startswith(("/api/", "/readyz", "/healthz")) else self.prefix + path
        return self.client.open(url, method=method, json=json, headers=all_headers, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def as_(self, persona: Persona | None) -> "ApiClient":
        return ApiClient(self.client, persona)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client, owner) -> ApiClient:
    return ApiClient(client, owner)

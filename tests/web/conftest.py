"""Browser-side helpers: CSRF tokens from pages, signing personas in through the real form, and
the signed-in owner's client with counters for what a request stored."""

import re

import pytest
import sqlalchemy as sa

from tests.conftest import ApiClient
from webapp.extensions import db

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token a page hands to this client (from its <meta name="csrf-token">)."""
    response = client.get(path)
    match = CSRF_META.search(response.get_data(as_text=True))
    assert match, f"no csrf-token meta on {path} ({response.status_code})"
    return match.group(1)


def sign_in(client, persona, password: str | None = None, **form):
    data = {"email": persona.email, "password": password or persona.password, "csrf_token": csrf_token(client)}
    return client.post("/login", data={**data, **form})


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


@pytest.fixture
def login(client):
    """`login(persona)` signs the persona in on the test client."""

    def _login(persona):
        response = sign_in(client, persona)
        assert response.status_code == 303, response.get_data(as_text=True)
        return client

    return _login


@pytest.fixture
def owner_api(app, owner) -> ApiClient:
    """The owner's API client, to set up what a page then shows."""
    return ApiClient(app.test_client(), owner)


@pytest.fixture
def browser(client, owner, login):
    """The test client, signed in as the workspace owner."""
    login(owner)
    return client


def scalar(app, query):
    with app.app_context():
        return db.session.scalar(query)


def count(app, model, *where) -> int:
    return scalar(app, sa.select(sa.func.count()).select_from(model).where(*where))

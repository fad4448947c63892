"""Signing in and out: credentials, sessions that really end, CSRF, safe redirects, rate limits."""

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import make_config
from tests.web.conftest import csrf_token, session_cookie, sign_in
from webapp.extensions import db
from webapp.models import User
from webapp.services.users import change_password
from webapp.web.auth import INVALID_CREDENTIALS


def replay(app, cookie: str):
    """A fresh client (another browser) presenting a captured session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def assert_sent_to_login(response):
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")


def test_the_login_page_has_a_labelled_form_with_a_csrf_token(client):
    response = client.get("/login")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label class="field__label" for="email">Email</label>' in html
    assert '<label class="field__label" for="password">Password</label>' in html
    assert 'name="csrf_token"' in html
    assert 'autocomplete="current-password"' in html


def test_it_signs_in_and_lands_on_the_overview(client, owner):
    response = sign_in(client, owner)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Acme" in page.get_data(as_text=True)


def test_a_wrong_password_shows_the_form_again_with_422(client, owner):
    response = sign_in(client, owner, password="not the password")

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert INVALID_CREDENTIALS in html
    assert 'role="alert"' in html
    assert 'value="owner@acme.test"' in html
    assert "not the password" not in html
    assert client.get("/").status_code == 303


def _normalised(html: str) -> str:
    html = re.sub(r'(name="csrf_token"[^>]*value|content)="[^"]*"', r'\1=""', html)
    return re.sub(r'name="email"([^>]*)value="[^"]*"', r'name="email"\1value=""', html)


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(app, owner):
    known = sign_in(app.test_client(), owner, password="not the password")
    unknown_client = app.test_client()
    unknown = unknown_client.post(
        "/login",
        data={"email": "nobody@acme.test", "password": "not the password", "csrf_token": csrf_token(unknown_client)},
    )

    assert known.status_code == unknown.status_code == 422
    assert _normalised(known.get_data(as_text=True)) == _normalised(unknown.get_data(as_text=True))


def test_an_empty_form_is_422_with_errors_beside_the_fields(client):
    response = client.post("/login", data={"csrf_token": csrf_token(client)})

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="email-error"' in html
    assert '<ul class="field__errors" id="email-error">' in html
    assert "Enter your email address." in html


def test_the_form_is_a_fragment_for_htmx(client, owner):
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": owner.email, "password": "nope", "csrf_token": token},
        headers={"HX-Request": "true"},
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert html.lstrip().startswith('<form id="login-form"')
    assert "<html" not in html


def test_htmx_sign_in_navigates_with_hx_redirect(client, owner):
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": owner.email, "password": owner.password, "csrf_token": token},
        headers={"HX-Request": "true"},
    )

    assert response.headers["HX-Redirect"] == "/"


def test_it_follows_a_same_site_next(client, owner):
    response = sign_in(client, owner, next="/contacts?page=2")

    assert response.headers["Location"] == "/contacts?page=2"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.test/",
        "https://evil.test/",
        "http:evil.test",
        "/\\evil.test",
        "\\\\evil.test",
        "/\t/evil.test",
        "javascript:alert(1)",
        "evil.test",
        "",
    ],
)
def test_an_off_site_next_is_ignored(client, owner, target):
    response = sign_in(client, owner, next=target)

    assert response.headers["Location"] == "/"


def test_a_protected_page_sends_the_browser_to_login_with_next(client, owner):
    response = client.get("/?tab=1")

    assert_sent_to_login(response)
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/?tab=1"]}


def test_a_signed_in_user_visiting_login_goes_to_the_overview(client, owner, login):
    login(owner)

    response = client.get("/login")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_signing_in_starts_a_fresh_session(client, owner):
    token_before_login = csrf_token(client)
    cookie_before_login = session_cookie(client)
    sign_in(client, owner)

    assert session_cookie(client) != cookie_before_login
    # Nothing of the pre-login session survives: its CSRF token is no longer accepted.
    response = client.post("/logout", data={"csrf_token": token_before_login})
    assert response.status_code == 400
    assert client.get("/").status_code == 200


def test_logout_ends_the_session_even_for_a_replayed_cookie(app, client, owner, login):
    login(owner)
    captured = session_cookie(client)
    assert replay(app, captured).get("/").status_code == 200

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert_sent_to_login(client.get("/"))
    assert_sent_to_login(replay(app, captured).get("/"))
    htmx = replay(app, captured).get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/login")


def test_logout_says_so_on_the_login_page(client, owner, login):
    login(owner)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert "You are signed out." in client.get("/login").get_data(as_text=True)


def test_a_password_change_ends_every_session(app, client, owner, login):
    login(owner)
    captured = session_cookie(client)

    with app.app_context():
        change_password(db.session.get(User, owner.user_id), password="a brand new password")

    assert_sent_to_login(client.get("/"))
    assert_sent_to_login(replay(app, captured).get("/"))
    assert sign_in(app.test_client(), owner, password="a brand new password").status_code == 303


def test_a_disabled_user_is_signed_out_on_the_next_request(app, client, owner, login):
    login(owner)

    with app.app_context():
        db.session.get(User, owner.user_id).is_active = False
        db.session.commit()

    assert_sent_to_login(client.get("/"))
    assert sign_in(app.test_client(), owner).status_code == 422


@pytest.mark.parametrize("cookie_id", ["garbage", "", "1:1", "00000000-0000-0000-0000-000000000000:x"])
def test_a_malformed_session_id_is_anonymous(app, client, owner, cookie_id):
    with client.session_transaction() as session:
        session["_user_id"] = cookie_id

    assert_sent_to_login(client.get("/"))


def test_login_without_a_csrf_token_is_400(client, owner):
    response = client.post("/login", data={"email": owner.email, "password": owner.password})

    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/").status_code == 303


def test_logout_without_a_csrf_token_is_400_and_keeps_the_session(client, owner, login):
    login(owner)

    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200


def test_logout_accepts_the_csrf_header_htmx_sends(client, owner, login):
    login(owner)
    token = csrf_token(client, "/")

    response = client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token})

    assert response.headers["HX-Redirect"] == "/login"
    assert_sent_to_login(client.get("/"))


def test_logout_is_post_only(client, owner, login):
    login(owner)

    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_a_failed_login_logs_a_masked_email_and_never_the_password(client, owner, caplog):
    caplog.set_level(logging.INFO, logger="drumbeat.auth")

    sign_in(client, owner, password="hunter2-secret-guess")

    records = [r for r in caplog.records if r.name == "drumbeat.auth"]
    assert [r.getMessage() for r in records] == ["login failed"]
    assert records[0].email == "o***@acme.test"
    dumped = " ".join(str(vars(r)) for r in caplog.records)
    assert "hunter2-secret-guess" not in dumped
    assert "owner@acme.test" not in dumped


def test_a_password_typed_into_the_email_field_is_not_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="drumbeat.auth")

    client.post("/login", data={"email": "MyS3cretPass!", "password": "x" * 9, "csrf_token": csrf_token(client)})

    assert "MyS3cretPass!" not in " ".join(str(vars(r)) for r in caplog.records)


class TestRateLimit:
    @pytest.fixture
    def app_config(self, database_url_for_test):
        return make_config(
            database_url_for_test,
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI="memory://",
            RATELIMIT_LOGIN="3 per minute",
        )

    def test_login_attempts_are_limited_per_address(self, client, owner):
        token = csrf_token(client)
        attempts = [
            client.post("/login", data={"email": f"user{n}@acme.test", "password": "wrong-pass", "csrf_token": token})
            for n in range(4)
        ]

        assert [r.status_code for r in attempts] == [422, 422, 422, 429]
        assert "Too many requests" in attempts[-1].get_data(as_text=True)
        assert "Retry-After" in attempts[-1].headers

    def test_one_account_is_limited_across_addresses(self, app, owner):
        statuses = []
        for n in range(4):
            client = app.test_client()
            address = {"REMOTE_ADDR": f"10.0.0.{n + 1}"}
            page = client.get("/login", environ_base=address)
            token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
            data = {"email": owner.email, "password": "wrong-pass", "csrf_token": token}
            statuses.append(client.post("/login", data=data, environ_base=address).status_code)

        assert statuses == [422, 422, 422, 429]

    def test_showing_the_form_is_not_limited(self, client):
        assert {client.get("/login").status_code for _ in range(6)} == {200}

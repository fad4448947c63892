"""The HTML channel's plumbing: fragments vs pages, htmx auth redirects, headers, CSP, error pages."""

import re
from pathlib import Path

import pytest
from flask import render_template_string
from sqlalchemy.exc import OperationalError

from webapp.errors import error_response
from webapp.extensions import db
from webapp.htmx import hx_redirect, is_htmx
from webapp.security import safe_next

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ERROR_STATUSES = [400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"HX-Request": "true"}, True),
        ({"HX-Request": "false"}, False),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
        ({"HX-Request": "true", "HX-Boosted": "true"}, False),
    ],
)
def test_is_htmx_only_for_fragment_requests(app, headers, expected):
    with app.test_request_context("/", headers=headers):
        assert is_htmx() is expected


def test_htmx_gets_the_block_and_browsers_the_page(client):
    page = client.get("/login")
    fragment = client.get("/login", headers={"HX-Request": "true"})

    assert page.get_data(as_text=True).startswith("<!doctype html>")
    assert fragment.get_data(as_text=True).lstrip().startswith('<form id="login-form"')
    assert "HX-Request" in page.headers["Vary"]
    assert "HX-Request" in fragment.headers["Vary"]


@pytest.mark.parametrize("extra", [{"HX-History-Restore-Request": "true"}, {"HX-Boosted": "true"}])
def test_history_restores_and_boosted_links_get_the_whole_page(client, extra):
    response = client.get("/login", headers={"HX-Request": "true", **extra})

    assert response.get_data(as_text=True).startswith("<!doctype html>")


def test_hx_redirect_navigates_htmx_and_303s_browsers(app):
    with app.test_request_context("/", headers={"HX-Request": "true"}):
        htmx = hx_redirect("/contacts")
    with app.test_request_context("/"):
        browser = hx_redirect("/contacts")

    assert htmx.headers["HX-Redirect"] == "/contacts"
    assert "Location" not in htmx.headers
    assert (browser.status_code, browser.headers["Location"]) == (303, "/contacts")


def test_an_anonymous_htmx_request_gets_401_and_a_login_redirect(client):
    response = client.get(
        "/", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/contacts?q=ann"}, follow_redirects=False
    )

    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/contacts?q%3Dann"
    assert response.get_data() == b""


def test_an_anonymous_htmx_request_from_another_origin_does_not_carry_next(client):
    response = client.get("/", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.test/x"})

    assert response.headers["HX-Redirect"] == "/login"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/contacts", "/contacts"),
        ("/contacts?page=2#top", "/contacts?page=2#top"),
        ("//evil.test", "/"),
        ("/\\evil.test", "/"),
        ("https://evil.test", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
    ],
)
def test_safe_next_keeps_only_same_site_paths(target, expected):
    assert safe_next(target) == expected


def assert_common_headers(response):
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_html_pages_carry_the_strict_policy(client):
    response = client.get("/login")

    csp = response.headers["Content-Security-Policy"]
    assert_common_headers(response)
    assert csp == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "Strict-Transport-Security" not in response.headers


def test_json_responses_carry_the_tight_policy(client):
    for response in (client.get("/healthz"), client.get("/api/campaigns/v2/templates")):
        assert_common_headers(response)
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_error_pages_carry_the_headers_too(client):
    response = client.get("/no-such-page")

    assert_common_headers(response)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_hsts_is_sent_over_https_only(client):
    response = client.get("/login", base_url="https://localhost")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_the_nonce_appears_in_the_policy_only_when_a_template_uses_it(app, client):
    @app.get("/test-nonce")
    def with_nonce():
        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>{{ csp_nonce() }}')

    response = client.get("/test-nonce")

    first, second = re.findall(r"[A-Za-z0-9_-]{20,}", response.get_data(as_text=True))
    assert first == second
    assert f"script-src 'self' 'nonce-{first}';" in response.headers["Content-Security-Policy"]
    assert "nonce-" not in client.get("/login").headers["Content-Security-Policy"]


def test_signed_in_pages_are_never_stored(client, owner, login):
    login(owner)

    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_the_overview_shows_the_workspace_and_navigation(client, owner, login):
    login(owner)

    html = client.get("/").get_data(as_text=True)

    assert '<p class="workspace-name"><span class="visually-hidden">Workspace: </span>Acme</p>' in html
    for href in ("/templates", "/campaigns", "/contacts", "/tasks", "/settings"):
        assert f'href="{href}"' in html
    assert '<a class="site-nav__link" href="/" aria-current="page">Overview</a>' in html
    assert '<form class="logout-form" method="post" action="/logout">' in html
    assert 'class="skip-link" href="#main"' in html


def test_an_unknown_html_path_renders_the_404_page(client):
    response = client.get("/no-such-page")

    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in html
    assert 'data-error-page="404"' in html


def test_an_unknown_api_path_stays_json(client):
    response = client.get("/api/campaigns/v2/no-such-thing")

    assert response.status_code in (401, 404)
    assert response.get_json()["success"] is False


@pytest.mark.parametrize("status", ERROR_STATUSES)
def test_every_error_page_renders(app, status):
    with app.test_request_context("/somewhere"):
        response = error_response(status, "Some Error", "A message for the user.")

    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert f"Error {status}" in html
    assert '<main id="main"' in html
    assert "<script" not in html


def test_templates_have_no_inline_scripts_styles_or_handlers():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        # JSON data blocks (chart configs) are never executed, so the CSP allows them.
        inline_script = r"<script(?![^>]*\s(?:src=|type=\"application/json\"))"
        for pattern in (r"<style", r"\sstyle=", inline_script, r"\son[a-z]+=", r"hx-on", r"hx-vars"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(TEMPLATES)}: {pattern}")
    assert offenders == []


def test_every_input_has_a_label(client):
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    html = client.post("/login", data={"csrf_token": token}).get_data(as_text=True)
    assert 'aria-invalid="true"' in html

    for match in re.finditer(r"<input [^>]*>", html):
        tag = match.group(0)
        if 'type="hidden"' in tag:
            continue
        field_id = re.search(r'\sid="([^"]+)"', tag).group(1)
        assert f'for="{field_id}"' in html, tag


def test_the_htmx_config_swaps_422_and_keeps_csp_clean(client):
    html = client.get("/login").get_data(as_text=True)

    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html).group(1)
    assert '"includeIndicatorStyles": false' in config
    assert '"allowEval": false' in config
    assert '{"code":"422","swap":true}' in config
    assert '<meta name="csrf-token" content="' in html
    assert 'src="/static/vendor/htmx.org-2.0.11/htmx.min.js"' in html


def test_static_assets_are_served_with_their_hash(client):
    html = client.get("/login").get_data(as_text=True)

    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        assert client.get(url).status_code == 200, url
    assert re.search(r'href="/static/css/app.css\?v=[0-9a-f]{12}"', html)


def test_a_database_outage_on_a_signed_in_page_is_the_503_page(client, owner, login, monkeypatch):
    login(owner)

    def unavailable(*args, **kwargs):
        raise OperationalError("SELECT", {}, ConnectionError("connection refused"))

    monkeypatch.setattr(db.session, "get", unavailable, raising=False)
    response = client.get("/")

    assert response.status_code == 503
    assert "Drumbeat is briefly unavailable" in response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"

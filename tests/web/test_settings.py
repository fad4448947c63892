"""The settings page: API keys shown once, the webhook secret, provider credentials, sender defaults, roles."""

import html as html_lib
import json
import re
import time

import pytest

from tests import factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import Workspace
from webapp.services.providers import get_provider_settings
from webapp.webhooks import standard

HTMX = {"HX-Request": "true"}
SENDER = {
    "send_window.enabled": "1",
    "send_window.days": ["1", "3", "5"],
    "send_window.start": "08:30",
    "send_window.end": "16:00",
    "timezone": "Europe/Paris",
    "daily_cap": "150",
    "from_name": "Ann at Acme",
    "from_email": "Ann@Acme.test",
}


def post(client, path: str, data: dict | None = None, headers=None):
    return client.post(path, data={"csrf_token": csrf_token(client, "/settings"), **(data or {})}, headers=headers)


def create_key(client, name: str = "Pipeline sync") -> tuple[str, str]:
    """Create a key through the page with htmx: (the fragment, the plaintext key)."""
    response = post(client, "/settings/api-keys", {"name": name}, headers=HTMX)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    return body, re.search(r'id="new-api-key" type="text" value="([^"]+)"', body).group(1)


def settings_of(app, persona) -> dict:
    with app.app_context():
        return dict(db.session.get(Workspace, persona.workspace_id).settings)


def webhook_secret(app, persona) -> str:
    with app.app_context():
        return db.session.get(Workspace, persona.workspace_id).webhook_secret


def test_it_needs_a_login(client):
    response = client.get("/settings")

    assert response.status_code == 303 and response.headers["Location"] == "/login?next=/settings"


def test_the_page_has_every_section_and_labelled_fields(client, owner, login):
    login(owner)

    html = client.get("/settings").get_data(as_text=True)

    for section in ("api-keys", "webhook", "providers", "sender"):
        assert f'<section id="{section}"' in html
    for match in re.finditer(r"<(?:input|textarea|select) [^>]*>", html):
        tag = match.group(0)
        if 'type="hidden"' not in tag:
            field_id = re.search(r' id="([^"]+)"', tag).group(1)
            assert f'for="{field_id}"' in html, tag
    assert "only a workspace owner can change them" not in html


def test_a_new_key_is_shown_once_then_only_its_prefix(api, client, owner, login):
    login(owner)

    fragment, plaintext = create_key(client)

    assert fragment.lstrip().startswith('<section id="api-keys"')
    assert "Copy your new API key now" in fragment and "This is the only time it is shown" in fragment
    assert 'data-copy="new-api-key" hidden>Copy</button>' in fragment
    prefix = plaintext.split("_")[1]
    page = client.get("/settings").get_data(as_text=True)
    assert plaintext not in page
    assert f"<code>dbk_{prefix}_…</code>" in page
    assert "Pipeline sync" in page


def test_a_created_key_toasts_for_htmx_and_renders_the_page_without_javascript(client, owner, login):
    login(owner)

    htmx = post(client, "/settings/api-keys", {"name": "Zapier"}, headers=HTMX)
    plain = post(client, "/settings/api-keys", {"name": "Make"})

    assert json.loads(htmx.headers["HX-Trigger"])["toast"]["message"] == "API key “Zapier” created."
    assert plain.status_code == 201
    page = plain.get_data(as_text=True)
    assert page.startswith("<!doctype html>") and 'id="new-api-key"' in page
    assert plain.headers["Cache-Control"] == "no-store"


def test_a_key_needs_a_name(client, owner, login):
    login(owner)

    response = post(client, "/settings/api-keys", {"name": "  "}, headers=HTMX)

    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert body.lstrip().startswith('<section id="api-keys"')
    assert 'aria-invalid="true"' in body and "API key name must be 1 to 100 characters." in body
    assert "new-api-key" not in body


def test_a_revoked_key_stops_working_on_the_api(api, client, owner, login):
    login(owner)
    _, plaintext = create_key(client)
    key_id = re.search(r"/settings/api-keys/([0-9a-f-]+)/revoke", client.get("/settings").get_data(as_text=True))
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/campaigns/v2/templates", headers=headers).status_code == 200

    response = post(client, f"/settings/api-keys/{key_id.group(1)}/revoke", headers=HTMX)

    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"])["toast"]["message"] == "API key “Pipeline sync” revoked."
    assert "Revoked" in response.get_data(as_text=True)
    assert client.get("/api/campaigns/v2/templates", headers=headers).status_code == 401
    assert api.get("/templates").status_code == 200


def test_revoking_without_javascript_asks_first_then_redirects(client, owner, login):
    login(owner)
    create_key(client)
    page = client.get("/settings").get_data(as_text=True)
    confirm_url = re.search(r'href="(/settings/api-keys/[0-9a-f-]+/revoke)"', page).group(1)
    assert 'hx-confirm="Revoke the API key “Pipeline sync”? Programs using it will stop working."' in page

    confirm = client.get(confirm_url).get_data(as_text=True)
    response = post(client, confirm_url)

    assert "Revoke the API key “Pipeline sync”?" in confirm and f'action="{confirm_url}"' in confirm
    assert response.status_code == 303 and response.headers["Location"] == "/settings#api-keys"
    assert "API key “Pipeline sync” revoked." in client.get("/settings").get_data(as_text=True)


def test_the_webhook_secret_is_masked_until_an_owner_reveals_it(app, client, owner, login):
    login(owner)
    secret = webhook_secret(app, owner)

    page = client.get("/settings").get_data(as_text=True)
    revealed = client.get("/settings?secret=show", headers=HTMX)
    hidden = client.get("/settings?secret=hide", headers=HTMX).get_data(as_text=True)
    full = client.get("/settings?secret=show").get_data(as_text=True)
    restore = client.get("/settings?secret=show", headers={**HTMX, "HX-History-Restore-Request": "true"})

    assert secret not in page and f"whsec_{'•' * 16}{secret[-4:]}" in page
    body = revealed.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="webhook"') and f'value="{secret}"' in body
    assert 'data-copy="webhook-secret"' in body and "Hide secret" in body
    assert secret not in hidden and hidden.lstrip().startswith('<section id="webhook"')
    assert full.startswith("<!doctype html>") and secret in full
    assert restore.get_data(as_text=True).startswith("<!doctype html>")
    assert revealed.headers["Cache-Control"] == "no-store"


def test_the_page_shows_the_signed_and_provider_webhook_urls(app, client, owner, login):
    app.config["PUBLIC_BASE_URL"] = "https://drumbeat.example.org/"
    login(owner)

    html = client.get("/settings").get_data(as_text=True)

    base = "https://drumbeat.example.org"
    assert f'value="{base}/api/campaigns/v2/events/webhook/{owner.workspace_id}"' in html
    for provider in ("sendgrid", "mailgun", "postmark"):
        assert f'value="{base}/webhooks/{provider}/{owner.workspace_id}"' in html


def signed(client, workspace_id, secret: str, body: bytes):
    timestamp = int(time.time())
    headers = {
        "webhook-id": f"msg_{timestamp}",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard.sign(secret, f"msg_{timestamp}", timestamp, body),
        "Content-Type": "application/json",
    }
    return client.post(f"/api/campaigns/v2/events/webhook/{workspace_id}", data=body, headers=headers)


def test_rotating_the_secret_invalidates_old_signatures(app, api, client, owner, login):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    body = json.dumps({"provider_event_id": "evt-1", "type": "delivered", "enrollment_id": enrollment["id"]}).encode()
    old = webhook_secret(app, owner)
    assert signed(client, owner.workspace_id, old, body).status_code == 200
    login(owner)

    response = post(client, "/settings/webhook-secret/rotate", headers=HTMX)

    new = webhook_secret(app, owner)
    assert new != old and new.startswith("whsec_")
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="webhook"') and f'value="{new}"' in fragment
    assert json.loads(response.headers["HX-Trigger"])["toast"]["message"].startswith("Webhook secret rotated")
    assert signed(client, owner.workspace_id, old, body).status_code == 401
    assert signed(client, owner.workspace_id, new, body).status_code == 200


def test_rotating_without_javascript_asks_first_then_redirects(app, client, owner, login):
    old = webhook_secret(app, owner)
    login(owner)

    confirm = client.get("/settings/webhook-secret/rotate").get_data(as_text=True)
    response = post(client, "/settings/webhook-secret/rotate")

    assert "Rotate the webhook secret?" in confirm
    assert response.status_code == 303 and response.headers["Location"] == "/settings#webhook"
    assert webhook_secret(app, owner) != old


def test_provider_credentials_are_saved_but_never_shown(app, client, owner, login):
    login(owner)
    signing_key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"

    response = post(client, "/settings/providers/mailgun", {"signing_key": signing_key})

    assert response.status_code == 303 and response.headers["Location"] == "/settings#provider-mailgun"
    page = client.get("/settings").get_data(as_text=True)
    assert signing_key not in page
    mailgun = page[page.index('id="provider-mailgun"') : page.index('id="provider-postmark"')]
    assert "Saved" in mailgun and "A value is saved: enter a new one to replace it." in mailgun
    with app.app_context():
        assert get_provider_settings(db.session.get(Workspace, owner.workspace_id), "mailgun") == {
            "signing_key": signing_key
        }


def test_invalid_provider_credentials_are_422_beside_the_field_and_not_saved(app, client, owner, login):
    login(owner)
    password = "short-secret"

    sendgrid = post(client, "/settings/providers/sendgrid", {"public_key": "not a key"}, headers=HTMX)
    postmark = post(client, "/settings/providers/postmark", {"username": "hooks", "password": password})

    body = sendgrid.get_data(as_text=True)
    assert sendgrid.status_code == 422 and body.lstrip().startswith('<section id="providers"')
    assert re.search(r'id="field-sendgrid-public-key-error">\s*<li>is not a public key', body)
    assert postmark.status_code == 422
    page = postmark.get_data(as_text=True)
    assert page.startswith("<!doctype html>") and "must be at least 16 characters" in page
    assert password not in page and 'value="hooks"' in page
    with app.app_context():
        workspace = db.session.get(Workspace, owner.workspace_id)
        assert get_provider_settings(workspace, "sendgrid") is None
        assert get_provider_settings(workspace, "postmark") is None


def test_an_unknown_provider_is_404(client, owner, login):
    login(owner)

    assert post(client, "/settings/providers/mailchimp", {"api_key": "x"}).status_code == 404


def test_sender_defaults_are_saved(app, client, owner, login):
    login(owner)

    response = post(client, "/settings/sender", SENDER)

    assert response.status_code == 303 and response.headers["Location"] == "/settings#sender"
    assert settings_of(app, owner) == {
        "send_window": {"days": [1, 3, 5], "start": "08:30", "end": "16:00"},
        "timezone": "Europe/Paris",
        "daily_cap": 150,
        "from_name": "Ann at Acme",
        "from_email": "ann@acme.test",
    }
    page = client.get("/settings").get_data(as_text=True)
    assert "Sender defaults saved." in page
    assert 'value="08:30"' in page and 'value="Europe/Paris"' in page and 'value="150"' in page
    assert re.search(r'id="field-day-3" name="send_window.days" value="3" checked', page)
    assert not re.search(r'id="field-day-2" name="send_window.days" value="2" checked', page)


def test_sender_defaults_answer_htmx_with_the_section(app, client, owner, login):
    login(owner)

    response = post(client, "/settings/sender", {"daily_cap": "20"}, headers=HTMX)

    assert response.status_code == 200
    assert response.get_data(as_text=True).lstrip().startswith('<section id="sender"')
    assert json.loads(response.headers["HX-Trigger"])["toast"]["message"] == "Sender defaults saved."
    assert settings_of(app, owner) == {"daily_cap": 20}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"send_window.end": "08:30"}, "field-window-enabled", "start and end must differ"),
        ({"send_window.start": "9am"}, "field-window-start", "String should match pattern"),
        ({"send_window.days": []}, "field-days", "at least 1 item"),
        ({"send_window.days": ["8"]}, "field-days", "less than or equal to 7"),
        ({"timezone": "Mars/Olympus"}, "field-timezone", "unknown time zone"),
        ({"daily_cap": "0"}, "field-daily-cap", "greater than or equal to 1"),
        ({"daily_cap": "lots"}, "field-daily-cap", "valid integer"),
        ({"from_email": "not-an-email"}, "field-from-email", "is not a valid email address"),
    ],
)
def test_invalid_sender_defaults_are_422_beside_the_field_and_nothing_is_saved(
    app, client, owner, login, changes, field, message
):
    login(owner)

    response = post(client, "/settings/sender", {**SENDER, **changes}, headers=HTMX)

    body = response.get_data(as_text=True)
    assert response.status_code == 422, body
    errors = re.search(rf'<ul class="field__errors" id="{field}-error">(.*?)</ul>', body, re.S)
    assert errors and message in html_lib.unescape(errors.group(1)), body
    assert settings_of(app, owner) == {}


def test_a_member_sees_a_read_only_page(app, client, owner, teammate, login):
    login(owner)
    post(client, "/settings/sender", SENDER)
    create_key(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    login(teammate)

    html = client.get("/settings").get_data(as_text=True)

    assert "only a workspace owner can change them" in html
    assert "Pipeline sync" in html and "<code>dbk_" in html
    for control in (
        'id="api-key-form"',
        "Reveal secret",
        "Rotate secret",
        "/revoke",
        'id="sender-form"',
        "<form class",
    ):
        assert control not in html.split("</header>", 1)[1].split('<form class="logout-form"')[0], control
    assert "Mon, Wed, Fri, 08:30 to 16:00" in html
    assert webhook_secret(app, owner) not in html


def test_a_member_gets_403_on_every_change(app, client, owner, teammate, login):
    login(owner)
    create_key(client)
    key_id = re.search(r"/settings/api-keys/([0-9a-f-]+)/revoke", client.get("/settings").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    old = webhook_secret(app, owner)
    login(teammate)

    for path, data in [
        ("/settings/api-keys", {"name": "Mine"}),
        (f"/settings/api-keys/{key_id.group(1)}/revoke", {}),
        ("/settings/webhook-secret/rotate", {}),
        ("/settings/providers/mailgun", {"signing_key": "key-123"}),
        ("/settings/sender", SENDER),
    ]:
        assert post(client, path, data).status_code == 403, path
        assert post(client, path, data, headers=HTMX).status_code == 403, path
    for path in (
        "/settings?secret=show",
        f"/settings/api-keys/{key_id.group(1)}/revoke",
        "/settings/webhook-secret/rotate",
    ):
        assert client.get(path).status_code == 403, path
    assert webhook_secret(app, owner) == old and settings_of(app, owner) == {}
    assert "Revoked" not in client.get("/settings").get_data(as_text=True)


def test_an_outsider_gets_404_for_the_owners_keys(client, owner, outsider, login):
    login(owner)
    create_key(client)
    key_id = re.search(r"/settings/api-keys/([0-9a-f-]+)/revoke", client.get("/settings").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/settings")})
    login(outsider)

    path = f"/settings/api-keys/{key_id.group(1)}/revoke"
    assert client.get(path).status_code == 404
    assert post(client, path).status_code == 404
    assert post(client, path, headers=HTMX).status_code == 404
    assert "Pipeline sync" not in client.get("/settings").get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/settings/api-keys",
        "/settings/webhook-secret/rotate",
        "/settings/providers/mailgun",
        "/settings/sender",
    ],
)
def test_changes_need_a_csrf_token(app, client, owner, login, path):
    old = webhook_secret(app, owner)
    login(owner)

    assert client.post(path, data={"name": "x", "signing_key": "key-1"}).status_code == 400
    assert webhook_secret(app, owner) == old

"""The mailboxes page: the list with today's usage and the inbox reading state, the add and edit
forms (passwords write-only), connection checks against a real SMTP server with AUTH (aiosmtpd)
and a real IMAP server (Dovecot), pause, resume and delete, and who may do what."""

import html
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import factories
from tests.web.conftest import count, csrf_token
from webapp import crypto
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Mailbox
from webapp.worker import Worker

HTMX = {"HX-Request": "true"}
# Every password used here: none may ever appear in a page.
SECRETS = ("ada-secret", "bo-secret", "wrong-one", "imap-secret", "typed-then-refused")


@pytest.fixture(autouse=True)
def pages(app):
    """Every HTML response of the test; afterwards, none may contain a password."""
    bodies: list[str] = []

    @app.after_request
    def record(response):
        if response.mimetype == "text/html" and not response.direct_passthrough:
            bodies.append(response.get_data(as_text=True))
        return response

    yield bodies
    leaked = [secret for secret in SECRETS for body in bodies if secret in body]
    assert not leaked, f"passwords in a page: {leaked}"


def smtp_of(server, login: str = "ada", password: str | None = "ada-secret") -> dict:
    return {"host": "127.0.0.1", "port": server.port, "security": "none", "username": login, "password": password}


def add(api, server, **fields) -> dict:
    """A mailbox made through the API (as Ada, unless told otherwise)."""
    body = {"name": "Ada", "from_name": "Ada Lovelace", "from_email": "ada@acme.test", "smtp": smtp_of(server)}
    response = api.post("/mailboxes", json={**body, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def closed_port() -> int:
    """A local port nothing listens on: a server there fails at once, without a DNS lookup."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_imap_server() -> dict:
    return {"host": "127.0.0.1", "port": closed_port(), "security": "none"}


def form(server, **fields) -> dict:
    """The add/edit form as a browser submits it: every field, blank ones as empty strings."""
    values = {
        "name": "Ada's mailbox",
        "from_name": "Ada Lovelace",
        "from_email": "Ada@Acme.test",
        "smtp.host": "127.0.0.1",
        "smtp.port": str(server.port),
        "smtp.security": "none",
        "smtp.username": "ada",
        "smtp.password": "ada-secret",
        "imap.host": "",
        "imap.port": "993",
        "imap.security": "ssl",
        "imap.username": "",
        "imap.password": "",
        "imap.folder": "INBOX",
        "daily_cap": "40",
        "min_gap_seconds": "",
        "ramp.start": "",
        "ramp.increase": "",
        "signature": "",
    }
    return {**values, **fields}


def post(client, path: str, data: dict | None = None, headers=None):
    return client.post(path, data={"csrf_token": csrf_token(client, "/mailboxes"), **(data or {})}, headers=headers)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def stored(app, mailbox_id) -> Mailbox | None:
    with app.app_context():
        row = db.session.get(Mailbox, uuid.UUID(str(mailbox_id)))
        if row is not None:
            db.session.expunge(row)
        return row


def listed(owner_api) -> list[dict]:
    return owner_api.get("/mailboxes").get_json()["data"]


def row_of(body: str, mailbox_id) -> str:
    match = re.search(rf'<tr id="mailbox-{mailbox_id}">(.*?)</tr>', body, re.S)
    assert match, f"no row for {mailbox_id}"
    return match.group(1)


def plain(fragment: str) -> str:
    """The words of an HTML fragment (as served, still escaped), without its tags."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()).replace(" :", ":"))


def field_error(body: str, field_id: str) -> str:
    match = re.search(rf'<ul class="field__errors" id="{field_id}-error">(.*?)</ul>', body, re.S)
    return match.group(1) if match else ""


# The list.


def test_it_needs_a_login(client):
    response = client.get("/mailboxes")

    assert response.status_code == 303 and response.headers["Location"] == "/login?next=/mailboxes"


def test_an_empty_workspace_says_what_a_mailbox_is_and_offers_to_add_one(browser):
    body = text(browser.get("/mailboxes"))

    assert "No mailboxes yet" in body and "Campaigns send from it" in body
    assert 'href="/mailboxes/new">Add a mailbox</a>' in body


def test_the_list_shows_usage_ramp_up_state_and_how_reading_replies_goes(app, browser, api, auth_smtp_server):
    app.config.update(
        MAIL_TRANSPORT="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=auth_smtp_server.port,
        SMTP_USERNAME="ada",
        SMTP_PASSWORD="ada-secret",
        SMTP_HELO_NAME="localhost",
    )
    ramped = add(api, auth_smtp_server, daily_cap=10, ramp={"start": 2, "increase": 1})
    uncapped = add(
        api,
        auth_smtp_server,
        name="Bo",
        from_name=None,
        from_email="bo@acme.test",
        smtp=smtp_of(auth_smtp_server, "bo", "wrong-one"),
        imap={**no_imap_server(), "username": "bo", "password": "imap-secret"},
    )
    unread = add(
        api,
        auth_smtp_server,
        name="Cy",
        from_email="cy@acme.test",
        smtp=smtp_of(auth_smtp_server, "cy", None),
        imap=no_imap_server(),
    )
    template = factories.template(api, steps=1, settings={"mailbox_ids": [ramped["id"]]})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 3)
    assert Worker(app).run_once(now=datetime.now(UTC) + timedelta(minutes=1)).sent == 2  # the ramp's first day
    read_at = datetime(2031, 3, 3, 9, 15, tzinfo=UTC)
    with app.app_context():
        db.session.execute(  # the worker could not read it (nothing listens there): say a read worked since
            sa.update(Mailbox)
            .where(Mailbox.id == uuid.UUID(uncapped["id"]))
            .values(inbox_read_at=read_at, inbox_error=None, inbox_error_at=None)
        )
        db.session.execute(
            sa.update(Mailbox)
            .where(Mailbox.id == uuid.UUID(unread["id"]))
            .values(inbox_error="authentication failed", inbox_error_at=read_at)
        )
        db.session.commit()
    assert post(browser, f"/mailboxes/{uncapped['id']}/check").status_code == 303  # wrong password: failing

    body = browser.get("/mailboxes").get_data(as_text=True)

    assert "3 mailboxes" in body
    first = plain(row_of(body, ramped["id"]))
    assert "Ada Lovelace <ada@acme.test>" in first and "Active" in first
    assert "2 / 2" in first and "Ramp-up: 2 the first day, 1 more each day up to 10" in first
    assert "password set" in first and "Replies are not read" in first
    second = plain(row_of(body, uncapped["id"]))
    assert "0, no cap" in second and "Failing" in second
    assert "SMTP: authentication failed" in second
    assert "Read from 127.0.0.1 (INBOX)" in second and "Last read 2031-03-03 09:15 UTC" in second
    third = plain(row_of(body, unread["id"]))
    assert "no password" in third
    assert "Reading failed 2031-03-03 09:15 UTC: authentication failed" in third


# Adding.


def test_a_mailbox_added_through_the_form_is_in_the_api_with_its_password_encrypted(
    app, browser, owner_api, auth_smtp_server, pages
):
    page = browser.get("/mailboxes/new")
    assert page.status_code == 200
    assert all(f'name="{name}"' in text(page) for name in form(auth_smtp_server))

    response = post(browser, "/mailboxes", form(auth_smtp_server, **{"ramp.start": "5", "ramp.increase": "5"}))

    assert response.status_code == 303, text(response)
    [mailbox] = listed(owner_api)
    assert response.headers["Location"] == f"/mailboxes#mailbox-{mailbox['id']}"
    assert (mailbox["name"], mailbox["from_email"], mailbox["daily_cap"], mailbox["cap_today"]) == (
        "Ada's mailbox",
        "ada@acme.test",
        40,
        5,
    )
    assert mailbox["smtp"] == {
        "host": "127.0.0.1",
        "port": auth_smtp_server.port,
        "security": "none",
        "username": "ada",
        "has_password": True,
    }
    assert mailbox["imap"] is None and mailbox["ramp"]["increase"] == 5
    row = stored(app, mailbox["id"])
    with app.app_context():
        assert crypto.decrypt(row.smtp_password_encrypted) == "ada-secret"
    body = text(browser.get("/mailboxes"))
    assert "Mailbox “Ada's mailbox” added." in body and "0 / 5" in body and "password set" in body
    assert len(pages) >= 3  # and the autouse fixture saw no password in any of them


def test_reading_replies_is_set_up_by_giving_an_imap_host(browser, owner_api, auth_smtp_server):
    data = form(auth_smtp_server, **{"imap.host": "imap.acme.test", "imap.password": "imap-secret"})

    assert post(browser, "/mailboxes", data).status_code == 303

    [mailbox] = listed(owner_api)
    assert mailbox["imap"]["host"] == "imap.acme.test" and mailbox["imap"]["has_password"] is True
    assert (mailbox["imap"]["port"], mailbox["imap"]["security"], mailbox["imap"]["folder"]) == (993, "ssl", "INBOX")


def test_htmx_adding_navigates_to_the_list(browser, owner_api, auth_smtp_server):
    response = post(browser, "/mailboxes", form(auth_smtp_server), headers=HTMX)

    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/mailboxes#mailbox-{listed(owner_api)[0]['id']}"


@pytest.mark.parametrize(
    ("change", "field_id", "message"),
    [
        ({"smtp.port": "0"}, "field-smtp-port", "greater than or equal to 1"),
        ({"smtp.port": "smtp"}, "field-smtp-port", "valid integer"),
        ({"imap.host": "imap.acme.test", "imap.port": "70000"}, "field-imap-port", "less than or equal to 65535"),
        ({"from_email": "not an address"}, "field-from-email", ""),
        ({"smtp.host": "bad host!"}, "field-smtp-host", "should match pattern"),
        ({"smtp.host": ""}, "field-smtp-host", "required"),
        ({"smtp.security": "tls"}, "field-smtp-security", "'none', 'starttls' or 'ssl'"),
        ({"name": ""}, "field-name", "required"),
        ({"from_name": "Ada\r\nBcc: all@evil.test"}, "field-from-name", ""),
        ({"daily_cap": "0"}, "field-daily-cap", "greater than or equal to 1"),
        ({"min_gap_seconds": "-1"}, "field-min-gap-seconds", "greater than or equal to 0"),
        ({"ramp.start": "5"}, "field-ramp-increase", "required"),
        ({"signature": "{% for x in y %}{% endfor %}"}, "field-signature", ""),
    ],
)
def test_bad_input_is_shown_beside_its_field_and_nothing_is_saved(
    app, browser, auth_smtp_server, change, field_id, message
):
    data = form(auth_smtp_server, **{"smtp.password": "typed-then-refused", **change})

    response = post(browser, "/mailboxes", data)

    assert response.status_code == 422, response.status_code
    body = text(response)
    error = field_error(body, field_id)
    assert error and message in error, (field_id, body[:3000])
    assert "Check the fields marked below." in body
    assert 'value="Ada Lovelace"' in body or change.get("from_name")  # what was typed stays
    assert count(app, Mailbox) == 0


def test_htmx_gets_the_form_back_with_its_errors(browser, auth_smtp_server):
    response = post(browser, "/mailboxes", form(auth_smtp_server, **{"smtp.port": "0"}), headers=HTMX)

    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<form id="mailbox-form"') and "<html" not in body
    assert 'value="Ada&#39;s mailbox"' in body or 'value="Ada\'s mailbox"' in body


def test_an_address_has_one_mailbox_per_workspace(app, browser, api, auth_smtp_server):
    add(api, auth_smtp_server)
    other = add(api, auth_smtp_server, name="Bo", from_email="bo@acme.test")

    again = post(browser, "/mailboxes", form(auth_smtp_server, **{"from_email": "ADA@acme.test"}))
    renamed = post(browser, f"/mailboxes/{other['id']}", form(auth_smtp_server, **{"from_email": "ada@acme.test"}))

    for response in (again, renamed):
        assert response.status_code == 422
        assert "already" in field_error(text(response), "field-from-email")
    assert count(app, Mailbox) == 2 and stored(app, other["id"]).from_email == "bo@acme.test"


# Editing.


def test_editing_keeps_the_stored_passwords_when_left_empty(app, browser, api, auth_smtp_server, auth_sink):
    imap = no_imap_server()
    mailbox = add(
        api,
        auth_smtp_server,
        smtp=smtp_of(auth_smtp_server, "bo", "wrong-one"),
        imap={**imap, "username": "ada", "password": "imap-secret"},
        daily_cap=30,
        ramp={"start": 5, "increase": 5},
    )
    with app.app_context():  # the worker has read the inbox up to UID 42 and started the ramp-up
        db.session.execute(
            sa.update(Mailbox)
            .where(Mailbox.id == uuid.UUID(mailbox["id"]))
            .values(imap_uidvalidity=7, imap_last_uid=42, ramp_started_on=datetime(2031, 3, 1).date())
        )
        db.session.commit()
    before = stored(app, mailbox["id"])

    page = text(browser.get(f"/mailboxes/{mailbox['id']}/edit"))
    assert page.count("leave empty to keep the stored password") == 2
    assert f'value="{imap["port"]}"' in page and f'value="{auth_smtp_server.port}"' in page
    assert not re.search(r'type="password"[^>]*value=', page)
    edited = form(
        auth_smtp_server,
        name="Ada, renamed",
        from_email="ada@acme.test",
        daily_cap="30",
        **{
            "smtp.username": "bo",
            "smtp.password": "",
            "imap.host": "127.0.0.1",
            "imap.port": str(imap["port"]),
            "imap.security": "none",
            "imap.username": "ada",
            "ramp.start": "5",
            "ramp.increase": "5",
        },
    )
    response = post(browser, f"/mailboxes/{mailbox['id']}", edited)

    assert response.status_code == 303, text(response)
    after = stored(app, mailbox["id"])
    assert after.name == "Ada, renamed"
    assert after.smtp_password_encrypted == before.smtp_password_encrypted
    assert after.imap_password_encrypted == before.imap_password_encrypted
    # Unchanged settings stay as they were: the inbox is not read afresh, the ramp-up does not restart.
    assert (after.imap_uidvalidity, after.imap_last_uid, after.ramp_started_on) == (7, 42, before.ramp_started_on)
    # The stored (wrong) password is the one the server sees.
    assert "authentication failed" in text(post(browser, f"/mailboxes/{mailbox['id']}/check", headers=HTMX))

    fixed = post(browser, f"/mailboxes/{mailbox['id']}", {**edited, "smtp.password": "bo-secret"})

    assert fixed.status_code == 303
    check = post(browser, f"/mailboxes/{mailbox['id']}/check", headers=HTMX)
    assert "SMTP: " in text(check) and "Works" in row_of(text(check), mailbox["id"])
    assert auth_sink.logins == ["bo"]
    assert stored(app, mailbox["id"]).state == "active"


def test_emptying_the_imap_host_stops_reading_replies_and_emptying_the_ramp_ends_it(
    browser, api, owner_api, auth_smtp_server
):
    mailbox = add(
        api,
        auth_smtp_server,
        imap={"host": "imap.acme.test", "password": "imap-secret"},
        ramp={"start": 5, "increase": 5},
    )

    response = post(browser, f"/mailboxes/{mailbox['id']}", form(auth_smtp_server, **{"smtp.password": ""}))

    assert response.status_code == 303
    [saved] = listed(owner_api)
    assert saved["imap"] is None and saved["ramp"] is None and saved["smtp"]["has_password"] is True


def test_an_invalid_edit_keeps_the_typed_values_and_changes_nothing(app, browser, api, auth_smtp_server):
    mailbox = add(api, auth_smtp_server)

    response = post(
        browser, f"/mailboxes/{mailbox['id']}", form(auth_smtp_server, name="Renamed", **{"smtp.port": "99999"})
    )

    assert response.status_code == 422
    body = text(response)
    assert "less than or equal to 65535" in field_error(body, "field-smtp-port")
    assert 'value="Renamed"' in body and 'value="99999"' in body
    assert "leave empty to keep the stored password" in body
    assert stored(app, mailbox["id"]).name == "Ada"


# Actions.


def test_pause_and_resume_change_the_state(browser, api, owner_api, auth_smtp_server):
    mailbox = add(api, auth_smtp_server)

    paused = post(browser, f"/mailboxes/{mailbox['id']}/state", {"state": "paused"})

    assert paused.status_code == 303 and listed(owner_api)[0]["state"] == "paused"
    row = row_of(text(browser.get("/mailboxes")), mailbox["id"])
    assert "Paused" in row and 'value="active">Resume' in row

    resumed = post(browser, f"/mailboxes/{mailbox['id']}/state", {"state": "active"}, headers=HTMX)

    assert resumed.status_code == 200
    assert resumed.get_data(as_text=True).lstrip().startswith('<section id="mailbox-list"')
    assert "is active again" in resumed.headers["HX-Trigger"]
    assert listed(owner_api)[0]["state"] == "active"
    assert 'value="paused">Pause' in row_of(text(resumed), mailbox["id"])
    assert post(browser, f"/mailboxes/{mailbox['id']}/state", {"state": "failing"}).status_code == 400
    assert listed(owner_api)[0]["state"] == "active"


def test_check_connection_logs_in_and_says_why_it_failed(app, browser, api, owner_api, auth_smtp_server):
    good = add(api, auth_smtp_server)
    bad = add(
        api, auth_smtp_server, name="Bo", from_email="bo@acme.test", smtp=smtp_of(auth_smtp_server, "bo", "wrong-one")
    )

    ok = post(browser, f"/mailboxes/{good['id']}/check", headers=HTMX)
    refused = post(browser, f"/mailboxes/{bad['id']}/check", headers=HTMX)

    assert ok.status_code == 200 and ok.get_data(as_text=True).lstrip().startswith('<section id="mailbox-list"')
    ok_row = row_of(text(ok), good["id"])
    assert (
        "SMTP: <span" in ok_row
        and "Works" in ok_row
        and 'IMAP: <span class="text-muted">replies are not read' in ok_row
    )
    assert '"level":"success"' in ok.headers["HX-Trigger"] and "SMTP works" in html.unescape(ok.headers["HX-Trigger"])
    refused_row = row_of(text(refused), bad["id"])
    assert "Failed" in refused_row and "authentication failed" in refused_row
    assert '"level":"error"' in refused.headers["HX-Trigger"]
    assert {m["from_email"]: m["state"] for m in listed(owner_api)} == {
        "ada@acme.test": "active",
        "bo@acme.test": "failing",
    }

    # Without JavaScript: back to the list, with the result as a message.
    plain = post(browser, f"/mailboxes/{bad['id']}/check")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/mailboxes#mailbox-{bad['id']}"
    assert "“Bo”: SMTP failed: authentication failed." in text(browser.get("/mailboxes"))


def test_check_connection_logs_in_to_the_imap_server_too(browser, api, auth_smtp_server, imap_server, mailbox):
    imap = {"host": "127.0.0.1", "port": mailbox.port, "security": "none", "username": mailbox.username}
    reads = add(api, auth_smtp_server, imap={**imap, "password": mailbox.password})

    response = post(browser, f"/mailboxes/{reads['id']}/check", headers=HTMX)

    row = row_of(text(response), reads["id"])
    assert row.count("Works") == 2 and "IMAP works" in html.unescape(response.headers["HX-Trigger"])


def test_delete_asks_first_and_a_mailbox_in_use_is_refused(app, browser, api, owner_api, auth_smtp_server):
    used = add(api, auth_smtp_server)
    spare = add(api, auth_smtp_server, name="Spare", from_email="spare@acme.test")
    template = factories.template(api, steps=1, settings={"mailbox_ids": [used["id"]]})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    with app.app_context():
        db.session.execute(sa.update(CampaignEnrollment).values(mailbox_id=uuid.UUID(used["id"])))
        db.session.commit()

    confirm = browser.get(f"/mailboxes/{spare['id']}/delete")
    assert confirm.status_code == 200 and "Delete the mailbox “Spare”?" in text(confirm)
    assert f'action="/mailboxes/{spare["id"]}/delete"' in confirm.get_data(as_text=True)

    refused = post(browser, f"/mailboxes/{used['id']}/delete")
    refused_htmx = post(browser, f"/mailboxes/{used['id']}/delete", headers=HTMX)
    deleted = post(browser, f"/mailboxes/{spare['id']}/delete")

    assert refused.status_code == 409 and "pause it instead" in row_of(text(refused), used["id"])
    assert refused_htmx.status_code == 409 and 'id="error-message"' in refused_htmx.get_data(as_text=True)
    assert deleted.status_code == 303
    assert [m["id"] for m in listed(owner_api)] == [used["id"]]
    assert "Mailbox “Spare” deleted." in text(browser.get("/mailboxes"))


# Who may do what.


@pytest.mark.parametrize("action", ["create", "update", "check", "state", "delete"])
def test_every_change_needs_a_csrf_token(app, browser, api, auth_smtp_server, action):
    mailbox = add(api, auth_smtp_server)
    path, data = {
        "create": ("/mailboxes", form(auth_smtp_server, from_email="new@acme.test")),
        "update": (f"/mailboxes/{mailbox['id']}", form(auth_smtp_server, name="Renamed")),
        "check": (f"/mailboxes/{mailbox['id']}/check", {}),
        "state": (f"/mailboxes/{mailbox['id']}/state", {"state": "paused"}),
        "delete": (f"/mailboxes/{mailbox['id']}/delete", {}),
    }[action]

    response = browser.post(path, data=data)

    assert response.status_code == 400
    row = stored(app, mailbox["id"])
    assert (count(app, Mailbox), row.name, row.state, row.last_checked_at) == (1, "Ada", "active", None)


def test_an_outsider_gets_404_for_the_owners_mailbox_on_every_route(
    app, client, api, outsider, login, auth_smtp_server
):
    mailbox = add(api, auth_smtp_server)
    login(outsider)
    data = {"csrf_token": csrf_token(client, "/mailboxes"), **form(auth_smtp_server, name="Mine"), "state": "paused"}
    checked = []

    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("mailboxes.") or "mailbox_id" not in rule.arguments:
            continue
        path = rule.build({"mailbox_id": mailbox["id"]})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.get(path) if method == "GET" else client.post(path, data=data)
            checked.append((method, path))
            assert response.status_code == 404, (method, path, response.status_code)
            assert "ada@acme.test" not in response.get_data(as_text=True)

    assert len(checked) == 6
    row = stored(app, mailbox["id"])
    assert (row.name, row.state, row.last_checked_at) == ("Ada", "active", None)
    assert "ada@acme.test" not in client.get("/mailboxes").get_data(as_text=True)


def test_a_member_sees_the_list_and_may_check_but_not_change(
    app, client, api, owner, teammate, login, auth_smtp_server
):
    mailbox = add(api, auth_smtp_server)
    login(teammate)

    page = text(client.get("/mailboxes"))
    assert "only a workspace owner can add, change, pause or delete them" in page
    assert "Ada Lovelace <ada@acme.test>" in page and "Check connection" in page
    assert "/mailboxes/new" not in page and "/edit" not in page and "/delete" not in page
    assert post(client, f"/mailboxes/{mailbox['id']}/check").status_code == 303

    refused = [
        client.get("/mailboxes/new"),
        post(client, "/mailboxes", form(auth_smtp_server, from_email="new@acme.test")),
        client.get(f"/mailboxes/{mailbox['id']}/edit"),
        post(client, f"/mailboxes/{mailbox['id']}", form(auth_smtp_server, name="Renamed")),
        post(client, f"/mailboxes/{mailbox['id']}/state", {"state": "paused"}),
        client.get(f"/mailboxes/{mailbox['id']}/delete"),
        post(client, f"/mailboxes/{mailbox['id']}/delete"),
    ]

    assert [response.status_code for response in refused] == [403] * 7
    row = stored(app, mailbox["id"])
    assert (count(app, Mailbox), row.name, row.state) == (1, "Ada", "active")
    assert row.last_checked_at is not None

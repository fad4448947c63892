"""Mailboxes through the API: write-only passwords encrypted at rest, connection checks against a
real SMTP server with AUTH (aiosmtpd) and a real IMAP server (Dovecot)."""

import logging
import socket
import uuid

import pytest
import sqlalchemy as sa

from webapp import crypto
from webapp.extensions import db
from webapp.models import Mailbox


def smtp_of(server, **fields) -> dict:
    return {"host": "127.0.0.1", "port": server.port, "security": "none", **fields}


def mailbox_body(server, **fields) -> dict:
    return {
        "name": "Ada's mailbox",
        "from_name": "Ada Lovelace",
        "from_email": "Ada@Acme.test",
        "smtp": smtp_of(server, username="ada", password="ada-secret"),
        "daily_cap": 40,
        **fields,
    }


def stored(app, mailbox_id) -> Mailbox:
    with app.app_context():
        row = db.session.get(Mailbox, uuid.UUID(mailbox_id))
        db.session.expunge(row)
        return row


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_mailbox_keeps_its_password_encrypted_and_never_shows_it(app, api, auth_smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    response = api.post("/mailboxes", json=mailbox_body(auth_smtp_server))

    assert response.status_code == 201, response.get_json()
    data = response.get_json()["data"]
    assert data["from_email"] == "ada@acme.test"
    assert data["smtp"] == {
        "host": "127.0.0.1",
        "port": auth_smtp_server.port,
        "security": "none",
        "username": "ada",
        "has_password": True,
    }
    assert (data["imap"], data["state"], data["sent_today"], data["cap_today"]) == (None, "active", 0, 40)
    row = stored(app, data["id"])
    assert "ada-secret" not in row.smtp_password_encrypted
    with app.app_context():
        assert crypto.decrypt(row.smtp_password_encrypted) == "ada-secret"
    listed = api.get("/mailboxes").get_data(as_text=True)
    assert "ada-secret" not in listed and "ada-secret" not in response.get_data(as_text=True)
    assert "ada-secret" not in caplog.text


def test_an_update_keeps_the_password_unless_given_and_imap_null_stops_reading(app, api, auth_smtp_server):
    created = api.post(
        "/mailboxes",
        json=mailbox_body(auth_smtp_server, imap={"host": "imap.acme.test", "username": "ada", "password": "p1"}),
    ).get_json()["data"]
    before = stored(app, created["id"])

    renamed = api.patch(f"/mailboxes/{created['id']}", json={"name": "Ada", "smtp": {"port": 2525}})
    assert renamed.status_code == 200, renamed.get_json()
    after = stored(app, created["id"])
    assert (after.name, after.smtp_port) == ("Ada", 2525)
    assert after.smtp_password_encrypted == before.smtp_password_encrypted
    assert renamed.get_json()["data"]["imap"]["has_password"] is True

    api.patch(f"/mailboxes/{created['id']}", json={"smtp": {"password": "new-secret"}})
    with app.app_context():
        assert crypto.decrypt(stored(app, created["id"]).smtp_password_encrypted) == "new-secret"

    cleared = api.patch(f"/mailboxes/{created['id']}", json={"imap": None}).get_json()["data"]
    assert cleared["imap"] is None and stored(app, created["id"]).imap_password_encrypted is None


def test_a_ramp_up_grows_the_cap_from_its_start(api, auth_smtp_server):
    created = api.post(
        "/mailboxes", json=mailbox_body(auth_smtp_server, daily_cap=30, ramp={"start": 5, "increase": 5})
    ).get_json()["data"]

    assert created["cap_today"] == 5
    assert created["ramp"]["start"] == 5 and created["ramp"]["started_on"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from_name": "Ada\r\nBcc: all@evil.test"}, "from_name"),
        ({"from_name": "=?utf-8?q?forged?="}, "from_name"),
        ({"from_email": "not an address"}, "from_email"),
        ({"smtp": {"host": "bad host!", "port": 25}}, "smtp.host"),
        ({"smtp": {"host": "smtp.acme.test", "port": 0}}, "smtp.port"),
        ({"smtp": {"host": "smtp.acme.test", "security": "tls"}}, "smtp.security"),
        ({"signature": "{% for x in y %}{% endfor %}"}, "signature"),
        ({"daily_cap": 0}, "daily_cap"),
        ({"password": "stray"}, "password"),
    ],
)
def test_bad_mailbox_settings_are_refused_and_nothing_is_saved(app, api, auth_smtp_server, change, field):
    response = api.post("/mailboxes", json={**mailbox_body(auth_smtp_server), **change})

    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["success"] is False and any(field in d.get("field", "") for d in body["details"]), body
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox)) == 0


def test_an_address_has_one_mailbox_per_workspace(api, outsider, auth_smtp_server):
    assert api.post("/mailboxes", json=mailbox_body(auth_smtp_server)).status_code == 201

    again = api.post("/mailboxes", json=mailbox_body(auth_smtp_server, name="Again"))

    assert again.status_code == 409 and "ada@acme.test" in again.get_json()["message"]
    assert api.as_(outsider).post("/mailboxes", json=mailbox_body(auth_smtp_server)).status_code == 201


def test_a_check_logs_in_and_a_refused_login_marks_the_mailbox_failing(app, api, auth_smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    good = api.post("/mailboxes", json=mailbox_body(auth_smtp_server)).get_json()["data"]
    bad = api.post(
        "/mailboxes",
        json=mailbox_body(
            auth_smtp_server,
            from_email="bo@acme.test",
            smtp=smtp_of(auth_smtp_server, username="bo", password="wrong-one"),
        ),
    ).get_json()["data"]

    ok = api.post(f"/mailboxes/{good['id']}/check", json={})
    refused = api.post(f"/mailboxes/{bad['id']}/check", json={})

    assert ok.get_json()["data"] == {"smtp": {"ok": True, "error": None}, "imap": None}
    assert refused.get_json()["data"]["smtp"] == {"ok": False, "error": "authentication failed"}
    failing = api.get(f"/mailboxes/{bad['id']}").get_json()["data"]
    assert failing["state"] == "failing" and "authentication failed" in failing["last_error"]
    assert "wrong-one" not in caplog.text and "wrong-one" not in refused.get_data(as_text=True)
    fixed = api.patch(f"/mailboxes/{bad['id']}", json={"smtp": {"password": "bo-secret"}}).get_json()["data"]
    assert fixed["state"] == "active" and fixed["last_error"] is None


def test_a_check_says_why_a_server_cannot_be_reached(api, auth_smtp_server):
    mailbox = api.post(
        "/mailboxes",
        json=mailbox_body(auth_smtp_server, smtp={"host": "127.0.0.1", "port": closed_port(), "security": "none"}),
    ).get_json()["data"]
    tls_to_plain = api.post(
        "/mailboxes",
        json=mailbox_body(auth_smtp_server, from_email="tls@acme.test", smtp=smtp_of(auth_smtp_server, security="ssl")),
    ).get_json()["data"]

    assert api.post(f"/mailboxes/{mailbox['id']}/check", json={}).get_json()["data"]["smtp"]["error"] == (
        "could not connect"
    )
    assert api.post(f"/mailboxes/{tls_to_plain['id']}/check", json={}).get_json()["data"]["smtp"]["error"] == (
        "TLS handshake failed"
    )
    # A server that cannot be reached is not a refused login: the mailbox stays active.
    assert api.get(f"/mailboxes/{mailbox['id']}").get_json()["data"]["state"] == "active"


def test_a_check_logs_in_to_the_imap_server_too(api, auth_smtp_server, imap_server, mailbox):
    imap = {"host": "127.0.0.1", "port": mailbox.port, "security": "none", "username": mailbox.username}
    good = api.post(
        "/mailboxes", json=mailbox_body(auth_smtp_server, imap={**imap, "password": mailbox.password})
    ).get_json()["data"]
    bad = api.post(
        "/mailboxes",
        json=mailbox_body(auth_smtp_server, from_email="bo@acme.test", imap={**imap, "password": "wrong"}),
    ).get_json()["data"]
    missing = api.post(
        "/mailboxes",
        json=mailbox_body(
            auth_smtp_server, from_email="cy@acme.test", imap={**imap, "password": mailbox.password, "folder": "Nope"}
        ),
    ).get_json()["data"]

    assert api.post(f"/mailboxes/{good['id']}/check", json={}).get_json()["data"]["imap"] == {"ok": True, "error": None}
    assert api.post(f"/mailboxes/{bad['id']}/check", json={"servers": ["imap"]}).get_json()["data"] == {
        "smtp": None,
        "imap": {"ok": False, "error": "authentication failed"},
    }
    assert api.post(f"/mailboxes/{missing['id']}/check", json={}).get_json()["data"]["imap"]["error"] == (
        "folder not found"
    )


def test_a_mailbox_in_use_cannot_be_deleted_but_can_be_paused(app, api, auth_smtp_server):
    from tests import factories

    mailbox = api.post("/mailboxes", json=mailbox_body(auth_smtp_server)).get_json()["data"]
    template = factories.template(api, steps=1, settings={"mailbox_ids": [mailbox["id"]]})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    with app.app_context():
        from webapp.models import CampaignEnrollment

        db.session.execute(sa.update(CampaignEnrollment).values(mailbox_id=uuid.UUID(mailbox["id"])))
        db.session.commit()

    refused = api.delete(f"/mailboxes/{mailbox['id']}")
    paused = api.patch(f"/mailboxes/{mailbox['id']}", json={"state": "paused"})

    assert refused.status_code == 409 and "pause it instead" in refused.get_json()["message"]
    assert paused.get_json()["data"]["state"] == "paused"
    spare = api.post("/mailboxes", json=mailbox_body(auth_smtp_server, from_email="spare@acme.test")).get_json()["data"]
    assert api.delete(f"/mailboxes/{spare['id']}").status_code in (200, 204)
    assert api.get(f"/mailboxes/{spare['id']}").status_code == 404


def test_a_campaign_can_only_name_its_own_workspace_s_mailboxes(api, outsider, auth_smtp_server):
    theirs = api.as_(outsider).post("/mailboxes", json=mailbox_body(auth_smtp_server)).get_json()["data"]

    response = api.post("/templates", json={"name": "T", "settings": {"mailbox_ids": [theirs["id"]]}})

    assert response.status_code == 404 and theirs["id"] in response.get_json()["message"]


def test_a_check_logs_in_over_starttls_and_names_an_untrusted_certificate(
    api, auth_sink, free_port, tmp_path, monkeypatch
):
    import ssl

    from aiosmtpd.controller import Controller

    from tests.imap_server import self_signed_certificate

    cert_pem, key_pem = self_signed_certificate()
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    controller = Controller(
        auth_sink,
        hostname="127.0.0.1",
        port=free_port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=auth_sink.authenticate,
        auth_required=True,
        auth_require_tls=True,  # the password only ever crosses TLS
    )
    controller.start()
    try:
        smtp = {"host": "127.0.0.1", "port": free_port, "security": "starttls", "username": "ada"}
        body = {"name": "Ada", "from_email": "ada@acme.test", "smtp": {**smtp, "password": "ada-secret"}}
        mailbox = api.post("/mailboxes", json=body).get_json()["data"]

        untrusted = api.post(f"/mailboxes/{mailbox['id']}/check", json={}).get_json()["data"]
        assert untrusted["smtp"]["ok"] is False and untrusted["smtp"]["error"] == "TLS handshake failed"

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # the machine trusts it now
        trusted = api.post(f"/mailboxes/{mailbox['id']}/check", json={}).get_json()["data"]
        assert trusted["smtp"] == {"ok": True, "error": None}
    finally:
        controller.stop()

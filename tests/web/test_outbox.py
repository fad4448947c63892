"""The outbox pages: messages kept by the outbox transport, only the workspace's own, HTML sandboxed."""

import html as html_lib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests import factories
from webapp.engine.mailer import OutboxTransport
from webapp.extensions import db
from webapp.models import OutboxMessage
from webapp.worker import Worker


def send_campaign(app, api, n: int = 2, *, domain: str = "example.com", **settings) -> None:
    """A one-step email campaign to `n` contacts, sent by the worker through the outbox transport."""
    template = api.post("/templates", json={"name": "Hello", "settings": settings}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/email",
        json={
            "subject": "Hello {{ first_name }}",
            "body": "Hi {{ first_name }},\n\nSee [our site](https://example.org/).",
        },
    )
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], n, domain=domain)
    assert Worker(app, transport=OutboxTransport()).run_once(now=datetime.now(UTC) + timedelta(minutes=1)).sent == n


@pytest.fixture
def sent(app, api):
    send_campaign(app, api, 2, track_opens=True, track_clicks=True)


def message_ids(html: str) -> list[str]:
    return re.findall(r'href="/outbox/([0-9a-f-]{36})"', html)


def test_it_needs_a_login(client):
    assert client.get("/outbox").status_code == 303
    assert client.get(f"/outbox/{uuid.uuid4()}").status_code == 303


def test_the_list_shows_the_workspaces_messages_newest_first(client, owner, login, sent):
    login(owner)

    html = client.get("/outbox").get_data(as_text=True)

    assert "2 messages" in html
    assert len(message_ids(html)) == 2
    assert ">Hello Person0</a>" in html and ">Hello Person1</a>" in html
    assert "<td>person0@example.com</td>" in html


def test_a_message_shows_its_headers_text_and_a_sandboxed_html_part(client, owner, login, sent):
    login(owner)
    message_id = message_ids(client.get("/outbox").get_data(as_text=True))[0]

    html = client.get(f"/outbox/{message_id}").get_data(as_text=True)

    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert f"<dt>{name}</dt>" in html, name
    assert "<dd>List-Unsubscribe=One-Click</dd>" in html
    text = re.search(r'<pre class="message-text"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert html_lib.unescape(text).startswith("Hi Person")
    frame = re.search(r"<iframe [^>]*>", html).group(0)
    assert ' sandbox srcdoc="' in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame
    srcdoc = html_lib.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert "<p>Hi Person" in srcdoc and "<script" not in srcdoc
    # Viewing must not fire the open pixel nor offer the click-tracking redirect.
    assert "/t/o/" not in srcdoc and "/t/c/" not in srcdoc and " src=" not in srcdoc
    assert "/t/o/" in html_lib.unescape(re.search(r'<pre class="message-raw"[^>]*>(.*?)</pre>', html, re.S).group(1))


def test_a_plain_text_message_has_no_frame(app, client, owner, login):
    raw = "From: a@acme.test\r\nTo: b@example.com\r\nSubject: Plain\r\nContent-Type: text/plain\r\n\r\nJust text.\r\n"
    with app.app_context():
        message = OutboxMessage(
            workspace_id=owner.workspace_id,
            message_id="<plain@acme.test>",
            from_email="a@acme.test",
            to_email="b@example.com",
            subject="Plain",
            raw=raw,
        )
        db.session.add(message)
        db.session.commit()
        message_id = message.id
    login(owner)

    html = client.get(f"/outbox/{message_id}").get_data(as_text=True)

    assert "Just text." in html and "This message has no HTML part." in html and "<iframe" not in html


def test_outsiders_see_only_their_own_messages_and_404_for_others(app, api, client, owner, outsider, login, sent):
    send_campaign(app, api.as_(outsider), 1, domain="globex.test")
    with app.app_context():
        owners = [str(m.id) for m in db.session.query(OutboxMessage).filter_by(workspace_id=owner.workspace_id)]
    login(outsider)

    html = client.get("/outbox").get_data(as_text=True)

    assert "1 message" in html and "person0@globex.test" in html and "example.com" not in html
    assert not set(message_ids(html)) & set(owners)
    for message_id in owners:
        assert client.get(f"/outbox/{message_id}").status_code == 404
    assert client.get(f"/outbox/{uuid.uuid4()}").status_code == 404
    assert client.get("/outbox/not-a-uuid").status_code == 404


def test_the_list_is_paginated_and_a_fragment_for_htmx(app, client, owner, login):
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with app.app_context():
        for n in range(30):
            db.session.add(
                OutboxMessage(
                    workspace_id=owner.workspace_id,
                    message_id=f"<m{n}@acme.test>",
                    from_email="a@acme.test",
                    to_email=f"p{n}@example.com",
                    subject=f"Message {n:02d}",
                    raw=f"Subject: Message {n:02d}\r\n\r\nBody\r\n",
                    created_at=start + timedelta(minutes=n),
                )
            )
        db.session.commit()
    login(owner)

    first = client.get("/outbox").get_data(as_text=True)
    fragment = client.get("/outbox?page=2", headers={"HX-Request": "true"})
    restore = client.get("/outbox?page=2", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})

    subjects = re.findall(r">(Message \d\d)</a>", first)
    assert subjects[0] == "Message 29" and len(subjects) == 25
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="outbox-list"')
    assert re.findall(r">(Message \d\d)</a>", body) == [f"Message {n:02d}" for n in range(4, -1, -1)]
    assert 'hx-get="/outbox?page=1" hx-target="#outbox-list"' in body
    assert restore.get_data(as_text=True).startswith("<!doctype html>")
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_empty_outbox_says_what_will_appear(client, owner, login):
    login(owner)

    assert "The outbox is empty" in client.get("/outbox").get_data(as_text=True)

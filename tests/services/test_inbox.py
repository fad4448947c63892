"""Hearing replies: the worker sends from a mailbox over real SMTP (aiosmtpd with AUTH), the
contact's answer, out-of-office notice or bounce is put in the mailbox's real IMAP inbox
(Dovecot), and the worker's next run reads it and acts on it."""

import email
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import format_datetime

import pytest
import sqlalchemy as sa

from tests.services.test_worker_mailboxes import MONDAY, add_mailbox, campaign
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignEvent, Contact, InboundMessage, Mailbox, Workspace
from webapp.services import inbox, workspaces
from webapp.worker import Worker

pytestmark = pytest.mark.usefixtures("imap_server")

ANSWERED = MONDAY + timedelta(minutes=30)  # the Date of the answers, on the worker's clock
TWO_STEPS = (
    {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}"},
    {"subject": "", "body": "Any news?", "delay_days": 2},
)


@pytest.fixture
def smtp_app(app, auth_smtp_server):
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=auth_smtp_server.port)
    return app


@pytest.fixture
def ada(api, auth_smtp_server, mailbox) -> dict:
    """A mailbox that sends as ada over SMTP and reads the Dovecot user's inbox."""
    imap = {
        "host": "127.0.0.1",
        "port": mailbox.port,
        "security": "none",
        "username": mailbox.username,
        "password": mailbox.password,
    }
    return add_mailbox(api, auth_smtp_server, "ada", "ada-secret", imap=imap)


@pytest.fixture
def worker(smtp_app) -> Worker:
    return Worker(smtp_app, read_every=timedelta(0))


def sent(auth_sink) -> dict[str, email.message.EmailMessage]:
    """The last message the SMTP server accepted for each recipient."""
    messages = [email.message_from_bytes(content, policy=policy.default) for *_, content, _login in auth_sink.received]
    return {m["To"].addresses[0].addr_spec: m for m in messages}


def reply(
    to: email.message.EmailMessage,
    text: str,
    *,
    threaded: bool = True,
    sender: str | None = None,
    thread_id: str | None = None,
) -> bytes:
    """What a contact's mail program sends back: new text above the quoted message."""
    headers = [
        f"From: {sender or to['To']}",
        f"To: {to['From']}",
        f"Subject: Re: {to['Subject']}",
        f"Date: {format_datetime(ANSWERED)}",
        f"Message-ID: <reply-{abs(hash((to['Message-ID'], text, sender)))}@example.com>",
    ]
    if threaded:
        parent = thread_id or to["Message-ID"]
        headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
    quoted = "\n".join(f"> {line}" for line in to.get_body(("plain",)).get_content().splitlines())
    body = f"{text}\n\nOn Mon, 3 Mar 2031 at 09:00, Ada wrote:\n{quoted}\n"
    return ("\n".join([*headers, "Content-Type: text/plain; charset=utf-8", "", body])).encode()


def out_of_office(to: email.message.EmailMessage, text: str) -> bytes:
    return (
        f"From: {to['To']}\nTo: {to['From']}\nSubject: Automatic reply: {to['Subject']}\n"
        f"Date: {format_datetime(ANSWERED)}\nMessage-ID: <ooo-{abs(hash(text))}@example.com>\n"
        f"Auto-Submitted: auto-replied\nIn-Reply-To: {to['Message-ID']}\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{text}\n"
    ).encode()


def bounce(to: email.message.EmailMessage, *, status: str = "5.1.1", action: str = "failed") -> bytes:
    """An RFC 3464 delivery status notification returning `to`'s headers, as Postfix sends it."""
    recipient = to["To"].addresses[0].addr_spec
    returned = "".join(f"{name}: {value}\n" for name, value in to.items())
    return f"""From: MAILER-DAEMON@mail.acme.test (Mail Delivery System)
To: ada@acme.test
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(ANSWERED)}
Message-ID: <dsn-{abs(hash((recipient, status)))}@mail.acme.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain; charset=utf-8

Your message could not be delivered to <{recipient}>.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.acme.test

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected

--B
Content-Type: text/rfc822-headers

{returned}
--B--
""".encode()


def uuid_of(instance: dict) -> uuid.UUID:
    return uuid.UUID(instance["id"])


def enrollments(app) -> dict[str, CampaignEnrollment]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(CampaignEnrollment, Contact.email).join(Contact, Contact.id == CampaignEnrollment.contact_id)
        ).all()
        db.session.expunge_all()
        return {address: enrollment for enrollment, address in rows}


def events_of(app, kind: str) -> list[CampaignEvent]:
    with app.app_context():
        found = db.session.scalars(sa.select(CampaignEvent).where(CampaignEvent.type == kind)).all()
        db.session.expunge_all()
        return found


def inbound(app) -> list[InboundMessage]:
    with app.app_context():
        found = db.session.scalars(sa.select(InboundMessage).order_by(InboundMessage.uid)).all()
        db.session.expunge_all()
        return found


def test_a_reply_in_the_thread_stops_the_contact_in_every_campaign_and_is_read_once(
    smtp_app, api, ada, mailbox, worker, auth_sink
):
    first = campaign(api, [ada], 2, steps=TWO_STEPS)
    other = campaign(api, [ada], 1, steps=TWO_STEPS, allow_other_campaigns=True)  # person0 is in both
    assert worker.run_once(now=MONDAY).sent == 3
    to_person0 = sent(auth_sink)["person0@example.com"]
    uid = mailbox.append(reply(to_person0, "Yes, let's talk on Thursday.\n\n-- \nBob\nVP Sales"))

    report = worker.run_once(now=MONDAY + timedelta(hours=1))
    assert (report.inbox.messages, report.inbox.replies, report.inbox.unmatched) == (1, 1, 0)

    state = enrollments(smtp_app)
    assert state["person0@example.com"].status == "replied"
    assert state["person1@example.com"].status == "active"
    with smtp_app.app_context():
        statuses = db.session.execute(
            sa.select(CampaignEnrollment.instance_id, CampaignEnrollment.status)
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .where(Contact.email == "person0@example.com")
        ).all()
    assert dict(statuses) == {
        uuid_of(first): "replied",
        uuid_of(other): "replied",  # reply_stops defaults to the workspace
    }
    [event] = events_of(smtp_app, "replied")
    assert event.meta["snippet"] == "Yes, let's talk on Thursday."
    assert event.step_id is not None and event.provider == "inbox"
    [message] = inbound(smtp_app)
    assert (message.kind, message.uid, message.from_email) == ("reply", uid, "person0@example.com")
    assert "\\Seen" not in mailbox.flags(uid)  # read-only: the rep still sees it as new

    # A second message in the conversation is kept for the Inbox, but the contact replied once.
    mailbox.append(reply(to_person0, "Also, can you send the deck?"))
    assert worker.run_once(now=MONDAY + timedelta(hours=2)).inbox.replies == 1
    assert len(events_of(smtp_app, "replied")) == 1 and len(inbound(smtp_app)) == 2

    # The follow-up goes to person1 only; reading again changes nothing.
    report = worker.run_once(now=MONDAY + timedelta(days=2, minutes=1))
    assert report.sent == 1 and report.inbox.messages == 0
    assert len(events_of(smtp_app, "replied")) == 1


def test_reply_stops_campaign_keeps_the_contact_in_other_campaigns(smtp_app, api, ada, mailbox, worker, auth_sink):
    campaign(api, [ada], 1, steps=TWO_STEPS)
    campaign(api, [ada], 1, steps=TWO_STEPS, allow_other_campaigns=True)
    with smtp_app.app_context():
        workspaces.set_reply_stops(db.session.scalars(sa.select(Workspace)).one(), "campaign")
    worker.run_once(now=MONDAY)
    to_person0 = next(iter(sent(auth_sink).values()))
    mailbox.append(reply(to_person0, "Not now, thanks."))
    worker.run_once(now=MONDAY + timedelta(hours=1))
    with smtp_app.app_context():
        statuses = sorted(db.session.scalars(sa.select(CampaignEnrollment.status)))
    assert statuses == ["active", "replied"]


def test_reply_stops_domain_reaches_colleagues(smtp_app, api, ada, mailbox, worker, auth_sink):
    campaign(api, [ada], 3, steps=TWO_STEPS)
    api.post(
        "/contacts",
        json={"email": "someone@elsewhere.test", "first_name": "Else"},
    )
    with smtp_app.app_context():
        workspaces.set_reply_stops(db.session.scalars(sa.select(Workspace)).one(), "domain")
    worker.run_once(now=MONDAY)
    mailbox.append(reply(sent(auth_sink)["person1@example.com"], "Please stop writing to our team."))
    worker.run_once(now=MONDAY + timedelta(hours=1))
    assert {address: e.status for address, e in enrollments(smtp_app).items()} == {
        f"person{i}@example.com": "replied" for i in range(3)
    }
    assert len(events_of(smtp_app, "replied")) == 1  # only the one who wrote counts as a reply


def test_an_answer_without_thread_headers_matches_by_address_and_a_stranger_is_kept_unmatched(
    smtp_app, api, ada, mailbox, worker, auth_sink
):
    campaign(api, [ada], 2, steps=TWO_STEPS)
    worker.run_once(now=MONDAY)
    to_person1 = sent(auth_sink)["person1@example.com"]
    mailbox.append(reply(to_person1, "Who are you?", threaded=False))
    # A stranger answering a forward of it: the thread is theirs, not ours.
    forwarded = "<fwd-1@nowhere.test>"
    mailbox.append(reply(to_person1, "Who is this?", sender="stranger@nowhere.test", thread_id=forwarded))

    report = worker.run_once(now=MONDAY + timedelta(hours=1))
    assert (report.inbox.replies, report.inbox.unmatched) == (1, 1)
    assert enrollments(smtp_app)["person1@example.com"].status == "replied"
    stranger = next(m for m in inbound(smtp_app) if m.from_email == "stranger@nowhere.test")
    assert stranger.enrollment_id is None and stranger.subject.startswith("Re: ")
    assert stranger.snippet == "Who is this?"  # from the message's first bytes only


def test_a_forged_in_reply_to_naming_another_workspaces_message_matches_nothing(
    smtp_app, api, ada, mailbox, worker, auth_sink, outsider, auth_smtp_server, make_imap_user
):
    campaign(api, [ada], 1, steps=TWO_STEPS)
    theirs = api.as_(outsider)
    other_box = make_imap_user()
    globex = add_mailbox(
        theirs,
        auth_smtp_server,
        "bo",
        "bo-secret",
        imap={
            "host": "127.0.0.1",
            "port": other_box.port,
            "security": "none",
            "username": other_box.username,
            "password": other_box.password,
        },
    )
    campaign(theirs, [globex], 1, steps=TWO_STEPS, start=5)
    worker.run_once(now=MONDAY)
    ours = sent(auth_sink)["person0@example.com"]
    # Someone writes to Globex's mailbox quoting Acme's Message-ID, from an address Globex never wrote to.
    other_box.append(reply(ours, "Gotcha", sender="attacker@evil.test"))
    worker.run_once(now=MONDAY + timedelta(hours=1))

    assert enrollments(smtp_app)["person0@example.com"].status == "active"
    [message] = inbound(smtp_app)
    assert message.enrollment_id is None and message.delivery_id is None
    assert events_of(smtp_app, "replied") == []


def test_an_out_of_office_answer_keeps_the_contact_and_delays_the_next_step_to_the_return_date(
    smtp_app, api, ada, mailbox, worker, auth_sink
):
    instance = campaign(api, [ada], 2, steps=TWO_STEPS)
    worker.run_once(now=MONDAY)
    mailbox.append(
        out_of_office(
            sent(auth_sink)["person0@example.com"],
            "I am out of the office until 20 March 2031 with limited access to email.",
        )
    )
    report = worker.run_once(now=MONDAY + timedelta(hours=1))
    assert report.inbox.auto_replies == 1

    away = enrollments(smtp_app)["person0@example.com"]
    assert away.status == "active"
    assert away.next_action_at == datetime(2031, 3, 20, tzinfo=UTC)
    assert "out of office" in away.wait_reason
    [event] = events_of(smtp_app, "auto_replied")
    assert event.meta["return_date"] == "2031-03-20"

    # The schedule preview says why, and only person1 gets the follow-up on Wednesday.
    preview = api.get(f"/instances/{instance['id']}/schedule").get_json()["data"]
    waits = {item["contact_email"]: item for item in preview["items"]}
    assert "out of office" in waits["person0@example.com"]["reason"]
    assert waits["person0@example.com"]["due_at"].startswith("2031-03-20")
    assert worker.run_once(now=MONDAY + timedelta(days=2, minutes=1)).sent == 1
    assert worker.run_once(now=datetime(2031, 3, 20, 9, 1, tzinfo=UTC)).sent == 1


def test_a_hard_bounce_suppresses_the_address_and_a_soft_one_does_not_stop(
    smtp_app, api, ada, mailbox, worker, auth_sink
):
    campaign(api, [ada], 2, steps=TWO_STEPS)
    worker.run_once(now=MONDAY)
    messages = sent(auth_sink)
    mailbox.append(bounce(messages["person0@example.com"]))
    mailbox.append(bounce(messages["person1@example.com"], status="4.2.2", action="delayed"))

    report = worker.run_once(now=MONDAY + timedelta(hours=1))
    assert report.inbox.bounces == 2

    state = enrollments(smtp_app)
    assert (state["person0@example.com"].status, state["person1@example.com"].status) == ("bounced", "active")
    with smtp_app.app_context():
        assert db.session.scalar(sa.select(Contact.status).where(Contact.email == "person0@example.com")) == "bounced"
    types = sorted(e.meta["bounce_type"] for e in events_of(smtp_app, "bounced"))
    assert types == ["hard", "soft"]


def test_a_renumbered_folder_is_read_again_without_applying_a_message_twice(
    smtp_app, api, auth_smtp_server, make_imap_user, worker, auth_sink
):
    box = make_imap_user()
    box.create("Replies")
    imap = {
        "host": "127.0.0.1",
        "port": box.port,
        "security": "none",
        "username": box.username,
        "password": box.password,
        "folder": "Replies",
    }
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret", imap=imap)
    campaign(api, [ada], 2, steps=TWO_STEPS)
    worker.run_once(now=MONDAY)
    messages = sent(auth_sink)
    first = reply(messages["person0@example.com"], "Interested.")
    box.append(first, folder="Replies")
    worker.run_once(now=MONDAY + timedelta(hours=1))

    box.delete("Replies")  # a new UIDVALIDITY: every UID starts again
    box.create("Replies")
    box.append(first, folder="Replies")
    box.append(reply(messages["person1@example.com"], "Call me."), folder="Replies")
    report = worker.run_once(now=MONDAY + timedelta(hours=2))

    assert (report.inbox.messages, report.inbox.replies) == (1, 1)
    assert len(events_of(smtp_app, "replied")) == 2
    assert {m.from_email for m in inbound(smtp_app)} == {"person0@example.com", "person1@example.com"}


def test_a_mailbox_read_by_another_worker_is_left_alone(smtp_app, ada):
    now = datetime.now(UTC)
    with smtp_app.app_context():
        mailbox_id = db.session.scalars(sa.select(Mailbox.id)).one()
        assert inbox.claim_mailbox(mailbox_id, now) is True
        assert inbox.claim_mailbox(mailbox_id, now + timedelta(minutes=1)) is False
        assert inbox.read_due_mailboxes(now, every=timedelta(0)).mailboxes == 0
        assert inbox.claim_mailbox(mailbox_id, now + inbox.LEASE + timedelta(seconds=1)) is True


def test_a_huge_message_keeps_its_headers(smtp_app, api, ada, mailbox, worker, auth_sink, monkeypatch):
    monkeypatch.setattr(inbox, "MAX_BODY_BYTES", 20_000)
    campaign(api, [ada], 1, steps=TWO_STEPS)
    worker.run_once(now=MONDAY)
    big = reply(sent(auth_sink)["person0@example.com"], "See the attachment.\n" + ("x" * 100 + "\n") * 500)
    mailbox.append(big)
    assert worker.run_once(now=MONDAY + timedelta(hours=1)).inbox.replies == 1
    [message] = inbound(smtp_app)
    assert "body not read" in message.snippet
    assert enrollments(smtp_app)["person0@example.com"].status == "replied"


def test_a_wrong_imap_password_is_shown_on_the_mailbox_and_sending_goes_on(
    smtp_app, api, auth_smtp_server, mailbox, worker, auth_sink
):
    imap = {"host": "127.0.0.1", "port": mailbox.port, "security": "none", "username": mailbox.username}
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret", imap={**imap, "password": "wrong"})
    campaign(api, [ada], 2, steps=TWO_STEPS)
    report = worker.run_once(now=MONDAY)
    assert report.sent == 2
    assert len(report.inbox.errors) == 1 and "authentication failed" in report.inbox.errors[0]
    shown = api.get(f"/mailboxes/{ada['id']}").get_json()["data"]
    assert "authentication failed" in shown["imap"]["error"]

    api.patch(f"/mailboxes/{ada['id']}", json={"imap": {**imap, "password": mailbox.password}})
    assert worker.run_once(now=MONDAY + timedelta(minutes=5)).inbox.errors == []
    assert api.get(f"/mailboxes/{ada['id']}").get_json()["data"]["imap"]["error"] is None


def test_flask_inbox_once_reads_without_sending(smtp_app, api, ada, mailbox, auth_sink):
    campaign(api, [ada], 1, steps=TWO_STEPS)
    result = smtp_app.test_cli_runner().invoke(args=["inbox", "--once"])
    assert result.exit_code == 0, result.output
    assert "mailboxes=1 messages=0" in result.output
    assert auth_sink.received == []


def test_imap_plain_login_fails_cleanly_when_the_server_is_down(smtp_app, api, auth_smtp_server, worker):
    from tests.imap_server import unused_port

    imap = {"host": "127.0.0.1", "port": unused_port(), "security": "none", "username": "x", "password": "y"}
    add_mailbox(api, auth_smtp_server, "ada", "ada-secret", imap=imap)
    report = worker.run_once(now=MONDAY)
    assert len(report.inbox.errors) == 1 and "could not connect" in report.inbox.errors[0]


def test_an_untrusted_certificate_and_a_silent_server_are_named_and_the_worker_goes_on(
    smtp_app, api, auth_smtp_server, mailbox, worker
):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never says a word
    smtp_app.config["IMAP_TIMEOUT"] = 1
    try:
        tls = {"host": "127.0.0.1", "port": mailbox.tls_port, "security": "ssl", "username": mailbox.username}
        add_mailbox(api, auth_smtp_server, "ada", "ada-secret", imap={**tls, "password": mailbox.password})
        quiet = {"host": "127.0.0.1", "port": silent.getsockname()[1], "security": "none", "username": "x"}
        add_mailbox(api, auth_smtp_server, "bo", "bo-secret", imap={**quiet, "password": "y"})

        report = worker.run_once(now=MONDAY)
    finally:
        silent.close()

    assert sorted(error.split(":")[0] for error in report.inbox.errors) == ["TLS handshake failed", "timed out"]
    shown = {m["from_email"]: m["imap"]["error"] for m in api.get("/mailboxes").get_json()["data"]}
    assert shown["ada@acme.test"].startswith("TLS handshake failed")
    assert shown["bo@acme.test"].startswith("timed out")


def test_reply_stops_domain_never_reaches_everyone_at_a_free_mail_domain(
    smtp_app, api, ada, mailbox, worker, auth_sink
):
    campaign(api, [ada], 3, steps=TWO_STEPS, domain="gmail.com")
    with smtp_app.app_context():
        workspaces.set_reply_stops(db.session.scalars(sa.select(Workspace)).one(), "domain")
    worker.run_once(now=MONDAY)
    mailbox.append(reply(sent(auth_sink)["person1@gmail.com"], "Sure, call me."))
    worker.run_once(now=MONDAY + timedelta(hours=1))
    assert {address: e.status for address, e in enrollments(smtp_app).items()} == {
        "person0@gmail.com": "active",
        "person1@gmail.com": "replied",
        "person2@gmail.com": "active",
    }

"""The worker sending from the team's mailboxes, over a real SMTP server that wants a login:
each contact keeps its mailbox, caps hold per mailbox across campaigns, a failing mailbox waits,
follow-ups go in the thread."""

import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, Mailbox
from webapp.worker import Worker

MONDAY = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def smtp_app(app, auth_smtp_server):
    """Real SMTP: the default sender is the server too (as ada), mailboxes log in as themselves."""
    app.config.update(
        MAIL_TRANSPORT="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=auth_smtp_server.port,
        SMTP_USERNAME="ada",
        SMTP_PASSWORD="ada-secret",
        SMTP_HELO_NAME="localhost",
    )
    return app


def add_mailbox(api, server, login: str, password: str, **fields) -> dict:
    body = {
        "name": login.capitalize(),
        "from_name": f"{login.capitalize()} at Acme",
        "from_email": f"{login}@acme.test",
        "smtp": {"host": "127.0.0.1", "port": server.port, "security": "none", "username": login, "password": password},
        **fields,
    }
    response = api.post("/mailboxes", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def campaign(
    api, mailboxes: list[dict], n: int, *, steps: tuple[dict, ...] | None = None, start: int = 0, **enroll_options
) -> dict:
    template = api.post(
        "/templates", json={"name": "From mailboxes", "settings": {"mailbox_ids": [m["id"] for m in mailboxes]}}
    ).get_json()["data"]
    for step in steps or ({"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}"},):
        response = api.post(f"/templates/{template['id']}/sequences/email", json=step)
        assert response.status_code == 201, response.get_json()
    instance = factories.instance(api, template_data={"id": template["id"]})
    factories.enroll(api, instance["id"], n, start=start, **enroll_options)
    # Contacts enrolled in two campaigns on purpose: the launch check's warning is confirmed.
    launch = {"status": "active", "confirm": bool(enroll_options.get("allow_other_campaigns"))}
    assert api.patch(f"/instances/{instance['id']}", json=launch).status_code == 200
    return instance


def received(sink) -> list[tuple[str, email.message.EmailMessage]]:
    """(login, message) of each message the server accepted."""
    return [(login, email.message_from_bytes(content, policy=policy.default)) for *_, content, login in sink.received]


def test_each_contact_keeps_the_mailbox_it_got_first_and_new_ones_spread(smtp_app, api, auth_smtp_server, auth_sink):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    bo = add_mailbox(api, auth_smtp_server, "bo", "bo-secret")
    steps = (
        {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}"},
        {"subject": "Following up", "body": "Any news?", "delay_days": 2},
    )
    instance = campaign(api, [ada, bo], 6, steps=steps)
    worker = Worker(smtp_app)

    assert worker.run_once(now=MONDAY).sent == 6
    assert worker.run_once(now=MONDAY + timedelta(days=2, minutes=1)).sent == 6

    by_contact: dict[str, set] = {}
    for login, message in received(auth_sink):
        assert message["From"] == f"{login.capitalize()} at Acme <{login}@acme.test>"
        by_contact.setdefault(message["To"], set()).add(login)
    assert all(len(logins) == 1 for logins in by_contact.values())  # every step from the same mailbox
    assert sorted(next(iter(v)) for v in by_contact.values()) == ["ada"] * 3 + ["bo"] * 3
    enrollments = api.get(f"/instances/{instance['id']}/enrollments?limit=10").get_json()["data"]
    assert {e["status"] for e in enrollments} == {"completed"}


def test_a_mailbox_cap_holds_across_campaigns_and_its_ramp_up_grows_it(smtp_app, api, auth_smtp_server, auth_sink):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret", daily_cap=10, ramp={"start": 2, "increase": 1})
    first = campaign(api, [ada], 3)
    campaign(api, [ada], 3, start=100)
    worker = Worker(smtp_app)

    assert worker.run_once(now=datetime.now(UTC) + timedelta(minutes=1)).sent == 2  # the ramp's first day
    listed = api.get(f"/mailboxes/{ada['id']}").get_json()["data"]
    assert (listed["sent_today"], listed["cap_today"]) == (2, 2)
    schedule = api.get(f"/instances/{first['id']}/schedule").get_json()["data"]["items"]
    waiting = [item for item in schedule if item["reason"] and "daily cap reached" in item["reason"]]
    assert waiting, schedule
    assert worker.run_once(now=datetime.now(UTC) + timedelta(days=1, minutes=1)).sent == 3  # day two: 2 + 1
    assert worker.run_once(now=datetime.now(UTC) + timedelta(days=2, minutes=1)).sent == 1
    assert len(auth_sink.received) == 6 and {login for *_, login in auth_sink.received} == {"ada"}


def test_a_refused_login_marks_the_mailbox_failing_and_its_contacts_wait_unharmed(
    smtp_app, app, api, auth_smtp_server, auth_sink
):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    bo = add_mailbox(api, auth_smtp_server, "bo", "not-bo-s-password")
    instance = campaign(api, [ada, bo], 4)
    worker = Worker(smtp_app)
    now = datetime.now(UTC) + timedelta(minutes=1)

    first = worker.run_once(now=now)

    failing = api.get(f"/mailboxes/{bo['id']}").get_json()["data"]
    assert failing["state"] == "failing" and "authentication failed" in failing["last_error"]
    sent_by_ada = first.sent
    assert sent_by_ada >= 2 and {login for *_, login in auth_sink.received} == {"ada"}
    schedule = api.get(f"/instances/{instance['id']}/schedule").get_json()["data"]["items"]
    stuck = [item for item in schedule if item["reason"] and "mailbox is failing" in item["reason"]]
    assert stuck and len(stuck) == 4 - sent_by_ada
    assert worker.run_once(now=now + timedelta(minutes=30)).sent == 0  # still failing: still waiting

    api.patch(f"/mailboxes/{bo['id']}", json={"smtp": {"password": "bo-secret"}})
    assert worker.run_once(now=now + timedelta(minutes=45)).sent == 4 - sent_by_ada
    logins = [login for *_, login in auth_sink.received]
    assert sorted(logins).count("bo") == 4 - sent_by_ada and len(logins) == 4
    with app.app_context():
        assert set(db.session.scalars(sa.select(Delivery.attempts))) == {1}  # the refusals were not the contacts'


def test_a_mailbox_whose_server_keeps_failing_rests_and_its_contacts_wait(smtp_app, app, api, auth_smtp_server):
    from tests.imap_server import unused_port

    smtp_app.config.update(WORKER_PAUSE_AFTER_FAILURES=2, WORKER_PAUSE_SECONDS=600)
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    api.patch(f"/mailboxes/{ada['id']}", json={"smtp": {"port": unused_port()}})  # nothing listens there
    instance = campaign(api, [ada], 3)
    now = datetime.now(UTC) + timedelta(minutes=1)

    report = Worker(smtp_app).run_once(now=now)

    assert report.sent == 0
    shown = api.get(f"/mailboxes/{ada['id']}").get_json()["data"]
    assert shown["state"] == "active" and shown["resting_until"] is not None  # not a person's problem yet
    schedule = api.get(f"/instances/{instance['id']}/schedule").get_json()["data"]["items"]
    # Nobody goes before the mailbox's rest ends; those not tried yet say why.
    assert len(schedule) == 3 and all(item["due_at"] >= shown["resting_until"] for item in schedule), schedule
    assert any("keeps failing" in (item["reason"] or "") for item in schedule), schedule
    with app.app_context():
        assert set(db.session.scalars(sa.select(CampaignEnrollment.status))) == {"active"}


def test_a_paused_mailbox_holds_its_contacts_until_resumed(smtp_app, api, auth_smtp_server, auth_sink):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    campaign(api, [ada], 2)
    api.patch(f"/mailboxes/{ada['id']}", json={"state": "paused"})
    worker = Worker(smtp_app)
    now = datetime.now(UTC) + timedelta(minutes=1)

    assert worker.run_once(now=now).sent == 0
    api.patch(f"/mailboxes/{ada['id']}", json={"state": "active"})
    assert worker.run_once(now=now + timedelta(minutes=11)).sent == 2


def test_a_follow_up_without_a_subject_replies_in_the_thread_from_the_same_mailbox(
    smtp_app, api, auth_smtp_server, auth_sink
):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    bo = add_mailbox(api, auth_smtp_server, "bo", "bo-secret")
    steps = (
        {"subject": "Quick question, {{ first_name }}", "body": "Hi {{ first_name }}"},
        {"body": "Bumping this up.", "delay_days": 2},
        {"body": "Last one.", "delay_days": 2},
    )
    campaign(api, [ada, bo], 2, steps=steps)
    worker = Worker(smtp_app)
    for days in (0, 2, 4):
        assert worker.run_once(now=MONDAY + timedelta(days=days, minutes=1)).sent == 2

    for recipient in {message["To"] for _, message in received(auth_sink)}:
        thread = [(login, m) for login, m in received(auth_sink) if m["To"] == recipient]
        (first_login, first), (_, second), (_, third) = thread
        assert {login for login, _ in thread} == {first_login}
        assert first["Subject"].startswith("Quick question, Person")
        assert second["Subject"] == third["Subject"] == f"Re: {first['Subject']}"
        assert second["In-Reply-To"] == first["Message-ID"] and second["References"] == first["Message-ID"]
        assert third["In-Reply-To"] == second["Message-ID"]
        assert third["References"].split() == [first["Message-ID"], second["Message-ID"]]


def test_the_first_email_step_cannot_be_a_reply(api):
    template = api.post("/templates", json={"name": "No subject"}).get_json()["data"]

    response = api.post(f"/templates/{template['id']}/sequences/email", json={"body": "Hi"})

    assert response.status_code == 409 and "first email step needs a subject" in response.get_json()["message"]
    assert api.get(f"/templates/{template['id']}").get_json()["data"]["steps"] == []


def test_with_the_outbox_transport_mailboxes_stay_in_the_outbox(app, api, auth_smtp_server, auth_sink):
    ada = add_mailbox(api, auth_smtp_server, "ada", "ada-secret")
    campaign(api, [ada], 2)

    assert Worker(app).run_once(now=datetime.now(UTC) + timedelta(minutes=1)).sent == 2

    assert auth_sink.received == []
    with app.app_context():
        from webapp.models import OutboxMessage

        assert set(db.session.scalars(sa.select(OutboxMessage.from_email))) == {"ada@acme.test"}
        assert set(db.session.scalars(sa.select(Delivery.mailbox_id))) == {db.session.scalar(sa.select(Mailbox.id))}

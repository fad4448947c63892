"""The worker against a real SMTP server (aiosmtpd), over simulated time."""

import email
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import sqlalchemy as sa

from tests import builders, factories
from webapp import worker as worker_module
from webapp.engine.mailer import SmtpTransport
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery, OutboxMessage, Task
from webapp.services.sending import claim, compose, record
from webapp.worker import Worker


@pytest.fixture
def smtp(smtp_server):
    with SmtpTransport("127.0.0.1", smtp_server.port, local_hostname="localhost", timeout=5) as transport:
        yield transport


@pytest.fixture
def worker(app, smtp):
    return Worker(app, transport=smtp)


def later(days=0, hours=0, minutes=1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days, hours=hours, minutes=minutes)


def three_step_campaign(api, n: int, *, allow_other_campaigns: bool = False, **settings) -> dict:
    template = api.post("/templates", json={"name": "Three steps", "settings": settings}).get_json()["data"]
    for number, delay in ((1, 0), (2, 2), (3, 3)):
        response = api.post(
            f"/templates/{template['id']}/sequences/email",
            json={
                "subject": f"Step {number} for {{{{ first_name }}}}",
                "body": f"Hi {{{{ first_name }}}},\n\nThis is step {number}. [Our site](https://example.org/page)",
                "delay_days": delay,
            },
        )
        assert response.status_code == 201, response.get_json()
    instance = factories.instance(api, template_data={"id": template["id"]})
    factories.enroll(api, instance["id"], n, allow_other_campaigns=allow_other_campaigns)
    # Contacts enrolled in two campaigns on purpose: the launch check's warning is confirmed.
    launch = {"status": "active", "confirm": allow_other_campaigns}
    assert api.patch(f"/instances/{instance['id']}", json=launch).status_code == 200
    return instance


def messages(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(content, policy=policy.default) for *_, content in sink.received]


def test_a_three_step_campaign_to_50_contacts_delivers_exactly_150_messages(api, worker, sink):
    instance = three_step_campaign(api, 50)
    assert worker.run_once(now=later()).sent == 50
    assert worker.run_once(now=later(days=1)).sent == 0
    assert worker.run_once(now=later(days=2, minutes=5)).sent == 50
    assert worker.run_once(now=later(days=5, minutes=10)).sent == 50
    assert worker.run_once(now=later(days=30)).sent == 0
    received = messages(sink)
    assert len(received) == 150
    assert len({m["Message-ID"] for m in received}) == 150
    by_recipient = {}
    for message in received:
        by_recipient.setdefault(message["To"], []).append(message["Subject"])
    assert len(by_recipient) == 50
    assert all(
        subjects == [f"Step {n} for {s.split()[-1]}" for n in (1, 2, 3)]
        for s, subjects in ((subjects[0], subjects) for subjects in by_recipient.values())
    )
    first = received[0]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/u/" in first["List-Unsubscribe"]
    text = first.get_body(("plain",)).get_content()
    assert text.startswith("Hi Person") and "/u/" in text
    statuses = {e["status"] for e in api.get(f"/instances/{instance['id']}/enrollments?limit=100").get_json()["data"]}
    assert statuses == {"completed"}
    performance = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]
    assert performance["totals"]["sent"] == 150
    assert [s["totals"]["sent"] for s in performance["steps"]] == [50, 50, 50]


def test_a_contact_who_replies_after_step_one_receives_nothing_more(api, worker, sink):
    instance = three_step_campaign(api, 5)
    worker.run_once(now=later())
    replier = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"][0]
    api.post("/events/webhook", json={"provider_event_id": "r1", "type": "replied", "enrollment_id": replier["id"]})
    worker.run_once(now=later(days=2, minutes=5))
    worker.run_once(now=later(days=5, minutes=10))
    to_replier = [m for m in messages(sink) if m["To"] == replier["contact"]["email"]]
    assert len(to_replier) == 1
    assert len(sink.received) == 1 + 4 * 3


def test_nothing_goes_to_a_contact_suppressed_after_enrollment_or_to_a_paused_campaign(api, worker, sink):
    instance = three_step_campaign(api, 3)
    contact_id = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"][0]["contact_id"]
    api.put(f"/contacts/{contact_id}/suppression", json={"status": "unsubscribed"})
    api.patch(f"/instances/{instance['id']}", json={"status": "paused"})
    assert worker.run_once(now=later()).sent == 0
    api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    assert worker.run_once(now=later(minutes=2)).sent == 2
    assert "person0@example.com" not in {m["To"] for m in messages(sink)}


def test_a_temporary_smtp_failure_is_retried_with_backoff(api, app, worker, sink):
    instance = three_step_campaign(api, 1)
    sink.data_reply = "451 4.7.1 greylisted, try later"
    assert worker.run_once(now=later()).retried == 1
    sink.data_reply = "250 OK"
    assert worker.run_once(now=later(minutes=1)).sent == 0  # backoff not over yet
    assert worker.run_once(now=later(minutes=10)).sent == 1
    with app.app_context():
        delivery = db.session.scalar(sa.select(Delivery))
        assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]["sent"] == 1


def test_a_refused_mailbox_fails_the_enrollment_and_suppresses_the_contact(api, worker, sink):
    instance = factories.instance(api, status="active")
    api.post(
        f"/instances/{instance['id']}/enrollments",
        json={"contact": {"email": "reply550-5.1.1_no_such_user@example.com", "first_name": "Gone"}},
    )
    report = worker.run_once(now=later())
    assert report.failed == 1
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    assert enrollment["status"] == "failed" and "550" in enrollment["status_reason"]
    contact = api.get(f"/contacts/{enrollment['contact_id']}").get_json()["data"]
    assert contact["status"] == "bounced" and contact["status_reason"].startswith("hard bounce: 550")


def test_a_content_rejection_fails_the_enrollment_without_suppressing(api, worker, sink):
    instance = three_step_campaign(api, 1)
    sink.data_reply = "554 5.7.1 message content rejected"
    assert worker.run_once(now=later()).failed == 1
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    assert enrollment["status"] == "failed" and enrollment["contact"]["status"] == "subscribed"


def test_an_unresolved_variable_stops_that_send_with_a_reason(api, worker, sink):
    template = api.post("/templates", json={"name": "Needs company"}).get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "About {{ company }}", "body": "Hi"})
    instance = factories.instance(api, template_data=template, status="active")
    api.post(f"/instances/{instance['id']}/enrollments", json={"contact": {"email": "nocompany@example.com"}})
    worker.run_once(now=later())
    assert sink.received == []
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    assert enrollment["status"] == "paused"
    assert "company" in enrollment["status_reason"]


def test_a_claim_never_tried_goes_back_to_the_queue_when_its_lease_ends(api, app, worker, sink):
    three_step_campaign(api, 2)
    with app.app_context():
        assert len(claim.claim_due_work(later()).deliveries) == 2  # a worker claims, then dies
    assert worker.run_once(now=later(minutes=2)).sent == 0  # the lease still holds
    report = worker.run_once(now=later(hours=1))
    assert (report.released, report.reaped, report.sent) == (2, 0, 2)
    assert len(sink.received) == 2


def test_a_message_in_flight_when_its_worker_died_becomes_unknown_and_is_never_resent_blindly(api, app, worker, sink):
    instance = three_step_campaign(api, 1)
    with app.app_context():
        assert len(builders.in_flight(later())) == 1  # marked sending, then the worker died
    report = worker.run_once(now=later(hours=1))
    assert report.reaped == 1 and report.sent == 0
    unknown = api.get("/deliveries?status=unknown").get_json()["data"]
    assert len(unknown) == 1 and unknown[0]["message_id"]
    assert worker.run_once(now=later(days=3)).sent == 0
    resolved = api.post(f"/deliveries/{unknown[0]['id']}/resolve", json={"sent": True})
    assert resolved.get_json()["data"]["status"] == "sent"
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    assert enrollment["current_step"] == 1 and enrollment["next_action_at"]
    assert api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]["sent"] == 1
    assert api.post(f"/deliveries/{unknown[0]['id']}/resolve", json={"sent": True}).status_code == 409


def test_an_unknown_delivery_resolved_as_not_sent_goes_out_again(api, app, worker, sink):
    three_step_campaign(api, 1)
    with app.app_context():
        builders.in_flight(later())
    worker.run_once(now=later(hours=1))
    unknown = api.get("/deliveries").get_json()["data"][0]
    api.post(f"/deliveries/{unknown['id']}/resolve", json={"sent": False})
    assert worker.run_once(now=later(hours=2)).sent == 1


def test_a_campaigns_unknown_deliveries_are_resolved_at_once(api, app, worker, sink, outsider):
    instance = three_step_campaign(api, 3)
    other = three_step_campaign(api, 1, allow_other_campaigns=True)  # person0 is in both
    with app.app_context():
        assert len(builders.in_flight(later())) == 4
    assert worker.run_once(now=later(hours=1)).reaped == 4
    path = f"/instances/{instance['id']}/deliveries/resolve"
    assert api.as_(outsider).post(path, json={"sent": True}).status_code == 404
    assert api.post(path, json={"sent": "yes"}).status_code == 400
    response = api.post(path, json={"sent": True})
    assert response.status_code == 200 and response.get_json()["data"] == {"resolved": 3}
    assert api.post(path, json={"sent": True}).get_json()["data"] == {"resolved": 0}
    left = api.get("/deliveries?status=unknown").get_json()["data"]
    assert [d["enrollment_id"] for d in left] == [
        e["id"] for e in api.get(f"/instances/{other['id']}/enrollments").get_json()["data"]
    ]
    enrollments = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"]
    assert {e["current_step"] for e in enrollments} == {1}
    assert worker.run_once(now=later(days=2, hours=2)).sent == 3  # their step 2, not step 1 again
    assert {m["Subject"].split()[1] for m in messages(sink)} == {"2"}


def test_linkedin_steps_become_tasks_and_done_or_skip_moves_on(api, app, worker, sink):
    template = api.post("/templates", json={"name": "Mixed"}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/linkedin",
        json={"action_type": "connection_request", "message": "Hi {{ first_name }}"},
    )
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Hello", "body": "Hi", "delay_days": 1})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 2)
    report = worker.run_once(now=later())
    assert report.tasks == 2 and report.sent == 0
    tasks = api.get(f"/tasks?instance_id={instance['id']}").get_json()
    assert tasks["pagination"]["total"] == 2
    first, second = tasks["data"]
    assert first["type"] == "connection_request" and first["contact"]["email"].endswith("@example.com")
    done = api.post(f"/tasks/{first['id']}/complete", json={})
    assert done.get_json()["data"]["status"] == "done"
    skipped = api.post(f"/tasks/{second['id']}/skip", json={"note": "no profile"})
    assert skipped.get_json()["data"]["status"] == "skipped"
    assert api.post(f"/tasks/{second['id']}/skip", json={}).status_code == 409
    assert worker.run_once(now=later(days=1, minutes=5)).sent == 2
    events = api.get(f"/enrollments/{second['enrollment_id']}/events").get_json()["data"]
    assert [e["type"] for e in events] == ["task_skipped", "sent"]


def test_overdue_tasks_can_skip_themselves(api, worker):
    template = api.post("/templates", json={"name": "Auto skip", "settings": {"task_auto_skip_hours": 24}})
    template = template.get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/linkedin", json={"action_type": "profile_visit"})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    worker.run_once(now=later())
    assert worker.run_once(now=later(hours=12)).skipped_tasks == 0
    assert worker.run_once(now=later(hours=25)).skipped_tasks == 1
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    assert enrollment["status"] == "completed"


def test_a_send_window_in_the_contacts_time_zone_defers_sends(api, worker, sink):
    window = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}
    template = api.post("/templates", json={"name": "Office hours", "settings": {"send_window": window}})
    template = template.get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Hi", "body": "Hello"})
    instance = factories.instance(api, template_data=template, status="active")
    api.post(
        f"/instances/{instance['id']}/enrollments",
        json={"contact": {"email": "tokyo@example.com", "timezone": "Asia/Tokyo"}},
    )
    saturday_noon_utc = datetime(2031, 1, 4, 12, 0, tzinfo=UTC)  # Saturday 21:00 in Tokyo
    assert worker.run_once(now=saturday_noon_utc).sent == 0
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    # Monday 09:00 in Tokyo is Monday 00:00 UTC.
    assert enrollment["next_action_at"].startswith("2031-01-06T00:00:00")
    schedule = api.get(f"/instances/{instance['id']}/schedule").get_json()["data"]["items"]
    assert schedule[0]["reason"] == "outside the send window"  # why the worker put it off
    assert schedule[0]["due_at"].startswith("2031-01-06T00:00")
    assert worker.run_once(now=datetime(2031, 1, 6, 0, 1, tzinfo=UTC)).sent == 1


def test_the_daily_cap_holds_across_days_and_follow_ups_go_first(api, worker, sink):
    template = api.post("/templates", json={"name": "Capped", "settings": {"daily_cap": 4}}).get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "One", "body": "1"})
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Two", "body": "2", "delay_hours": 1})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 6)
    day = datetime(2031, 3, 4, 8, 0, tzinfo=UTC)
    assert worker.run_once(now=day).sent == 4
    schedule = api.get(f"/instances/{instance['id']}/schedule").get_json()["data"]["items"]
    assert any(item["reason"] and "daily cap" in item["reason"] for item in schedule)
    assert worker.run_once(now=day + timedelta(hours=2)).sent == 0
    assert worker.run_once(now=day + timedelta(days=1)).sent == 4
    sent_day_two = [m["Subject"] for m in messages(sink)[4:]]
    assert sent_day_two == ["Two"] * 4  # the four follow-ups before the two new contacts
    assert worker.run_once(now=day + timedelta(days=2)).sent == 2  # the last two first steps
    assert worker.run_once(now=day + timedelta(days=2, hours=2)).sent == 2  # and their follow-ups
    assert worker.run_once(now=day + timedelta(days=3)).sent == 0
    assert len(sink.received) == 12


def test_the_outbox_transport_keeps_messages_to_look_at(api, app):
    instance = three_step_campaign(api, 2)
    Worker(app).run_once(now=later())
    with app.app_context():
        stored = list(db.session.scalars(sa.select(OutboxMessage)))
        assert len(stored) == 2
        assert all("List-Unsubscribe-Post" in m.raw for m in stored)
    assert api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]["sent"] == 2


def _unsubscribe_path(message) -> str:
    url = message["List-Unsubscribe"].split(",")[0].strip(" <>")
    return url[url.index("/u/") :]


def test_one_click_unsubscribe_posts_without_cookies_and_a_get_only_asks(api, client, worker, sink):
    instance = three_step_campaign(api, 2)
    worker.run_once(now=later())
    message = messages(sink)[0]
    path = _unsubscribe_path(message)
    page = client.get(path)
    assert page.status_code == 200 and b"Unsubscribe" in page.data
    contact = api.get(f"/contacts?search={message['To'].split('@')[0]}").get_json()["data"][0]
    assert contact["status"] == "subscribed"  # a link scanner's GET changes nothing
    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # idempotent
    assert api.get(f"/contacts/{contact['id']}").get_json()["data"]["status"] == "unsubscribed"
    worker.run_once(now=later(days=5, minutes=10))
    assert [m["To"] for m in messages(sink)].count(message["To"]) == 1
    assert client.post(path[:-3] + "abc").status_code == 404
    totals = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]
    assert totals["unsubscribed"] == 1


def test_opens_and_clicks_come_back_through_signed_links(api, client, worker, sink):
    template = api.post("/templates", json={"name": "Tracked", "settings": {"track_opens": True, "track_clicks": True}})
    template = template.get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/email",
        json={"subject": "Hi", "body": "See [the report](https://example.org/report?x=1)."},
    )
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    worker.run_once(now=later())
    html = messages(sink)[0].get_body(("html",)).get_content()
    import re

    click_path = re.search(r'href="https?://[^"/]+(/t/c/[^"]+)"', html).group(1)
    pixel_path = re.search(r'src="https?://[^"/]+(/t/o/[^"]+)"', html).group(1)
    assert client.get(pixel_path).headers["Content-Type"] == "image/gif"
    redirect = client.get(click_path)
    assert redirect.status_code == 302 and redirect.headers["Location"] == "https://example.org/report?x=1"
    tampered = click_path[:-4] + ("AAAA" if not click_path.endswith("AAAA") else "BBBB")
    assert client.get(tampered).status_code == 400
    totals = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]
    assert (totals["opened"], totals["clicked"]) == (1, 1)


def test_a_stopping_worker_finishes_the_message_in_hand_and_gives_back_the_rest(api, app, smtp, sink):
    three_step_campaign(api, 5)
    worker = Worker(app, transport=smtp)
    original = smtp.send

    def send_then_stop(*args, **kwargs):
        result = original(*args, **kwargs)
        worker.stop()  # SIGTERM arrives while the first message is in hand
        return result

    smtp.send = send_then_stop
    report = worker.run_once(now=later())
    assert report.sent == 1 and len(sink.received) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 1
        due = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(CampaignEnrollment)
            .where(CampaignEnrollment.next_action_at.is_not(None), CampaignEnrollment.current_step == 0)
        )
        assert due == 4
    smtp.send = original
    assert Worker(app, transport=smtp).run_once(now=later(minutes=2)).sent == 4


def test_the_worker_command_runs_once(app, api):
    three_step_campaign(api, 2)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent=2" in result.output


def test_tasks_are_scoped_to_the_workspace(api, outsider, worker):
    unused = uuid.uuid4()
    template = api.post("/templates", json={"name": "L"}).get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/linkedin", json={"action_type": "message", "message": "Hi"})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    worker.run_once(now=later())
    task = api.get("/tasks").get_json()["data"][0]
    other = api.as_(outsider)
    assert other.get("/tasks").get_json()["pagination"]["total"] == 0
    assert other.post(f"/tasks/{task['id']}/complete", json={}).status_code == 404
    assert other.post(f"/tasks/{unused}/skip", json={}).status_code == 404


def test_deliveries_of_other_workspaces_cannot_be_resolved(api, app, outsider, worker):
    three_step_campaign(api, 1)
    with app.app_context():
        builders.in_flight(later())
    worker.run_once(now=later(hours=1))
    delivery = api.get("/deliveries").get_json()["data"][0]
    assert api.as_(outsider).post(f"/deliveries/{delivery['id']}/resolve", json={"sent": True}).status_code == 404
    assert api.as_(outsider).get("/deliveries").get_json()["pagination"]["total"] == 0


def test_task_rows_exist_once_per_step(app, api, worker):
    template = api.post("/templates", json={"name": "Once"}).get_json()["data"]
    api.post(f"/templates/{template['id']}/sequences/linkedin", json={"action_type": "inmail"})
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 3)
    worker.run_once(now=later())
    worker.run_once(now=later(hours=1))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Task)) == 3


def test_workspace_sender_defaults_apply_under_the_campaigns_settings(api, app, owner, worker, sink):
    from webapp.services.workspaces import update_sender_defaults

    with app.app_context():
        update_sender_defaults(
            owner.workspace, {"from_name": "Ada at Acme", "from_email": "ada@acme.test", "daily_cap": 1}
        )
    three_step_campaign(api, 2)
    assert worker.run_once(now=later()).sent == 1  # the workspace's cap
    message = messages(sink)[0]
    assert message["From"] == "Ada at Acme <ada@acme.test>"


def test_contacts_of_one_batch_each_get_their_own_values_and_none_becomes_markup(api, worker, sink):
    template = api.post("/templates", json={"name": "Personal"}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/email",
        json={"subject": "For {{ first_name }}", "body": "Hi **{{ first_name }}** at {{ company }}."},
    )
    instance = factories.instance(api, template_data=template)
    people = [
        {"email": "ada@example.com", "first_name": "Ada", "company": "Analytical Engines"},
        {"email": "bob@example.com", "first_name": "Bob", "company": "[Win](https://evil.example) <b>*now*</b>"},
        {"email": "cy@example.com", "first_name": "Cy", "company": "O'Brien & Sons"},
    ]
    api.post(f"/instances/{instance['id']}/enrollments/bulk", json={"contacts": [{"contact": p} for p in people]})
    api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    assert worker.run_once(now=later()).sent == 3
    received = {m["To"]: m for m in messages(sink)}
    unsubscribe_links = set()
    for person in people:
        message = received[person["email"]]
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert message["Subject"] == f"For {person['first_name']}"
        assert f"<strong>{person['first_name']}</strong>" in html
        assert f"Hi **{person['first_name']}** at {person['company']}." in text
        link = _unsubscribe_path(message)
        assert link in html and link in text
        unsubscribe_links.add(link)
    assert len(unsubscribe_links) == 3
    bob = received["bob@example.com"].get_body(("html",)).get_content()
    assert "at [Win](https://evil.example) &lt;b&gt;*now*&lt;/b&gt;." in bob
    assert 'evil.example"' not in bob and "<b>" not in bob
    assert "O'Brien &amp; Sons" in received["cy@example.com"].get_body(("html",)).get_content()


def test_the_claim_hands_what_it_read_to_the_send(api, app):
    three_step_campaign(api, 3)
    with app.app_context():
        claimed = claim.claim_due_work(later())
        assert set(claimed.drafts) == set(claimed.deliveries) and len(claimed.deliveries) == 3
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            from_claim = compose.prepare_deliveries(claimed.deliveries, claimed.drafts)
            assert statements == []  # nothing read again
            from_database = compose.prepare_deliveries(claimed.deliveries)
            assert len(statements) >= 1
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
    assert [p.delivery_id for p in from_claim] == claimed.deliveries
    for drafted, loaded in zip(from_claim, from_database, strict=True):
        assert (drafted.recipient, drafted.subject, drafted.sender, drafted.message_id) == (
            loaded.recipient,
            loaded.subject,
            loaded.sender,
            loaded.message_id,
        )
        assert (drafted.enrollment_id, drafted.step_id, drafted.step_position, drafted.template_id) == (
            loaded.enrollment_id,
            loaded.step_id,
            loaded.step_position,
            loaded.template_id,
        )
        assert drafted.problem is None and b"This is step 1." in drafted.message


def test_groups_are_recorded_beside_the_sending_and_a_failed_recording_stops_the_batch(
    api, app, smtp, sink, monkeypatch
):
    instance = three_step_campaign(api, 5)
    monkeypatch.setattr(worker_module, "RECORD_EVERY", 2)
    original = record.record_outcomes
    threads = []

    def record_outcomes(outcomes, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        if len(threads) == 1:
            raise RuntimeError("database went away")
        return original(outcomes, **kwargs)

    monkeypatch.setattr(worker_module, "record_outcomes", record_outcomes)
    worker = Worker(app, transport=smtp)
    with pytest.raises(RuntimeError, match="went away"):
        worker.run_once(now=later())
    # The first pair was recorded (and failed) on the recorder's thread while the second pair
    # went out; the failure surfaced when the second pair was handed over, and nothing more was
    # sent. Each message's own status was stored before the next went out.
    assert threads == [False]
    assert len(sink.received) == 4
    with app.app_context():
        statuses = sorted(db.session.scalars(sa.select(Delivery.status)))
    assert statuses == ["claimed", "sending", "sent", "sent", "sent"]
    assert (len(worker.unrecorded), len(worker.unreleased)) == (4, 1)
    # The next run records what the worker held, gives back the claim it never tried, sends it.
    report = worker.run_once(now=later(minutes=2))
    assert report.sent == 1 and len(sink.received) == 5
    with app.app_context():
        assert sorted(db.session.scalars(sa.select(Delivery.status))) == ["sent"] * 5
    assert api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]["sent"] == 5


def test_a_worker_that_cannot_mark_its_next_message_sends_nothing_more(api, app, smtp, sink, monkeypatch):
    instance = three_step_campaign(api, 5)
    original = record.Marker.step
    calls = []

    def step(self, previous, following, now):
        calls.append(following)
        if len(calls) == 3:
            raise sa.exc.OperationalError("UPDATE deliveries", {}, Exception("server closed the connection"))
        return original(self, previous, following, now)

    monkeypatch.setattr(record.Marker, "step", step)
    worker = Worker(app, transport=smtp)
    with pytest.raises(sa.exc.OperationalError):
        worker.run_once(now=later())
    assert len(sink.received) == 2
    monkeypatch.setattr(record.Marker, "step", original)
    assert worker.run_once(now=later(minutes=2)).sent == 3
    ids = [m["Message-ID"] for m in messages(sink)]
    assert len(ids) == 5 == len(set(ids))
    with app.app_context():
        assert sorted(db.session.scalars(sa.select(Delivery.status))) == ["sent"] * 5
    assert api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]["sent"] == 5


def test_a_relay_outage_pauses_sending_then_one_probe_resumes_it(api, app, smtp, sink):
    instance = three_step_campaign(api, 12)
    app.config.update(WORKER_PAUSE_AFTER_FAILURES=3, WORKER_PAUSE_SECONDS=60)
    worker = Worker(app, transport=smtp)
    sink.data_reply = "451 4.3.0 try again later"
    report = worker.run_once(now=later())
    assert (report.retried, report.sent, report.paused) == (3, 0, True)  # three tries, then it stops
    assert worker.run_once(now=later(minutes=1, hours=0) + timedelta(seconds=30)).paused  # still pausing
    assert len(sink.received) == 0
    report = worker.run_once(now=later(minutes=2, hours=0) + timedelta(seconds=5))
    assert (report.retried, report.sent, report.paused) == (1, 0, True)  # the probe failed: pause again
    sink.data_reply = "250 OK"
    report = worker.run_once(now=later(minutes=3, hours=0) + timedelta(seconds=10))
    # The probe went, then everything: the refused ones too, as the refusals were the relay's.
    assert (report.sent, report.paused) == (12, False)
    ids = [m["Message-ID"] for m in messages(sink)]
    assert len(ids) == 12 == len(set(ids))
    with app.app_context():
        assert set(db.session.scalars(sa.select(Delivery.attempts))) == {1}
    steps = {e["current_step"] for e in api.get(f"/instances/{instance['id']}/enrollments?limit=20").get_json()["data"]}
    assert steps == {1}

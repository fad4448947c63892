"""A campaign's own steps: taken from its template at launch, then edited for that campaign only."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.engine.policy import Delay
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, Delivery, OutboxMessage
from webapp.services.lifecycle import Reason
from webapp.worker import Worker

START = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _start():
    """Each test's clock starts a minute after it begins (not when the module was collected: on a
    busy machine that can be minutes before the launch)."""
    global START
    START = datetime.now(UTC) + timedelta(minutes=1)


def at(days=0, hours=0, minutes=0) -> datetime:
    return START + timedelta(days=days, hours=hours, minutes=minutes)


def step_body(number: int, delay_days: int) -> dict:
    return {
        "subject": f"Step {number}",
        "body": f"Hello {{{{ first_name }}}}, step {number}.",
        "delay_days": delay_days,
    }


def launched(api, *, delays=(0, 2, 3), contacts=2) -> tuple[dict, dict]:
    """A template with one email step per delay, and an active campaign of `contacts` made from it."""
    template = factories.template(api, steps=0)
    for number, delay in enumerate(delays, start=1):
        assert (
            api.post(f"/templates/{template['id']}/sequences/email", json=step_body(number, delay)).status_code == 201
        )
    instance = factories.instance(api, template_data=template)
    factories.enroll(api, instance["id"], contacts)
    assert api.patch(f"/instances/{instance['id']}", json={"status": "active"}).status_code == 200
    return template, instance


def steps_of(api, instance_id) -> list[dict]:
    response = api.get(f"/instances/{instance_id}/steps")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["steps"]


def subjects_sent(app, since: int = 0) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(OutboxMessage.subject).order_by(OutboxMessage.created_at)))[since:]


def enrollments(app, instance_id) -> list[CampaignEnrollment]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(CampaignEnrollment).where(CampaignEnrollment.instance_id == uuid.UUID(instance_id))
        )
        return sorted(rows, key=lambda e: e.id)


def sent_at(app, enrollment_id) -> datetime:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.max(Delivery.sent_at)).where(Delivery.enrollment_id == enrollment_id)
        ).replace(tzinfo=UTC)


def copy_id(app, instance_id) -> str:
    with app.app_context():
        return str(
            db.session.scalar(
                sa.select(CampaignInstance.template_id).where(CampaignInstance.id == uuid.UUID(instance_id))
            )
        )


def test_template_edits_after_launch_do_not_move_a_live_campaign(api, app):
    template, instance = launched(api)
    assert Worker(app).run_once(now=at()).sent == 2
    template_steps = api.get(f"/templates/{template['id']}").get_json()["data"]["steps"]
    step_two = template_steps[1]
    edited = api.put(
        f"/templates/{template['id']}/sequences/email/{step_two['id']}",
        json={"subject": "Changed", "delay_days": 20},
    )
    assert edited.status_code == 200
    assert (
        api.post(f"/templates/{template['id']}/sequences/email", json=step_body(1, 0) | {"step_number": 1}).status_code
        == 201
    )

    assert [(s["subject"], s["delay_days"]) for s in steps_of(api, instance["id"])] == [
        ("Step 1", 0),
        ("Step 2", 2),
        ("Step 3", 3),
    ]
    assert Worker(app).run_once(now=at(days=2, minutes=5)).sent == 2
    assert Worker(app).run_once(now=at(days=5, minutes=10)).sent == 2
    assert subjects_sent(app) == ["Step 1"] * 2 + ["Step 2"] * 2 + ["Step 3"] * 2
    shown = api.get(f"/instances/{instance['id']}").get_json()["data"]
    assert shown["template_id"] == template["id"]  # scripts still see the template it was made from

    later = factories.instance(api, template_data=template, status="active")
    assert [s["subject"] for s in steps_of(api, later["id"])] == ["Step 1", "Step 1", "Changed", "Step 3"]


def test_a_campaigns_copy_is_never_shown_as_a_template(api, app):
    template, instance = launched(api)
    copy = copy_id(app, instance["id"])
    assert copy != template["id"]

    listed = api.get("/templates").get_json()
    assert [t["id"] for t in listed["data"]] == [template["id"]]
    assert listed["pagination"]["total"] == 1
    assert api.get(f"/templates/{copy}").status_code == 404
    assert api.put(f"/templates/{copy}", json={"name": "Mine"}).status_code == 404
    assert api.delete(f"/templates/{copy}").status_code == 404
    assert api.post(f"/templates/{copy}/sequences/email", json=step_body(9, 1)).status_code == 404
    assert api.post("/instances", json={"template_id": copy, "name": "From a copy"}).status_code == 404
    # The template stays while a campaign was made from it.
    assert api.delete(f"/templates/{template['id']}").status_code == 409


def test_a_draft_follows_its_template_and_its_steps_are_edited_there(api):
    template = factories.template(api, steps=1)
    draft = factories.instance(api, template_data=template)
    api.post(f"/templates/{template['id']}/sequences/email", json=step_body(2, 4))

    data = api.get(f"/instances/{draft['id']}/steps").get_json()["data"]
    assert data["follows_template"] is True
    assert [s["delay_days"] for s in data["steps"]] == [0, 4]
    refused = api.post(f"/instances/{draft['id']}/steps", json={"channel": "email", **step_body(3, 1)})
    assert refused.status_code == 409
    assert "follows its template" in refused.get_json()["message"]


def test_a_new_delay_moves_the_contacts_waiting_on_the_step_but_not_a_later_out_of_office_wait(api, app):
    _, instance = launched(api, contacts=3)
    assert Worker(app).run_once(now=at()).sent == 3
    first, second, away = enrollments(app, instance["id"])
    back = at(days=30)
    with app.app_context():
        db.session.execute(
            sa.update(CampaignEnrollment)
            .where(CampaignEnrollment.id == away.id)
            .values(next_action_at=back, wait_reason=Delay.AWAY)
        )
        db.session.commit()
    step_two = steps_of(api, instance["id"])[1]
    assert step_two["waiting"] == 3 and step_two["not_past"] == 3

    changed = api.patch(f"/instances/{instance['id']}/steps/{step_two['id']}", json={"delay_days": 5})

    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["data"]["delay_days"] == 5
    first, second, away = enrollments(app, instance["id"])
    for enrollment in (first, second):
        assert enrollment.next_action_at == sent_at(app, enrollment.id) + timedelta(days=5)
    assert (away.next_action_at, away.wait_reason) == (back, Delay.AWAY)
    assert Worker(app).run_once(now=at(days=2, minutes=5)).sent == 0
    assert Worker(app).run_once(now=at(days=5, minutes=5)).sent == 2
    assert subjects_sent(app, since=3) == ["Step 2", "Step 2"]


def test_removing_a_step_contacts_wait_on_asks_what_to_do_and_stop_ends_their_sequence(api, app):
    _, instance = launched(api)
    Worker(app).run_once(now=at())
    step_two = steps_of(api, instance["id"])[1]

    asked = api.delete(f"/instances/{instance['id']}/steps/{step_two['id']}")
    assert asked.status_code == 409
    body = asked.get_json()
    assert "2 contact(s) are waiting" in body["message"]
    assert body["details"][0]["waiting"] == 2
    assert [s["subject"] for s in steps_of(api, instance["id"])] == ["Step 1", "Step 2", "Step 3"]

    stopped = api.delete(f"/instances/{instance['id']}/steps/{step_two['id']}?waiting=stop")

    assert stopped.status_code == 200
    assert stopped.get_json()["data"] == {"deleted": True, "skipped": 0, "stopped": 2}
    assert {(e.status, e.status_reason) for e in enrollments(app, instance["id"])} == {
        ("completed", Reason.STEP_REMOVED)
    }
    assert Worker(app).run_once(now=at(days=30)).sent == 0


def test_skip_sends_the_next_step_at_its_own_due_time(api, app):
    _, instance = launched(api)
    Worker(app).run_once(now=at())
    step_two = steps_of(api, instance["id"])[1]

    skipped = api.delete(f"/instances/{instance['id']}/steps/{step_two['id']}?waiting=skip")

    assert skipped.get_json()["data"] == {"deleted": True, "skipped": 2, "stopped": 0}
    assert [s["step_number"] for s in steps_of(api, instance["id"])] == [1, 2]
    for enrollment in enrollments(app, instance["id"]):
        assert enrollment.current_step == 1
        assert enrollment.next_action_at == sent_at(app, enrollment.id) + timedelta(days=3)
    assert Worker(app).run_once(now=at(days=2, minutes=5)).sent == 0
    assert Worker(app).run_once(now=at(days=3, minutes=5)).sent == 2
    assert subjects_sent(app, since=2) == ["Step 3", "Step 3"]


def test_deactivating_a_waited_on_step_needs_the_same_choice_and_a_sent_step_is_kept(api, app):
    _, instance = launched(api, delays=(0, 2))
    Worker(app).run_once(now=at())
    step_one, step_two = steps_of(api, instance["id"])

    assert (
        api.patch(f"/instances/{instance['id']}/steps/{step_two['id']}", json={"is_active": False}).status_code == 409
    )
    done = api.patch(
        f"/instances/{instance['id']}/steps/{step_two['id']}", json={"is_active": False, "waiting": "skip"}
    )
    assert done.status_code == 200 and done.get_json()["data"]["is_active"] is False
    assert {e.status for e in enrollments(app, instance["id"])} == {"completed"}  # nothing left to send

    removed = api.delete(f"/instances/{instance['id']}/steps/{step_one['id']}")
    assert removed.get_json()["data"] == {"deleted": False, "skipped": 0, "stopped": 0}  # sent: deactivated


def test_a_step_inserted_before_the_contacts_next_one_is_sent_to_them_first(api, app):
    _, instance = launched(api, delays=(0, 3))
    Worker(app).run_once(now=at())

    added = api.post(
        f"/instances/{instance['id']}/steps",
        json={"channel": "email", "step_number": 2, **step_body(9, 1)},
    )

    assert added.status_code == 201, added.get_json()
    assert (added.get_json()["data"]["waiting"], added.get_json()["data"]["step_number"]) == (2, 2)
    assert [s["subject"] for s in steps_of(api, instance["id"])] == ["Step 1", "Step 9", "Step 2"]
    assert Worker(app).run_once(now=at(days=1, minutes=5)).sent == 2
    assert Worker(app).run_once(now=at(days=4, minutes=10)).sent == 2
    assert subjects_sent(app, since=2) == ["Step 9", "Step 9", "Step 2", "Step 2"]

    linkedin = api.post(
        f"/instances/{instance['id']}/steps", json={"channel": "linkedin", "action_type": "profile_visit"}
    )
    assert linkedin.status_code == 201 and linkedin.get_json()["data"]["channel"] == "linkedin"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"step_number": 2}, 409, "cannot be reordered"),
        ({"message": "Hi"}, 400, "message"),
        ({"delay_days": 2, "waiting": "later"}, 400, "waiting"),
    ],
)
def test_bad_step_changes_are_refused_with_a_reason(api, body, status, words):
    _, instance = launched(api, contacts=1)
    step_one = steps_of(api, instance["id"])[0]

    response = api.patch(f"/instances/{instance['id']}/steps/{step_one['id']}", json=body)

    assert response.status_code == status
    assert words in str(response.get_json())


def test_a_completed_campaigns_steps_are_not_edited_and_bad_new_steps_are_refused(api):
    _, instance = launched(api, contacts=1)
    bad = api.post(f"/instances/{instance['id']}/steps", json={"subject": "No channel", "body": "x"})
    assert bad.status_code == 400
    unsafe = api.post(
        f"/instances/{instance['id']}/steps", json={"channel": "email", "subject": "Hi", "body": "{{ a.b }}"}
    )
    assert unsafe.status_code == 400
    assert "Invalid template" in unsafe.get_json()["message"]
    assert len(steps_of(api, instance["id"])) == 3
    api.patch(f"/instances/{instance['id']}", json={"status": "completed"})
    refused = api.post(f"/instances/{instance['id']}/steps", json={"channel": "email", **step_body(4, 1)})
    assert refused.status_code == 409


def test_another_workspace_sees_none_of_a_campaigns_steps(api, outsider):
    _, instance = launched(api, contacts=1)
    step = steps_of(api, instance["id"])[1]
    theirs = api.as_(outsider)
    _, own = launched(theirs, contacts=1)

    assert theirs.get(f"/instances/{instance['id']}/steps").status_code == 404
    assert (
        theirs.post(f"/instances/{instance['id']}/steps", json={"channel": "email", **step_body(5, 1)}).status_code
        == 404
    )
    assert theirs.patch(f"/instances/{instance['id']}/steps/{step['id']}", json={"delay_days": 9}).status_code == 404
    assert theirs.delete(f"/instances/{instance['id']}/steps/{step['id']}?waiting=stop").status_code == 404
    assert theirs.patch(f"/instances/{own['id']}/steps/{step['id']}", json={"delay_days": 9}).status_code == 404
    assert theirs.delete(f"/instances/{own['id']}/steps/{step['id']}").status_code == 404
    assert steps_of(api, instance["id"])[1]["delay_days"] == 2

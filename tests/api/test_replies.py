"""The Inbox API (`/replies`) and marking a contact replied by hand (`PATCH /enrollments/:id`).
Messages are stored as the mailbox reader stores them (tests/services/test_inbox.py reads them from
a real IMAP server)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders, factories
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignEvent, Contact, Workspace
from webapp.services import workspaces

NOW = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


def add_mailbox(api, address: str = "ada@acme.test") -> dict:
    body = {"name": "Ada", "from_email": address, "smtp": {"host": "smtp.acme.test", "port": 587}}
    response = api.post("/mailboxes", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def enrollments_of(app, instance_id: str) -> dict[str, CampaignEnrollment]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(CampaignEnrollment, Contact.email)
            .join(Contact, Contact.id == CampaignEnrollment.contact_id)
            .where(CampaignEnrollment.instance_id == uuid.UUID(instance_id))
        ).all()
        db.session.expunge_all()
        return {address: enrollment for enrollment, address in rows}


def store(app, mailbox: dict, *, uid: int, minutes: int = 0, **fields) -> str:
    with app.app_context():
        row = builders.inbound_message(
            uuid.UUID(mailbox["id"]), uid=uid, received_at=NOW + timedelta(minutes=minutes), **fields
        )
        return str(row.id)


@pytest.fixture
def inbox(app, api):
    mailbox = add_mailbox(api)
    instance = factories.instance(api, status="active", name="Spring outreach")
    factories.enroll(api, instance["id"], 3)
    people = enrollments_of(app, instance["id"])
    ids = {
        "first": store(app, mailbox, uid=1, enrollment=people["person0@example.com"], minutes=1),
        "second": store(app, mailbox, uid=2, enrollment=people["person1@example.com"], minutes=2),
        "ooo": store(app, mailbox, uid=3, kind="auto_reply", enrollment=people["person2@example.com"], minutes=3),
        "stranger": store(app, mailbox, uid=4, from_email="stranger@nowhere.test", minutes=4),
        "bounce": store(app, mailbox, uid=5, kind="bounce", enrollment=people["person2@example.com"], minutes=5),
    }
    return {"instance": instance, "mailbox": mailbox, "ids": ids}


def ids_of(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["data"]]


def test_replies_list_newest_first_with_their_campaign_and_filters(api, inbox):
    ids = inbox["ids"]
    assert ids_of(api.get("/replies")) == [ids["stranger"], ids["ooo"], ids["second"], ids["first"]]
    first = api.get(f"/replies/{ids['first']}").get_json()["data"]
    assert (first["contact_email"], first["instance_name"], first["mailbox_name"]) == (
        "person0@example.com",
        "Spring outreach",
        "Ada",
    )
    assert ids_of(api.get("/replies", query_string={"kind": "bounce"})) == [ids["bounce"]]
    assert ids_of(api.get("/replies", query_string={"matched": "false"})) == [ids["stranger"]]
    assert ids_of(api.get("/replies", query_string={"instance_id": inbox["instance"]["id"], "kind": "reply"})) == [
        ids["second"],
        ids["first"],
    ]


def test_a_lead_status_filters_the_list_and_counts_in_the_campaign_numbers(api, inbox):
    ids = inbox["ids"]
    response = api.patch(f"/replies/{ids['first']}", json={"lead_status": "interested"})
    assert response.status_code == 200 and response.get_json()["data"]["lead_status"] == "interested"
    api.patch(f"/replies/{ids['second']}", json={"lead_status": "meeting_booked"})

    assert ids_of(api.get("/replies", query_string={"lead_status": "interested"})) == [ids["first"]]
    assert ids_of(api.get("/replies", query_string={"lead_status": "none"})) == [ids["stranger"], ids["ooo"]]
    leads = api.get(f"/instances/{inbox['instance']['id']}/performance").get_json()["data"]["leads"]
    assert leads == {"interested": 1, "not_interested": 0, "meeting_booked": 1, "wrong_person": 0}

    cleared = api.patch(f"/replies/{ids['first']}", json={"lead_status": None})
    assert cleared.get_json()["data"]["lead_status"] is None


@pytest.mark.parametrize(
    "body",
    [{"lead_status": "hot"}, {"lead_status": 3}, {}, {"lead_status": "interested", "extra": 1}, []],
    ids=["unknown", "number", "missing", "extra-field", "not-an-object"],
)
def test_a_wrong_lead_status_is_refused(api, inbox, body):
    response = api.patch(f"/replies/{inbox['ids']['first']}", json=body)
    assert response.status_code in (400, 422)
    assert response.get_json()["error"] and response.get_json()["message"]


def test_another_workspaces_replies_are_invisible(api, inbox, outsider):
    theirs = api.as_(outsider)
    assert theirs.get("/replies").get_json()["data"] == []
    assert theirs.get(f"/replies/{inbox['ids']['first']}").status_code == 404
    assert theirs.patch(f"/replies/{inbox['ids']['first']}", json={"lead_status": "interested"}).status_code == 404
    assert api.get(f"/replies/{uuid.uuid4()}").status_code == 404


def test_marking_an_enrollment_replied_by_hand_stops_it_and_counts_as_a_reply(app, api):
    first = factories.instance(api, status="active")
    other = factories.instance(api, status="active")
    factories.enroll(api, first["id"], 2)
    factories.enroll(api, other["id"], 1, allow_other_campaigns=True)  # person0 is in both campaigns
    person0 = enrollments_of(app, first["id"])["person0@example.com"]

    response = api.patch(f"/enrollments/{person0.id}", json={"status": "replied"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["status"] == "replied"
    assert enrollments_of(app, other["id"])["person0@example.com"].status == "replied"  # reply_stops: workspace
    assert enrollments_of(app, first["id"])["person1@example.com"].status == "active"
    with app.app_context():
        events = db.session.scalars(sa.select(CampaignEvent).where(CampaignEvent.type == "replied")).all()
    assert [(e.enrollment_id, e.provider) for e in events] == [(person0.id, "manual")]
    performance = api.get(f"/instances/{first['id']}/performance").get_json()["data"]
    assert performance["totals"]["replied"] == 1

    again = api.patch(f"/enrollments/{person0.id}", json={"status": "replied"})
    assert again.status_code == 409


def test_reply_reach_campaign_leaves_other_campaigns_alone(app, api, owner):
    first = factories.instance(api, status="active")
    other = factories.instance(api, status="active")
    factories.enroll(api, first["id"], 1)
    factories.enroll(api, other["id"], 1, allow_other_campaigns=True)
    with app.app_context():
        workspaces.set_reply_stops(db.session.get(Workspace, owner.workspace_id), "campaign")
    person0 = enrollments_of(app, first["id"])["person0@example.com"]
    assert api.patch(f"/enrollments/{person0.id}", json={"status": "replied"}).status_code == 200
    assert enrollments_of(app, other["id"])["person0@example.com"].status == "active"


def test_reply_reach_refuses_an_unknown_value(app, owner):
    from webapp.errors import ValidationFailed

    with app.app_context(), pytest.raises(ValidationFailed):
        workspaces.set_reply_stops(db.session.get(Workspace, owner.workspace_id), "planet")

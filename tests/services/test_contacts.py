"""Contacts and the workspace-wide suppression list."""

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import fresh
from webapp.errors import Conflict, NotFound
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, Contact, Workspace
from webapp.models.enums import EnrollmentStatus as S
from webapp.models.enums import InstanceStatus
from webapp.schemas.contacts import ContactData, ContactUpdate
from webapp.services import lifecycle
from webapp.services.contacts import (
    create_contact,
    delete_contact,
    list_contacts,
    set_contact_status,
    update_contact,
)

SUPPRESSED = ["unsubscribed", "bounced", "complained"]


def count(model, *where) -> int:
    return _db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def workspace(db) -> Workspace:
    return builders.WorkspaceFactory()


def test_a_new_contact_is_subscribed_with_the_fields_given(workspace):
    created = create_contact(
        workspace, ContactData(email="Ada@Example.com", first_name="Ada", custom_fields={"plan": "pro"})
    )

    stored = fresh(Contact, created.id)
    assert (stored.email, stored.first_name, stored.last_name) == ("ada@example.com", "Ada", None)
    assert (stored.status, stored.custom_fields, stored.workspace_id) == ("subscribed", {"plan": "pro"}, workspace.id)


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@example.com"])
def test_an_address_already_in_the_workspace_is_a_conflict(workspace, email):
    builders.ContactFactory(workspace_id=workspace.id, email="ada@example.com")

    with pytest.raises(Conflict, match="already exists"):
        create_contact(workspace, ContactData(email=email))

    assert count(Contact, Contact.workspace_id == workspace.id) == 1


def test_the_same_address_may_be_in_another_workspace(workspace):
    builders.ContactFactory(email="ada@example.com")

    created = create_contact(workspace, ContactData(email="ada@example.com"))

    assert fresh(Contact, created.id).workspace_id == workspace.id


def test_an_update_changes_the_fields_given_and_keeps_the_others(workspace):
    contact = builders.ContactFactory(workspace_id=workspace.id, first_name="Ada", company="Analytical", title="CTO")

    update_contact(workspace, contact.id, ContactUpdate(company="Babbage & Co", title=None, email=None))

    stored = fresh(Contact, contact.id)
    assert (stored.email, stored.first_name, stored.company, stored.title) == (
        contact.email,
        "Ada",
        "Babbage & Co",
        None,
    )


def test_an_update_to_another_contacts_address_is_a_conflict(workspace):
    builders.ContactFactory(workspace_id=workspace.id, email="taken@example.com")
    contact = builders.ContactFactory(workspace_id=workspace.id, email="ada@example.com")

    with pytest.raises(Conflict, match="already exists"):
        update_contact(workspace, contact.id, ContactUpdate(email="taken@example.com"))

    assert fresh(Contact, contact.id).email == "ada@example.com"


@pytest.mark.parametrize(
    "change",
    [
        lambda workspace, contact_id: update_contact(workspace, contact_id, ContactUpdate(first_name="Mallory")),
        delete_contact,
        lambda workspace, contact_id: set_contact_status(workspace, contact_id, status="bounced", reason=None),
    ],
    ids=["update", "delete", "suppress"],
)
def test_another_workspaces_contact_is_not_found(workspace, change):
    theirs = builders.ContactFactory(first_name="Ada")

    with pytest.raises(NotFound):
        change(workspace, theirs.id)

    _db.session.rollback()
    stored = fresh(Contact, theirs.id)
    assert (stored.first_name, stored.status) == ("Ada", "subscribed")


def test_deleting_a_contact_deletes_its_enrollments(workspace):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace))
    contact_id, enrollment_id = enrollment.contact_id, enrollment.id

    delete_contact(workspace, contact_id)

    assert count(Contact, Contact.id == contact_id) == 0
    assert count(CampaignEnrollment, CampaignEnrollment.id == enrollment_id) == 0


@pytest.mark.parametrize("status", SUPPRESSED)
def test_a_suppressed_contact_stays_on_the_list_and_cannot_be_deleted(workspace, status):
    contact = builders.ContactFactory(workspace_id=workspace.id, status=status)

    with pytest.raises(Conflict, match=f"Contact is {status} and stays on the suppression list"):
        delete_contact(workspace, contact.id)

    _db.session.rollback()
    assert fresh(Contact, contact.id).status == status


@pytest.mark.parametrize(
    ("status", "enrollment_status"),
    [("bounced", S.BOUNCED), ("unsubscribed", S.UNSUBSCRIBED), ("complained", S.UNSUBSCRIBED)],
)
def test_suppressing_a_contact_stops_its_live_enrollments_in_every_campaign(workspace, status, enrollment_status):
    contact = builders.ContactFactory(workspace_id=workspace.id)
    draft = builders.campaign(workspace=workspace, status=InstanceStatus.DRAFT)
    live = [
        builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace), contact=contact),
        builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace), contact=contact, status=S.PAUSED),
        builders.EnrollmentFactory(instance=draft, contact=contact),
    ]
    replied = builders.EnrollmentFactory(
        instance=builders.campaign(workspace=workspace), contact=contact, status=S.REPLIED, status_reason="replied"
    )
    bystander = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace))

    set_contact_status(workspace, contact.id, status=status, reason="asked by phone")

    stored = fresh(Contact, contact.id)
    assert (stored.status, stored.status_reason) == (status, "asked by phone")
    for enrollment in live:
        row = fresh(CampaignEnrollment, enrollment.id)
        assert (row.status, row.status_reason, row.next_action_at) == (enrollment_status, "asked by phone", None)
    row = fresh(CampaignEnrollment, replied.id)
    assert (row.status, row.status_reason) == (S.REPLIED, "replied")
    assert fresh(CampaignEnrollment, bystander.id).status == S.ACTIVE


def test_without_a_reason_the_suppression_says_it_was_manual(workspace):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace))

    set_contact_status(workspace, enrollment.contact_id, status="unsubscribed", reason=None)

    assert fresh(Contact, enrollment.contact_id).status_reason == "marked unsubscribed manually"
    assert fresh(CampaignEnrollment, enrollment.id).status_reason == "marked unsubscribed manually"


def test_the_first_suppression_status_sticks(workspace):
    contact = builders.ContactFactory(workspace_id=workspace.id)
    set_contact_status(workspace, contact.id, status="bounced", reason="mailbox gone")

    set_contact_status(workspace, contact.id, status="unsubscribed", reason="later")

    stored = fresh(Contact, contact.id)
    assert (stored.status, stored.status_reason) == ("bounced", "mailbox gone")


def test_the_actor_must_be_allowed_to_stop_enrollments(workspace):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace))

    with pytest.raises(ValueError, match="worker may not unsubscribe"):
        set_contact_status(
            workspace, enrollment.contact_id, status="unsubscribed", reason=None, actor=lifecycle.Actor.WORKER
        )


def test_resubscribing_does_not_restart_stopped_enrollments(workspace):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace))
    set_contact_status(workspace, enrollment.contact_id, status="unsubscribed", reason="by mistake")

    set_contact_status(workspace, enrollment.contact_id, status="subscribed", reason="confirmed by email")

    stored = fresh(Contact, enrollment.contact_id)
    assert (stored.status, stored.status_reason) == ("subscribed", "confirmed by email")
    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.next_action_at) == (S.UNSUBSCRIBED, None)


@pytest.fixture
def people(workspace) -> dict[str, Contact]:
    rows = {
        "ada": dict(email="ada@analytical.org", first_name="Ada", last_name="Lovelace", company="Analytical Engines"),
        "grace": dict(email="grace@navy.mil", first_name="Grace", last_name="Hopper", company="US Navy"),
        "alan": dict(email="alan@bletchley.uk", first_name="Alan", last_name="Turing", status="unsubscribed"),
        "percent": dict(email="p@fifty.com", first_name="Fifty", company="50% Off"),
    }
    found = {key: builders.ContactFactory(workspace_id=workspace.id, **fields) for key, fields in rows.items()}
    builders.ContactFactory(email="ada@elsewhere.org", first_name="Ada")
    return found


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {"ada", "grace", "alan", "percent"}),
        ({"search": "ADA"}, {"ada"}),
        ({"search": "hopper"}, {"grace"}),
        ({"search": "navy"}, {"grace"}),
        ({"search": "  bletchley "}, {"alan"}),
        ({"search": "50%"}, {"percent"}),
        ({"search": "%"}, {"percent"}),
        ({"search": "a_a"}, set()),
        ({"status": "unsubscribed"}, {"alan"}),
        ({"status": "subscribed", "search": "a"}, {"ada", "grace"}),
    ],
)
def test_the_list_searches_and_filters_the_workspaces_contacts(workspace, people, filters, expected):
    found, total = list_contacts(workspace, **filters)

    names = {key for key, contact in people.items() if contact.id in {row.id for row in found}}
    assert (names, total, len(found)) == (expected, len(expected), len(expected))


def test_the_list_pages_newest_first(workspace):
    contacts = [builders.ContactFactory(workspace_id=workspace.id) for _ in range(5)]

    first, total = list_contacts(workspace, limit=2)
    third, _ = list_contacts(workspace, page=3, limit=2)

    assert total == 5
    newest_first = sorted(contacts, key=lambda c: (-c.created_at.timestamp(), str(c.id)))
    assert [c.id for c in first + third] == [c.id for c in (*newest_first[:2], newest_first[4])]

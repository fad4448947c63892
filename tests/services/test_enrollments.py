"""Enrolling contacts, and the changes a person or a script makes to one enrollment."""

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import contact_of, fresh, workspace_of
from tests.services.conftest import NOW
from webapp.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, Contact
from webapp.models.enums import EnrollmentStatus as S
from webapp.models.enums import InstanceStatus
from webapp.services import enrollments, lifecycle
from webapp.services.enrollments import (
    NO_CONTACT,
    change_enrollment_status,
    enroll_contacts,
    unenroll,
    upsert_contact_items,
)


def enrollments_of(instance) -> dict[str, CampaignEnrollment]:
    rows = _db.session.execute(
        sa.select(Contact.email, CampaignEnrollment)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(CampaignEnrollment.instance_id == instance.id)
        .execution_options(populate_existing=True)
    )
    return {email: enrollment for email, enrollment in rows.tuples()}


def contact_by_email(workspace_id, email) -> Contact | None:
    return _db.session.scalar(
        sa.select(Contact)
        .where(Contact.workspace_id == workspace_id, Contact.email == email)
        .execution_options(populate_existing=True)
    )


def test_the_report_counts_each_outcome_and_names_the_invalid_items(db):
    campaign = builders.campaign()
    subscribed = builders.ContactFactory(workspace_id=campaign.workspace_id)
    suppressed = builders.ContactFactory(workspace_id=campaign.workspace_id, status="bounced")
    enrolled = builders.EnrollmentFactory(instance=campaign)
    known = builders.ContactFactory(workspace_id=campaign.workspace_id, email="known@example.com")
    missing = uuid.uuid4()
    items = [
        {"contact_id": str(subscribed.id)},
        {"contact_id": str(enrolled.contact_id)},
        {"contact_id": str(suppressed.id)},
        {"contact": {"email": "new@example.com", "first_name": "Ada"}},
        {"contact": {"email": "KNOWN@example.com"}},
        {"contact": {"email": "not-an-address"}},
        {"contact_id": str(missing)},
        {},
        {"contact": {"email": "new@example.com"}},
        {"contact_id": str(subscribed.id)},
        {"contact_id": str(known.id)},
    ]

    report = enroll_contacts(workspace_of(campaign), campaign.id, items)

    assert (report.enrolled, report.already_enrolled, report.suppressed, report.contacts_created) == (3, 1, 1, 1)
    assert report.invalid == [
        {"index": 5, "row": 6, "reason": "row 6: email is not a valid address"},
        {"index": 6, "row": 7, "reason": f"row 7: contact {missing} not found"},
        {"index": 7, "row": 8, "reason": f"row 8: {NO_CONTACT}"},
        {"index": 8, "row": 9, "reason": "row 9 repeats row 4"},
        {"index": 9, "row": 10, "reason": "row 10 repeats row 1"},
        {"index": 10, "row": 11, "reason": "row 11 repeats row 5"},
    ]
    assert set(enrollments_of(campaign)) == {
        subscribed.email,
        contact_of(enrolled).email,
        "new@example.com",
        "known@example.com",
    }


def test_contacts_given_by_data_are_created_or_updated_by_email(db):
    campaign = builders.campaign()
    builders.ContactFactory(
        workspace_id=campaign.workspace_id, email="grace@example.com", first_name="Grace", company="Navy"
    )

    report = enroll_contacts(
        workspace_of(campaign),
        campaign.id,
        [
            {"contact": {"email": "grace@example.com", "company": "Harvard", "custom_fields": {"team": "Mark I"}}},
            {"contact": {"email": "ada@example.com", "first_name": "Ada"}},
        ],
    )

    assert (report.enrolled, report.contacts_created) == (2, 1)
    grace = contact_by_email(campaign.workspace_id, "grace@example.com")
    assert (grace.first_name, grace.company, grace.custom_fields) == ("Grace", "Harvard", {"team": "Mark I"})
    assert contact_by_email(campaign.workspace_id, "ada@example.com").first_name == "Ada"


def test_custom_fields_given_replace_the_stored_ones_key_by_key_on_every_database(db):
    campaign = builders.campaign()
    builders.ContactFactory(
        workspace_id=campaign.workspace_id, email="ada@example.com", custom_fields={"a": {"x": 1}, "b": 1, "c": 2}
    )

    enroll_contacts(
        workspace_of(campaign),
        campaign.id,
        [{"contact": {"email": "ada@example.com", "custom_fields": {"a": {"y": 2}, "b": None}}}],
    )

    stored = contact_by_email(campaign.workspace_id, "ada@example.com")
    assert stored.custom_fields == {"a": {"y": 2}, "b": None, "c": 2}


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_a_suppressed_contact_given_by_data_stays_suppressed_and_is_not_enrolled(db, status):
    campaign = builders.campaign()
    builders.ContactFactory(workspace_id=campaign.workspace_id, email="ada@example.com", status=status)

    report = enroll_contacts(
        workspace_of(campaign), campaign.id, [{"contact": {"email": "ada@example.com", "first_name": "Ada"}}]
    )

    assert (report.enrolled, report.suppressed, report.contacts_created) == (0, 1, 0)
    assert contact_by_email(campaign.workspace_id, "ada@example.com").status == status
    assert enrollments_of(campaign) == {}


@pytest.mark.parametrize(
    ("campaign_status", "status", "due_in"),
    [
        (InstanceStatus.DRAFT, S.ENROLLED, None),
        (InstanceStatus.ACTIVE, S.ACTIVE, timedelta(days=2)),
        (InstanceStatus.PAUSED, S.ACTIVE, timedelta(days=2)),
    ],
)
def test_a_new_enrollment_waits_for_the_launch_of_a_draft_and_is_due_after_the_first_delay_otherwise(
    db, now, campaign_status, status, due_in
):
    campaign = builders.campaign(status=campaign_status, steps=2, delays=(2, 4))

    enroll_contacts(workspace_of(campaign), campaign.id, [{"contact": {"email": "ada@example.com"}}])

    row = enrollments_of(campaign)["ada@example.com"]
    assert (row.status, row.current_step, row.enrolled_at) == (status, 0, now)
    assert row.next_action_at == (now + due_in if due_in else None)


def test_a_completed_campaign_refuses_new_contacts(db):
    campaign = builders.campaign(status=InstanceStatus.COMPLETED)

    with pytest.raises(Conflict, match="completed"):
        enroll_contacts(workspace_of(campaign), campaign.id, [{"contact": {"email": "ada@example.com"}}])

    _db.session.rollback()
    assert enrollments_of(campaign) == {}
    assert contact_by_email(campaign.workspace_id, "ada@example.com") is None


def test_another_workspaces_campaign_is_not_found_and_its_contacts_are_not_enrollable(db):
    theirs = builders.campaign()
    mine = builders.campaign()
    their_contact = builders.ContactFactory(workspace_id=theirs.workspace_id)

    with pytest.raises(NotFound):
        enroll_contacts(workspace_of(mine), theirs.id, [{"contact": {"email": "ada@example.com"}}])
    _db.session.rollback()
    report = enroll_contacts(workspace_of(mine), mine.id, [{"contact_id": str(their_contact.id)}])

    assert report.enrolled == 0
    assert report.invalid == [{"index": 0, "row": 1, "reason": f"row 1: contact {their_contact.id} not found"}]
    assert enrollments_of(theirs) == {} and enrollments_of(mine) == {}


def test_pausing_keeps_the_schedule_and_says_why(db, now):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), next_action_at=now + timedelta(days=1))

    change_enrollment_status(workspace_of(enrollment), enrollment.id, S.PAUSED)

    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.status_reason, row.next_action_at) == (S.PAUSED, "paused manually", now + timedelta(days=1))


@pytest.mark.parametrize(
    ("due", "resumed_due"),
    [
        (NOW - timedelta(days=3), NOW),
        (None, NOW),
        (NOW + timedelta(hours=5), NOW + timedelta(hours=5)),
    ],
    ids=["overdue", "unscheduled", "due later"],
)
def test_a_resumed_enrollment_is_due_now_unless_its_step_is_still_ahead(db, now, due, resumed_due):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), status=S.PAUSED, next_action_at=due)

    change_enrollment_status(workspace_of(enrollment), enrollment.id, S.ACTIVE)

    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.status_reason, row.next_action_at) == (S.ACTIVE, "resumed manually", resumed_due)


def test_resuming_in_a_draft_campaign_goes_back_to_waiting_for_the_launch(db, now):
    draft = builders.campaign(status=InstanceStatus.DRAFT)
    enrollment = builders.EnrollmentFactory(instance=draft)
    workspace = workspace_of(draft)

    change_enrollment_status(workspace, enrollment.id, S.PAUSED)
    change_enrollment_status(workspace, enrollment.id, S.ACTIVE)

    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.next_action_at) == (S.ENROLLED, None)


@pytest.mark.parametrize(
    ("status", "requested", "message"),
    [
        (S.PAUSED, S.PAUSED, "Cannot pause a paused enrollment. Allowed from: enrolled, active."),
        (S.REPLIED, S.PAUSED, "Cannot pause a replied enrollment. Allowed from: enrolled, active."),
        (S.ACTIVE, S.ACTIVE, "Cannot resume an active enrollment. Allowed from: paused."),
        (S.COMPLETED, S.ACTIVE, "Cannot resume a completed enrollment. Allowed from: paused."),
    ],
)
def test_a_refused_change_gives_the_lifecycles_reason_and_changes_nothing(db, status, requested, message):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), status=status, status_reason="before")

    with pytest.raises(InvalidTransition) as refused:
        change_enrollment_status(workspace_of(enrollment), enrollment.id, requested)

    assert refused.value.message == message
    _db.session.rollback()
    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.status_reason) == (status, "before")


def test_only_pause_and_resume_are_requestable(db):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign())

    with pytest.raises(ValidationFailed):
        change_enrollment_status(workspace_of(enrollment), enrollment.id, S.COMPLETED)


def test_unenrolling_removes_a_live_enrollment_for_good(db, now):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), status=S.PAUSED, next_action_at=now)

    unenroll(workspace_of(enrollment), enrollment.id)

    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.status_reason, row.next_action_at, row.completed_at) == (S.REMOVED, "unenrolled", None, now)


def test_a_final_enrollment_cannot_be_unenrolled(db):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign(), status=S.REPLIED)

    with pytest.raises(InvalidTransition, match=r"Cannot unenroll a replied enrollment\. Allowed from: enrolled, "):
        unenroll(workspace_of(enrollment), enrollment.id)


@pytest.mark.parametrize(
    "change",
    [unenroll, lambda workspace, enrollment_id: change_enrollment_status(workspace, enrollment_id, S.PAUSED)],
    ids=["unenroll", "pause"],
)
def test_another_workspaces_enrollment_is_not_found(db, change):
    enrollment = builders.EnrollmentFactory(instance=builders.campaign())

    with pytest.raises(NotFound):
        change(builders.WorkspaceFactory(), enrollment.id)

    _db.session.rollback()
    assert fresh(CampaignEnrollment, enrollment.id).status == S.ACTIVE


def test_a_suppression_list_stops_live_enrollments_everywhere_in_the_workspace_only(db):
    workspace = builders.WorkspaceFactory()
    running = builders.campaign(workspace=workspace)
    draft = builders.campaign(workspace=workspace, status=InstanceStatus.DRAFT)
    contact = builders.ContactFactory(workspace_id=workspace.id, email="ada@example.com")
    active = builders.EnrollmentFactory(instance=running, contact=contact)
    waiting = builders.EnrollmentFactory(instance=draft, contact=contact)
    finished = builders.EnrollmentFactory(
        instance=builders.campaign(workspace=workspace), contact=contact, status=S.REPLIED
    )
    other_campaign = builders.campaign()
    namesake = builders.ContactFactory(workspace_id=other_campaign.workspace_id, email="ada@example.com")
    untouched = builders.EnrollmentFactory(instance=other_campaign, contact=namesake)

    report = upsert_contact_items(
        workspace, [{"contact": {"email": "ADA@example.com"}}, {"contact": {"email": "new@example.com"}}], suppress=True
    )

    assert (report.suppressed, report.contacts_created, report.invalid) == (2, 1, [])
    for email in ("ada@example.com", "new@example.com"):
        stored = contact_by_email(workspace.id, email)
        assert (stored.status, stored.status_reason) == ("unsubscribed", "imported suppression list")
    for enrollment in (active, waiting):
        row = fresh(CampaignEnrollment, enrollment.id)
        assert (row.status, row.status_reason) == (S.UNSUBSCRIBED, "imported suppression list")
    assert fresh(CampaignEnrollment, finished.id).status == S.REPLIED
    assert contact_by_email(other_campaign.workspace_id, "ada@example.com").status == "subscribed"
    assert fresh(CampaignEnrollment, untouched.id).status == S.ACTIVE


def test_upserting_contacts_alone_enrolls_nobody_and_reports_unusable_items(db):
    campaign = builders.campaign()
    contact = builders.ContactFactory(workspace_id=campaign.workspace_id)

    report = upsert_contact_items(
        workspace_of(campaign),
        [
            {"contact": {"email": "ada@example.com"}},
            {"contact_id": str(contact.id)},
            {"contact": {"email": "ada@example.com"}},
        ],
    )

    assert (report.contacts_created, report.suppressed) == (1, 0)
    assert report.invalid == [
        {"index": 1, "row": 2, "reason": "row 2: give the contact's email, not a contact_id"},
        {"index": 2, "row": 3, "reason": "row 3 repeats row 1"},
    ]
    assert contact_by_email(campaign.workspace_id, "ada@example.com").status == "subscribed"
    assert enrollments_of(campaign) == {}


# Contacts live in another campaign of the workspace.


@pytest.mark.parametrize("status", list(S))
def test_only_a_live_enrollment_elsewhere_keeps_a_contact_out(db, status):
    campaign = builders.campaign()
    other = builders.InstanceFactory(workspace_id=campaign.workspace_id, name="Q3 outreach", status="active")
    elsewhere = builders.EnrollmentFactory(instance=other, status=status)

    report = enroll_contacts(workspace_of(campaign), campaign.id, [{"contact_id": str(elsewhere.contact_id)}])

    live = status in lifecycle.LIVE
    assert (report.enrolled, report.in_other_campaign) == ((0, 1) if live else (1, 0))
    assert report.skipped == (
        [{"index": 0, "reason": "in_other_campaign", "detail": "live in campaign 'Q3 outreach'"}] if live else []
    )


def test_the_check_is_one_query_per_chunk_of_contacts(db, monkeypatch):
    """SQLite takes the ids in chunks (its parameter limit); the answer is the same across chunks."""
    monkeypatch.setattr(enrollments, "SQLITE_CHECK_CHUNK", 3)
    campaign = builders.campaign()
    other = builders.InstanceFactory(workspace_id=campaign.workspace_id, status="active")
    live = [builders.EnrollmentFactory(instance=other, status=S.ACTIVE).contact_id for _ in range(5)]
    done = [builders.EnrollmentFactory(instance=other, status=S.COMPLETED).contact_id for _ in range(5)]
    items = [{"contact_id": str(contact_id)} for pair in zip(live, done, strict=True) for contact_id in pair]
    checks = []

    def count(conn, cursor, statement, *args):
        if "campaign_enrollments JOIN campaign_instances" in statement:
            checks.append(statement)

    sa.event.listen(_db.engine, "before_cursor_execute", count)
    try:
        report = enroll_contacts(workspace_of(campaign), campaign.id, items)
    finally:
        sa.event.remove(_db.engine, "before_cursor_execute", count)

    assert (report.enrolled, report.in_other_campaign) == (5, 5)
    assert [item["index"] for item in report.skipped] == [0, 2, 4, 6, 8]
    # SQLite: the 10 contacts 3 at a time; PostgreSQL takes them all as one array parameter.
    assert len(checks) == (1 if _db.engine.dialect.name == "postgresql" else 4)


def test_a_batch_costs_as_many_statements_for_500_contacts_as_for_two(db):
    campaign = builders.campaign()
    other = builders.InstanceFactory(workspace_id=campaign.workspace_id, status="active")
    contacts = [builders.ContactFactory(workspace_id=campaign.workspace_id) for _ in range(502)]
    for contact in contacts[::2]:
        builders.EnrollmentFactory(instance=other, contact=contact, status=S.PAUSED)
    items = [{"contact_id": str(contact.id)} for contact in contacts]
    statements = {}
    for batch in (items[:2], items[2:]):
        _db.session.commit()  # both batches start from the same session state
        workspace, campaign_id = workspace_of(campaign), campaign.id
        seen = []

        def count(conn, cursor, statement, *args, seen=seen):
            seen.append(statement)

        sa.event.listen(_db.engine, "before_cursor_execute", count)
        try:
            report = enroll_contacts(workspace, campaign_id, batch)
        finally:
            sa.event.remove(_db.engine, "before_cursor_execute", count)
        assert report.enrolled == report.in_other_campaign == len(batch) // 2
        statements[len(batch)] = len(seen)

    assert statements[2] == statements[500]

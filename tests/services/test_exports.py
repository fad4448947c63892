"""CSV exports: what each file holds, the list filters they honour, formula-safe cells, and
streaming in batches (thousands of rows, every row once, no transaction held between batches)."""

import csv
import inspect
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import workspace_of
from webapp.errors import NotFound
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, Contact, SequenceStep
from webapp.services import exports
from webapp.services.contacts import list_contacts
from webapp.services.enrollments import list_enrollments
from webapp.services.events import record_events

AT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def table(export: exports.CsvExport) -> list[list[str]]:
    text = "".join(export.chunks)
    assert text.startswith(exports.BOM), "a byte-order mark first, so that Excel reads UTF-8"
    return list(csv.reader(io.StringIO(text.removeprefix(exports.BOM))))


def records(export: exports.CsvExport) -> list[dict]:
    header, *rows = table(export)
    return [dict(zip(header, row, strict=True)) for row in rows]


def add_contacts(workspace, n: int, **fields) -> None:
    """`n` contacts in one statement (the factories add one row at a time)."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace.id,
            "email": f"bulk{i:05d}@example.com",
            "custom_fields": {},
            "status": "subscribed",
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        for i in range(n)
    ]
    _db.session.execute(sa.insert(Contact), rows)
    _db.session.commit()


def events_at(campaign, enrollment, *types_and_times, step_id=None, metadata=None) -> None:
    rows = [
        {
            "workspace_id": campaign.workspace_id,
            "enrollment_id": enrollment.id,
            "step_id": step_id,
            "channel": "email",
            "type": type_,
            "provider": "api",
            "provider_event_id": f"{enrollment.id}-{type_}-{at.isoformat()}",
            "occurred_at": at,
            "metadata": metadata or {},
        }
        for type_, at in types_and_times
    ]
    record_events(workspace_of(campaign), rows)
    _db.session.commit()


# One helper neutralises every cell.


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("ada@example.com", "ada@example.com"),
        ("a=b", "a=b"),
        (None, ""),
        (3, "3"),
        (True, "true"),
        ({"a": [1]}, '{"a":[1]}'),
        (AT, "2026-03-03T10:00:00+00:00"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(value, cell):
    assert exports.safe_cell(value) == cell


def test_a_neutralised_cell_reads_back_as_it_was():
    for value in ("=1+2", "-5", "@here", "'quoted", "plain", "'plain"):
        assert exports.unneutralise(exports.safe_cell(value)) == value


# Contacts.


def test_the_contacts_export_lists_every_contact_by_email_with_its_custom_fields(db):
    workspace = builders.WorkspaceFactory()
    builders.ContactFactory(
        workspace_id=workspace.id,
        email="zoe@example.com",
        first_name="=cmd|'/C calc'!A0",
        custom_fields={"industry": "Fintech", "seats": 40, "status": "VIP"},
    )
    builders.ContactFactory(workspace_id=workspace.id, email="ada@example.com", last_name="Lovelace")
    builders.ContactFactory(email="other@example.com")  # another workspace

    export = exports.export_contacts(workspace)
    header, *rows = table(export)

    assert export.filename.startswith("contacts-") and export.filename.endswith(".csv")
    assert header == [*exports.CONTACT_COLUMNS, "industry", "seats", "custom.status"]
    assert [row[0] for row in rows] == ["ada@example.com", "zoe@example.com"]
    zoe = dict(zip(header, rows[1], strict=True))
    assert zoe["first_name"] == "'=cmd|'/C calc'!A0"
    assert (zoe["industry"], zoe["seats"], zoe["custom.status"], zoe["status"]) == (
        "Fintech",
        "40",
        "VIP",
        "subscribed",
    )
    assert dict(zip(header, rows[0], strict=True))["industry"] == ""


def test_the_contacts_export_shows_what_the_list_shows_with_the_same_filters(db):
    workspace = builders.WorkspaceFactory()
    for email, company, status in [
        ("ada@initech.test", "Initech", "subscribed"),
        ("bob@initech.test", "Initech", "unsubscribed"),
        ("cy@globex.test", "Globex", "subscribed"),
        ("di@globex.test", "Initech Labs", "bounced"),
    ]:
        builders.ContactFactory(workspace_id=workspace.id, email=email, company=company, status=status)

    for filters in ({}, {"search": "initech"}, {"status": "subscribed"}, {"search": "INITECH", "status": "bounced"}):
        listed, _ = list_contacts(workspace, limit=100, **filters)
        exported = [row["email"] for row in records(exports.export_contacts(workspace, **filters))]
        assert exported == sorted(contact.email for contact in listed), filters
    assert [row["email"] for row in records(exports.export_contacts(workspace, search="initech"))] == [
        "ada@initech.test",
        "bob@initech.test",
        "di@globex.test",
    ]


def test_more_custom_field_names_than_columns_keep_the_rest_as_json(db):
    workspace = builders.WorkspaceFactory()
    names = [f"f{i:02d}" for i in range(exports.MAX_CUSTOM_COLUMNS + 2)]
    builders.ContactFactory(workspace_id=workspace.id, custom_fields={name: name.upper() for name in names})

    header, row = table(exports.export_contacts(workspace))

    assert header[-1] == exports.OTHER_CUSTOM_FIELDS
    assert header[len(exports.CONTACT_COLUMNS) : -1] == names[: exports.MAX_CUSTOM_COLUMNS]
    assert row[-1] == '{"f50":"F50","f51":"F51"}'


def test_thousands_of_contacts_stream_in_batches_each_in_a_short_transaction(db):
    workspace = builders.WorkspaceFactory()
    add_contacts(workspace, 2 * exports.BATCH + 500)

    export = exports.export_contacts(workspace)
    assert inspect.isgenerator(export.chunks)
    header = next(export.chunks)
    first_batch = next(export.chunks)

    assert header.removeprefix(exports.BOM).startswith("email,")
    assert not _db.session().in_transaction(), "no transaction is held while the client reads a batch"
    assert first_batch.count("\r\n") == exports.BATCH
    rest = list(export.chunks)
    assert len(rest) == 2
    emails = [line.split(",")[0] for line in (first_batch + "".join(rest)).splitlines()]
    assert emails == [f"bulk{i:05d}@example.com" for i in range(2 * exports.BATCH + 500)]


# A campaign's enrollments.


def test_the_enrollments_export_has_each_contact_status_step_next_action_and_last_event(db):
    campaign = builders.campaign(steps=2)
    early = builders.EnrollmentFactory(
        instance=campaign,
        enrolled_at=AT,
        current_step=1,
        next_action_at=AT + timedelta(days=2),
        contact=builders.ContactFactory(
            workspace_id=campaign.workspace_id, email="ada@example.com", first_name="Ada", last_name="Lovelace"
        ),
    )
    late = builders.EnrollmentFactory(instance=campaign, enrolled_at=AT + timedelta(hours=1), status="paused")
    events_at(campaign, early, ("sent", AT), ("opened", AT + timedelta(hours=3)), ("clicked", AT + timedelta(hours=2)))
    builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace_of(campaign)))  # another campaign

    export = exports.export_enrollments(workspace_of(campaign), campaign.id)
    rows = records(export)

    assert export.filename.startswith(f"campaign-{campaign.name.split()[-1]}-enrollments-")
    assert list(rows[0]) == list(exports.ENROLLMENT_COLUMNS)
    assert rows[0] == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Initech",
        "status": "active",
        "status_reason": "",
        "current_step": "1",
        "next_action_at": "2026-03-05T10:00:00+00:00",
        "enrolled_at": "2026-03-03T10:00:00+00:00",
        "completed_at": "",
        "last_event_type": "opened",
        "last_event_at": "2026-03-03T13:00:00+00:00",
    }
    assert len(rows) == 2
    assert (rows[1]["email"], rows[1]["status"], rows[1]["last_event_type"]) == (
        _db.session.get(Contact, late.contact_id).email,
        "paused",
        "",
    )


def test_the_enrollments_export_shows_what_the_list_shows_with_the_same_filters(db):
    campaign = builders.campaign()
    workspace = workspace_of(campaign)
    for email, status in [("ada@initech.test", "active"), ("bob@initech.test", "paused"), ("cy@globex.test", "active")]:
        contact = builders.ContactFactory(workspace_id=workspace.id, email=email)
        builders.EnrollmentFactory(instance=campaign, contact=contact, status=status)

    for filters in ({}, {"status": "active"}, {"search": "initech"}, {"search": "initech", "status": "paused"}):
        listed = sorted(e.contact.email for e in list_enrollments(workspace, campaign.id, limit=100, **filters)[0])
        exported = records(exports.export_enrollments(workspace, campaign.id, **filters))
        assert sorted(row["email"] for row in exported) == listed, filters
    assert [row["email"] for row in records(exports.export_enrollments(workspace, campaign.id, status="paused"))] == [
        "bob@initech.test"
    ]


def test_thousands_of_enrollments_enrolled_at_once_export_each_exactly_once(db):
    """One bulk enrollment gives every row the same time: the batches go on by id."""
    campaign = builders.campaign()
    workspace = workspace_of(campaign)
    add_contacts(workspace, exports.BATCH + 700)
    contact_ids = list(_db.session.scalars(sa.select(Contact.id).where(Contact.workspace_id == workspace.id)))
    _db.session.execute(
        sa.insert(CampaignEnrollment),
        [
            {
                "id": uuid.uuid4(),
                "workspace_id": workspace.id,
                "instance_id": campaign.id,
                "contact_id": contact_id,
                "status": "active",
                "enrolled_at": AT,
                "updated_at": AT,
            }
            for contact_id in contact_ids
        ],
    )
    _db.session.commit()

    emails = [row["email"] for row in records(exports.export_enrollments(workspace, campaign.id))]

    assert len(emails) == exports.BATCH + 700
    assert sorted(emails) == [f"bulk{i:05d}@example.com" for i in range(exports.BATCH + 700)]


def test_another_workspace_campaign_is_not_found_before_anything_is_sent(db):
    campaign = builders.campaign()
    builders.EnrollmentFactory(instance=campaign)
    outsider = builders.WorkspaceFactory()

    with pytest.raises(NotFound):
        exports.export_enrollments(outsider, campaign.id)
    with pytest.raises(NotFound):
        exports.export_events(outsider, campaign.id)
    assert [row["email"] for row in records(exports.export_contacts(outsider))] == []


# A campaign's events.


def test_the_events_export_lists_the_campaign_events_in_time_order_with_their_details(db):
    campaign = builders.campaign(steps=2)
    step2 = _db.session.scalar(
        sa.select(SequenceStep).where(SequenceStep.template_id == campaign.template_id, SequenceStep.position == 2)
    )
    ada = builders.EnrollmentFactory(
        instance=campaign, contact=builders.ContactFactory(workspace_id=campaign.workspace_id, email="ada@example.com")
    )
    bob = builders.EnrollmentFactory(instance=campaign)
    events_at(campaign, ada, ("clicked", AT + timedelta(hours=1)), step_id=step2.id, metadata={"url": "=1+2"})
    events_at(
        campaign, bob, ("bounced", AT), metadata={"bounce_type": "hard", "smtp_code": 550, "raw": {"x": "y" * 100}}
    )
    other = builders.campaign(workspace=workspace_of(campaign))
    events_at(other, builders.EnrollmentFactory(instance=other), ("opened", AT))

    export = exports.export_events(workspace_of(campaign), campaign.id)
    rows = records(export)

    assert "-events-" in export.filename
    assert [(row["occurred_at"], row["type"]) for row in rows] == [
        ("2026-03-03T10:00:00+00:00", "bounced"),
        ("2026-03-03T11:00:00+00:00", "clicked"),
    ]
    assert list(rows[0]) == list(exports.EVENT_COLUMNS)
    assert (rows[0]["bounce_type"], rows[0]["smtp_code"], rows[0]["step"]) == ("hard", "550", "")
    assert "raw" not in rows[0] and "yyyy" not in str(rows[0])
    assert rows[1] | {} == {
        "occurred_at": "2026-03-03T11:00:00+00:00",
        "type": "clicked",
        "step": "2",
        "email": "ada@example.com",
        "channel": "email",
        "provider": "api",
        "url": "'=1+2",
        "bounce_type": "",
        "smtp_code": "",
        "reason": "",
        "snippet": "",
        "message_id": "",
    }

"""The migration that gives every launched campaign its own copy of its template's steps, and
moves what points at those steps (sends, tasks, events, event counts) to the copy."""

import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from flask_migrate import upgrade

from tests.test_migrations import empty_postgres_url, fresh_app  # noqa: F401 (fixtures)
from webapp.extensions import db
from webapp.models.base import NIL_UUID

BEFORE = "5d2e8c4a7f31"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TYPES = {uuid.UUID: sa.Uuid(), datetime: sa.DateTime(timezone=True), date: sa.Date(), dict: sa.JSON()}


def insert(table: str, **values) -> uuid.UUID:
    """A row straight into the table as it is before the migration (no model defaults)."""
    values = {"id": uuid.uuid4(), **values} if table not in ("event_rollups", "event_firsts") else values
    if table not in ("event_rollups", "event_firsts", "campaign_events", "campaign_enrollments"):
        values = {"created_at": NOW, "updated_at": NOW, **values}
    columns = [sa.column(key, TYPES.get(type(value))) for key, value in values.items()]
    db.session.execute(sa.insert(sa.table(table, *columns)).values(values))
    return values.get("id")


def rows(query: str, **params) -> list:
    return db.session.execute(sa.text(query), params).all()


def step_ids(column: str, table: str) -> set:
    return {uuid.UUID(str(value)) for (value,) in rows(f"SELECT {column} FROM {table}")}


def test_launched_campaigns_get_their_own_steps_and_keep_their_history(fresh_app):  # noqa: F811
    upgrade(revision=BEFORE)
    workspace = insert("workspaces", name="Acme", settings={}, webhook_secret="s")
    contact = insert("contacts", workspace_id=workspace, email="ada@example.com", custom_fields={}, status="subscribed")
    template = insert(
        "campaign_templates",
        workspace_id=workspace,
        name="Founders",
        type="multi_channel",
        path_type="structured",
        settings={"daily_cap": 40},
        is_active=True,
    )
    steps = [
        insert(
            "sequence_steps",
            template_id=template,
            position=position,
            channel=channel,
            action=action,
            delay_days=delay,
            delay_hours=0,
            subject=subject,
            body="Hi",
            is_active=True,
        )
        for position, channel, action, delay, subject in (
            (1, "email", "email", 0, "One"),
            (2, "linkedin", "profile_visit", 2, None),
        )
    ]
    campaigns = {
        status: insert(
            "campaign_instances", workspace_id=workspace, template_id=template, name=status, status=status, settings={}
        )
        for status in ("active", "completed", "draft")
    }
    live = campaigns["active"]
    enrollment = insert(
        "campaign_enrollments",
        workspace_id=workspace,
        instance_id=live,
        contact_id=contact,
        status="active",
        current_step=1,
        enrolled_at=NOW,
        updated_at=NOW,
    )
    insert("deliveries", workspace_id=workspace, enrollment_id=enrollment, step_id=steps[0], status="sent", attempts=1)
    insert(
        "tasks",
        workspace_id=workspace,
        enrollment_id=enrollment,
        step_id=steps[1],
        type="profile_visit",
        due_at=NOW,
        status="open",
    )
    insert(
        "campaign_events",
        workspace_id=workspace,
        instance_id=live,
        enrollment_id=enrollment,
        step_id=steps[0],
        channel="email",
        type="opened",
        provider="test",
        provider_event_id="e1",
        occurred_at=NOW,
        metadata={},
        created_at=NOW,
    )
    for step in (steps[0], NIL_UUID):
        insert("event_rollups", instance_id=live, step_id=step, day=NOW.date(), type="opened", n=1)
        insert("event_firsts", enrollment_id=enrollment, step_id=step, type="opened")
    db.session.commit()

    upgrade()

    instances = {
        name: (uuid.UUID(str(template_id)), uuid.UUID(str(source)))
        for name, template_id, source in rows("SELECT name, template_id, source_template_id FROM campaign_instances")
    }
    assert instances["draft"] == (template, template)  # a draft follows its template
    copies = {
        name: runs_on for name, (runs_on, source) in instances.items() if source == template and runs_on != template
    }
    assert set(copies) == {"active", "completed"} and copies["active"] != copies["completed"]
    copy = copies["active"]
    copied = rows(
        "SELECT name, type, settings, campaign_copy FROM campaign_templates WHERE id = :id",
        id=copy if db.engine.dialect.name == "postgresql" else copy.hex,
    )
    assert [(name, kind, bool(flag)) for name, kind, _, flag in copied] == [("Founders", "multi_channel", True)]
    assert rows("SELECT count(*) FROM campaign_templates WHERE campaign_copy = FALSE")[0][0] == 1

    new_steps = {
        position: (uuid.UUID(str(step_id)), subject, delay)
        for step_id, position, subject, delay, template_id in rows(
            "SELECT id, position, subject, delay_days, template_id FROM sequence_steps"
        )
        if uuid.UUID(str(template_id)) == copy
    }
    assert {p: (subject, delay) for p, (_, subject, delay) in new_steps.items()} == {1: ("One", 0), 2: (None, 2)}
    first, second = new_steps[1][0], new_steps[2][0]
    assert step_ids("step_id", "deliveries") == {first}
    assert step_ids("step_id", "tasks") == {second}
    assert step_ids("step_id", "campaign_events") == {first}
    assert step_ids("step_id", "event_rollups") == {first, NIL_UUID}
    assert step_ids("step_id", "event_firsts") == {first, NIL_UUID}
    assert len(step_ids("id", "sequence_steps")) == 6  # the template's two, and two in each copy


def test_upgrading_a_sqlite_database_keeps_the_rows_of_the_tables_it_copies(fresh_app):  # noqa: F811
    """SQLite alters a table by copying it and dropping the old one: with foreign keys on, that drop
    would delete the sends and events of every enrollment (ON DELETE CASCADE)."""
    upgrade(revision="7b1c2d9e4f10")  # before the mailboxes migration copies campaign_enrollments
    workspace = insert("workspaces", name="Acme", settings={}, webhook_secret="s")
    contact = insert("contacts", workspace_id=workspace, email="ada@example.com", custom_fields={}, status="subscribed")
    template = insert(
        "campaign_templates",
        workspace_id=workspace,
        name="T",
        type="email",
        path_type="structured",
        settings={},
        is_active=True,
    )
    step = insert(
        "sequence_steps",
        template_id=template,
        position=1,
        channel="email",
        action="email",
        delay_days=0,
        delay_hours=0,
        subject="Hi",
        body="Hi",
        is_active=True,
    )
    instance = insert(
        "campaign_instances", workspace_id=workspace, template_id=template, name="C", status="active", settings={}
    )
    enrollment = insert(
        "campaign_enrollments",
        workspace_id=workspace,
        instance_id=instance,
        contact_id=contact,
        status="active",
        current_step=1,
        enrolled_at=NOW,
        updated_at=NOW,
    )
    insert("deliveries", workspace_id=workspace, enrollment_id=enrollment, step_id=step, status="sent", attempts=1)
    db.session.commit()

    upgrade()

    counts = [rows(f"SELECT count(*) FROM {table}")[0][0] for table in ("campaign_enrollments", "deliveries")]
    assert counts == [1, 1]
    assert rows("PRAGMA foreign_keys")[0][0] == 1 if db.engine.dialect.name == "sqlite" else True

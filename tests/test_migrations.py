"""The schema comes from the migrations: they run from empty to head and back, and match the models."""

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from tests.conftest import PG_URL, make_config, scratch_postgres_database
from webapp import create_app
from webapp.extensions import db
from webapp.models import Contact, Workspace


@pytest.fixture(scope="module")
def empty_postgres_url():
    """One scratch database for the module (creating one per test is slow); tests empty it after use."""
    with scratch_postgres_database(PG_URL) as url:
        yield url


@pytest.fixture
def fresh_app(request, tmp_path):
    """An app on an empty database of its own."""
    url = request.getfixturevalue("empty_postgres_url") if PG_URL else f"sqlite:///{tmp_path / 'fresh.db'}"
    app = create_app(make_config(url))
    with app.app_context():
        yield app
        db.session.remove()
        if PG_URL:
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        db.engine.dispose()


def head_revision(app) -> str:
    config = app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def schema_differences() -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_it_upgrades_an_empty_database_to_head(fresh_app):
    assert table_names() == set()

    upgrade()

    assert current_revision() == head_revision(fresh_app)
    assert table_names() == set(db.metadata.tables) | {"alembic_version"}


def test_models_and_migrations_agree(fresh_app):
    upgrade()

    assert schema_differences() == []


CHANGED_TYPES = [
    pytest.param("api_keys", "last_used_at", sa.String(30), id="datetime-as-string"),
    pytest.param("workspaces", "settings", sa.JSON(), id="json-not-jsonb", marks=pytest.mark.postgres),
    pytest.param("api_keys", "last_used_at", sa.DateTime(), id="naive-datetime", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("table", "column", "wrong_type"), CHANGED_TYPES)
def test_the_comparison_notices_a_column_type_that_differs(fresh_app, table, column, wrong_type):
    """So an empty comparison means agreement (JSONB variant, UTCDateTime), not a blind check."""
    upgrade()
    model_column = db.metadata.tables[table].c[column]
    original = model_column.type
    model_column.type = wrong_type
    try:
        differences = schema_differences()
    finally:
        model_column.type = original

    assert len(differences) == 1
    assert differences[0][0][0] == "modify_type"
    assert differences[0][0][2:4] == (table, column)


def downgrade_and_upgrade_again(app) -> None:
    upgrade()
    downgrade(revision="base")
    assert table_names() <= {"alembic_version"}
    assert current_revision() is None
    upgrade()
    assert current_revision() == head_revision(app)
    assert schema_differences() == []


@pytest.mark.postgres
def test_it_downgrades_to_base_and_upgrades_again_on_postgresql(fresh_app):
    downgrade_and_upgrade_again(fresh_app)


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite leg")
def test_it_downgrades_to_base_and_upgrades_again_on_sqlite(fresh_app):
    downgrade_and_upgrade_again(fresh_app)


def insert_contact(workspace_id: uuid.UUID, email: str) -> None:
    """Straight to the table, past the services that lower-case addresses."""
    now = datetime.now(UTC)
    db.session.execute(
        sa.insert(Contact.__table__).values(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            email=email,
            custom_fields={},
            status="subscribed",
            created_at=now,
            updated_at=now,
        )
    )
    db.session.commit()


@pytest.fixture
def workspace_id(db) -> uuid.UUID:
    workspace = Workspace(name="Raw", settings={})
    db.session.add(workspace)
    db.session.commit()
    return workspace.id


def test_the_database_rejects_a_contact_email_that_is_not_lower_case(db, workspace_id):
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)ck_contacts_email_lowercase|check constraint"):
        insert_contact(workspace_id, "A@x.io")
    db.session.rollback()


def test_the_database_rejects_the_same_contact_email_twice_in_a_workspace(db, workspace_id):
    insert_contact(workspace_id, "a@x.io")

    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)uq_contacts_workspace_id_email|unique"):
        insert_contact(workspace_id, "a@x.io")
    db.session.rollback()

    other = Workspace(name="Other", settings={})
    db.session.add(other)
    db.session.commit()
    insert_contact(other.id, "a@x.io")


def counting_rows() -> tuple[list, list]:
    """The counts, each step named by its position (a campaign's own steps are copied anew when the
    campaign-steps migration runs again after a downgrade)."""
    position = "COALESCE((SELECT position FROM sequence_steps s WHERE s.id = step_id), 0)"
    rollups = db.session.execute(sa.text(f"SELECT instance_id, {position}, day, type, n FROM event_rollups")).all()
    firsts = db.session.execute(sa.text(f"SELECT enrollment_id, {position}, type FROM event_firsts")).all()
    return sorted(map(tuple, rollups), key=str), sorted(map(tuple, firsts), key=str)


def test_the_per_contact_counts_of_events_stored_before_are_counted_as_ingestion_counts_them(fresh_app):
    from tests.services.test_analytics_contacts import seeded

    upgrade()
    seeded(db)
    counted = counting_rows()
    db.session.remove()

    downgrade(revision="5d2e8b7c4a91")
    kinds = {kind for *_, kind in counting_rows()[1]}
    assert kinds == {"opened"}, "the downgrade leaves only the counts the old code kept"
    upgrade()

    assert counting_rows() == counted

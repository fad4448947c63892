"""A campaign's own steps: at launch a campaign takes a copy of its template (settings and steps),
so later template edits do not move it.

`campaign_templates.campaign_copy` marks the copies (never listed as templates) and
`campaign_instances.source_template_id` keeps the template a campaign was made from. Every campaign
already launched (active, paused or completed) gets its copy here, and its deliveries, tasks, events
and event counts move to the copy's steps. All of it is set-based: a few INSERT ... SELECT and
UPDATE statements through two scratch mapping tables, whatever the number of campaigns.

Downgrade keeps the copies as ordinary templates the campaigns point at: nothing is lost.

Revision ID: b4c1e7d2a9f3
Revises: 5d2e8c4a7f31
Create Date: 2026-12-05 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "b4c1e7d2a9f3"
down_revision = "5d2e8c4a7f31"
branch_labels = None
depends_on = None

SOURCE_FK = "fk_campaign_instances_source_template_id_campaign_templates"
LAUNCHED = "('active', 'paused', 'completed')"
TEMPLATE_COLUMNS = "workspace_id, name, type, path_type, description, settings, is_active, created_at, updated_at"
STEP_COLUMNS = (
    "position, channel, action, delay_days, delay_hours, subject, body, variants, thread, is_active, "
    "created_at, updated_at"
)


def upgrade():
    # SQLite copies campaign_instances to add the foreign key: migrations/env.py turns foreign keys
    # off meanwhile, or the copy's drop of the old table would cascade to the enrollments.
    with op.batch_alter_table("campaign_templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("campaign_copy", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("campaign_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_template_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            SOURCE_FK, "campaign_templates", ["source_template_id"], ["id"], ondelete="SET NULL"
        )
    _copy_launched_campaigns()


def _new_id() -> str:
    # A fresh UUID per row, in the column's own storage: native uuid on PostgreSQL, 32 hex digits
    # (sa.Uuid's format) on SQLite.
    if op.get_bind().dialect.name == "postgresql":
        return "gen_random_uuid()"
    return "lower(hex(randomblob(16)))"


def _copy_launched_campaigns() -> None:
    new_id = _new_id()
    op.execute("UPDATE campaign_instances SET source_template_id = template_id")
    op.create_table(
        "campaign_copy_templates",
        sa.Column("instance_id", sa.Uuid(), primary_key=True),
        sa.Column("template_id", sa.Uuid(), nullable=False),
    )
    op.create_table(
        "campaign_copy_steps",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("old_step_id", sa.Uuid(), nullable=False),
        sa.Column("new_step_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "old_step_id"),
    )
    op.execute(
        f"INSERT INTO campaign_copy_templates (instance_id, template_id) "
        f"SELECT id, {new_id} FROM campaign_instances WHERE status IN {LAUNCHED}"
    )
    op.execute(
        f"INSERT INTO campaign_templates (id, {TEMPLATE_COLUMNS}, campaign_copy) "
        f"SELECT m.template_id, {_prefixed('t', TEMPLATE_COLUMNS)}, TRUE "
        "FROM campaign_copy_templates m "
        "JOIN campaign_instances i ON i.id = m.instance_id "
        "JOIN campaign_templates t ON t.id = i.template_id"
    )
    op.execute(
        f"INSERT INTO campaign_copy_steps (instance_id, old_step_id, new_step_id, template_id) "
        f"SELECT m.instance_id, s.id, {new_id}, m.template_id "
        "FROM campaign_copy_templates m "
        "JOIN campaign_instances i ON i.id = m.instance_id "
        "JOIN sequence_steps s ON s.template_id = i.template_id"
    )
    op.execute(
        f"INSERT INTO sequence_steps (id, template_id, {STEP_COLUMNS}) "
        f"SELECT m.new_step_id, m.template_id, {_prefixed('s', STEP_COLUMNS)} "
        "FROM campaign_copy_steps m JOIN sequence_steps s ON s.id = m.old_step_id"
    )
    # Rows that know their campaign through their enrollment, then those that carry it.
    for table in ("deliveries", "tasks", "event_firsts"):
        _remap(
            table,
            "JOIN campaign_enrollments e ON e.instance_id = m.instance_id "
            f"WHERE e.id = {table}.enrollment_id AND m.old_step_id = {table}.step_id",
        )
    for table in ("campaign_events", "event_rollups"):
        _remap(table, f"WHERE m.instance_id = {table}.instance_id AND m.old_step_id = {table}.step_id")
    op.execute(
        "UPDATE campaign_instances SET template_id = "
        "(SELECT m.template_id FROM campaign_copy_templates m WHERE m.instance_id = campaign_instances.id) "
        "WHERE id IN (SELECT instance_id FROM campaign_copy_templates)"
    )
    op.drop_table("campaign_copy_steps")
    op.drop_table("campaign_copy_templates")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


def _remap(table: str, match: str) -> None:
    """Point `table`'s step_id at the campaign's copy of the step, for the rows `match` finds in
    the mapping `m` (a correlated subquery: the same SQL on SQLite and PostgreSQL)."""
    found = f"FROM campaign_copy_steps m {match}"
    op.execute(f"UPDATE {table} SET step_id = (SELECT m.new_step_id {found}) WHERE EXISTS (SELECT 1 {found})")


def downgrade():
    with op.batch_alter_table("campaign_instances", schema=None) as batch_op:
        batch_op.drop_constraint(SOURCE_FK, type_="foreignkey")
        batch_op.drop_column("source_template_id")
    with op.batch_alter_table("campaign_templates", schema=None) as batch_op:
        batch_op.drop_column("campaign_copy")

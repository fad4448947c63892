"""Each user's time zone (pages show times in it), and per-contact counts for the events already stored.

`users.timezone` is an IANA name, UTC by default. The rates became per contact: from now on
ingestion counts, once per contact (enrollment), the first send, task done ("contacted"), reply,
bounce and unsubscribe (complaints count as unsubscribes), for the campaign and for each step, in
event_firsts and event_rollups (`unique:<kind>`, `unique_step:<kind>`), as it already did for
opens and clicks. This migration counts the events stored before it the same way. The mapping
below is a frozen copy of services.events.FIRST_KINDS as it was when this ran.

Revision ID: 5d2e8c4a7f31
Revises: 5d2e8b7c4a91
Create Date: 2026-12-05 09:00:00

"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "5d2e8c4a7f31"
down_revision = "5d2e8b7c4a91"
branch_labels = None
depends_on = None

NEW_KINDS = (
    ("sent", "sent"),
    ("sent", "contacted"),
    ("task_completed", "contacted"),
    ("replied", "replied"),
    ("bounced", "bounced"),
    ("unsubscribed", "unsubscribed"),
    ("complained", "unsubscribed"),
)
KINDS = sorted({kind for _, kind in NEW_KINDS})
_VALUES = ", ".join(f"('{event_type}', '{kind}')" for event_type, kind in NEW_KINDS)
_FIRSTS = f"""
WITH k(type, kind) AS (VALUES {_VALUES}),
ev AS (
    SELECT e.instance_id, e.enrollment_id, :nil AS step_id, k.kind, e.occurred_at
    FROM campaign_events AS e JOIN k ON k.type = e.type
    UNION ALL
    SELECT e.instance_id, e.enrollment_id, e.step_id, k.kind, e.occurred_at
    FROM campaign_events AS e JOIN k ON k.type = e.type
    WHERE e.step_id IS NOT NULL
)
SELECT instance_id, enrollment_id, step_id, kind, min(occurred_at) AS first_at
FROM ev GROUP BY instance_id, enrollment_id, step_id, kind
"""


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))
    bind = op.get_bind()
    day = "(f.first_at AT TIME ZONE 'UTC')::date" if bind.dialect.name == "postgresql" else "date(f.first_at)"
    nil = sa.bindparam("nil", uuid.UUID(int=0), type_=sa.Uuid())
    firsts = sa.text(
        f"INSERT INTO event_firsts (enrollment_id, step_id, type) SELECT f.enrollment_id, f.step_id, f.kind "
        f"FROM ({_FIRSTS}) AS f"
    ).bindparams(nil)
    rollups = sa.text(
        f"INSERT INTO event_rollups (instance_id, step_id, day, type, n) "
        f"SELECT f.instance_id, f.step_id, {day}, "
        f"CASE WHEN f.step_id = :nil THEN 'unique:' ELSE 'unique_step:' END || f.kind, count(*) "
        f"FROM ({_FIRSTS}) AS f GROUP BY 1, 2, 3, 4"
    ).bindparams(nil)
    bind.execute(firsts)
    bind.execute(rollups)


def downgrade():
    bind = op.get_bind()
    bind.execute(
        sa.text("DELETE FROM event_firsts WHERE type IN :kinds").bindparams(
            sa.bindparam("kinds", KINDS, expanding=True)
        )
    )
    prefixed = [f"{prefix}:{kind}" for prefix in ("unique", "unique_step") for kind in KINDS]
    bind.execute(
        sa.text("DELETE FROM event_rollups WHERE type IN :types").bindparams(
            sa.bindparam("types", prefixed, expanding=True)
        )
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("timezone")

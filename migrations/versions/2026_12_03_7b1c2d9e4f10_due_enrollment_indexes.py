"""Partial indexes for the worker's two due queries (follow-ups, then first steps), and the id in
the schedule preview's index.

The single (status, next_action_at) index made the follow-up query walk every due first step
when no follow-up was due: one batch cost milliseconds per thousand waiting contacts. The
preview takes enrollments in the worker's order, (next_action_at, id): without the id the
index gave no order among equal times, and 100,000 enrollments launched at once were sorted.

Revision ID: 7b1c2d9e4f10
Revises: 231f3cc149ca
Create Date: 2026-12-03 09:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "7b1c2d9e4f10"
down_revision = "231f3cc149ca"
branch_labels = None
depends_on = None

FOLLOW_UPS = "status = 'active' AND current_step > 0"
FIRST_STEPS = "status = 'active' AND current_step = 0"


def upgrade():
    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_enrollments_instance_next")
        batch_op.create_index(
            "ix_campaign_enrollments_instance_next", ["instance_id", "next_action_at", "id"], unique=False
        )
        batch_op.drop_index("ix_campaign_enrollments_due")
        for name, where in (
            ("ix_campaign_enrollments_due_follow_ups", FOLLOW_UPS),
            ("ix_campaign_enrollments_due_first_steps", FIRST_STEPS),
        ):
            batch_op.create_index(
                name,
                ["next_action_at", "id"],
                unique=False,
                postgresql_where=sa.text(where),
                sqlite_where=sa.text(where),
            )


def downgrade():
    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_enrollments_due_first_steps")
        batch_op.drop_index("ix_campaign_enrollments_due_follow_ups")
        batch_op.create_index("ix_campaign_enrollments_due", ["status", "next_action_at"], unique=False)
        batch_op.drop_index("ix_campaign_enrollments_instance_next")
        batch_op.create_index("ix_campaign_enrollments_instance_next", ["instance_id", "next_action_at"], unique=False)

"""Indexes for the enrollments list order and the schedule preview (fast at 100,000 enrollments).

Revision ID: 231f3cc149ca
Revises: 5767ce7acfde
Create Date: 2026-11-26 03:44:20.986322

"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "231f3cc149ca"
down_revision = "5767ce7acfde"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaign_enrollments_instance_enrolled", ["instance_id", "enrolled_at", "id"], unique=False
        )
        batch_op.create_index("ix_campaign_enrollments_instance_next", ["instance_id", "next_action_at"], unique=False)


def downgrade():
    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_enrollments_instance_next")
        batch_op.drop_index("ix_campaign_enrollments_instance_enrolled")

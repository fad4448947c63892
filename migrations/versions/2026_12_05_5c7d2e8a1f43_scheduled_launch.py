"""Scheduled launch: a draft campaign may name when it launches (`start_at`); when the worker could
not launch it then, why (`start_error`).

Revision ID: 5c7d2e8a1f43
Revises: 9e3f6a1c2b70
Create Date: 2026-12-05 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "5c7d2e8a1f43"
down_revision = "9e3f6a1c2b70"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("campaign_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("start_error", sa.String(length=500), nullable=True))
    # The worker's look for drafts due to launch walks only the scheduled ones.
    op.create_index(
        "ix_campaign_instances_start_at",
        "campaign_instances",
        ["start_at"],
        postgresql_where=sa.text("start_at IS NOT NULL"),
        sqlite_where=sa.text("start_at IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_campaign_instances_start_at", table_name="campaign_instances")
    with op.batch_alter_table("campaign_instances", schema=None) as batch_op:
        batch_op.drop_column("start_error")
        batch_op.drop_column("start_at")

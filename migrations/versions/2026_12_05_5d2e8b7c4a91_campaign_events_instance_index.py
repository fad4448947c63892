"""An index on a campaign's events in time order, for the events CSV export: it reads them in
batches by (occurred_at, id) after the last row, so each batch is an index range, not a scan.

Revision ID: 5d2e8b7c4a91
Revises: 5c7d2e8a1f43
Create Date: 2026-12-05 09:00:00

"""

from alembic import op

revision = "5d2e8b7c4a91"
down_revision = "5c7d2e8a1f43"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("campaign_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaign_events_instance_occurred", ["instance_id", "occurred_at", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("campaign_events", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_events_instance_occurred")

"""Contact imports: the option to also enroll contacts live in another campaign, and the count of
those skipped without it.

Both columns have a server default, so rows written by code that does not know them stay valid.

Revision ID: 9e3f6a1c2b70
Revises: 44a58784578b
Create Date: 2026-12-04 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "9e3f6a1c2b70"
down_revision = "44a58784578b"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("contact_imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allow_other_campaigns", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("in_other_campaign", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("contact_imports", schema=None) as batch_op:
        batch_op.drop_column("in_other_campaign")
        batch_op.drop_column("allow_other_campaigns")

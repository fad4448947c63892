"""CSV contact imports: the uploaded file and its progress.

Revision ID: 5767ce7acfde
Revises: c07dcea0ac20
Create Date: 2026-11-26 02:37:43.607195

"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "5767ce7acfde"
down_revision = "c07dcea0ac20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "contact_imports",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("encoding", sa.String(length=30), nullable=False),
        sa.Column("delimiter", sa.String(length=1), nullable=False),
        sa.Column("has_header", sa.Boolean(), nullable=False),
        sa.Column(
            "mapping", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("already_enrolled", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("contacts_created", sa.Integer(), nullable=False),
        sa.Column("invalid_count", sa.Integer(), nullable=False),
        sa.Column(
            "invalid_rows",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["campaign_instances.id"],
            name=op.f("fk_contact_imports_instance_id_campaign_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contact_imports_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_imports")),
    )
    with op.batch_alter_table("contact_imports", schema=None) as batch_op:
        batch_op.create_index("ix_contact_imports_status_created", ["status", "created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("contact_imports", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_imports_status_created")

    op.drop_table("contact_imports")

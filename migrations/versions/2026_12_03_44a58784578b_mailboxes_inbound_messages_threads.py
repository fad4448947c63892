"""Mailboxes (the team's own accounts, passwords encrypted), messages read in them, the mailbox of
each enrollment and delivery, why an enrollment waits, and follow-ups in the same thread.

Revision ID: 44a58784578b
Revises: 7b1c2d9e4f10
Create Date: 2026-12-03 10:41:32.604856

"""

import sqlalchemy as sa
from alembic import op

revision = "44a58784578b"
down_revision = "7b1c2d9e4f10"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mailboxes",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("from_name", sa.String(length=100), nullable=True),
        sa.Column("from_email", sa.String(length=320), nullable=False),
        sa.Column("smtp_host", sa.String(length=255), nullable=False),
        sa.Column("smtp_port", sa.Integer(), nullable=False),
        sa.Column("smtp_security", sa.String(length=10), nullable=False),
        sa.Column("smtp_username", sa.String(length=320), nullable=True),
        sa.Column("smtp_password_encrypted", sa.Text(), nullable=True),
        sa.Column("imap_host", sa.String(length=255), nullable=True),
        sa.Column("imap_port", sa.Integer(), nullable=True),
        sa.Column("imap_security", sa.String(length=10), nullable=True),
        sa.Column("imap_username", sa.String(length=320), nullable=True),
        sa.Column("imap_password_encrypted", sa.Text(), nullable=True),
        sa.Column("imap_folder", sa.String(length=255), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("min_gap_seconds", sa.Integer(), nullable=True),
        sa.Column("ramp_start", sa.Integer(), nullable=True),
        sa.Column("ramp_increase", sa.Integer(), nullable=True),
        sa.Column("ramp_started_on", sa.Date(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imap_uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("imap_last_uid", sa.BigInteger(), nullable=False),
        sa.Column("inbox_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inbox_claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inbox_error", sa.Text(), nullable=True),
        sa.Column("inbox_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_mailboxes_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("workspace_id", "from_email", name=op.f("uq_mailboxes_workspace_id_from_email")),
    )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailboxes_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "inbound_messages",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox_id", sa.Uuid(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_email", sa.String(length=320), nullable=True),
        sa.Column("from_name", sa.String(length=255), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.Column("bounce_type", sa.String(length=10), nullable=True),
        sa.Column("status_code", sa.String(length=20), nullable=True),
        sa.Column("return_date", sa.Date(), nullable=True),
        sa.Column("delivery_id", sa.Uuid(), nullable=True),
        sa.Column("enrollment_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("lead_status", sa.String(length=20), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_inbound_messages_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_inbound_messages_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["campaign_enrollments.id"],
            name=op.f("fk_inbound_messages_enrollment_id_campaign_enrollments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_inbound_messages_mailbox_id_mailboxes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inbound_messages_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "mailbox_id", "uidvalidity", "uid", name=op.f("uq_inbound_messages_mailbox_id_uidvalidity_uid")
        ),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_messages_workspace_kind_received", ["workspace_id", "kind", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_inbound_messages_workspace_message_id",
            ["workspace_id", "message_id"],
            unique=True,
            postgresql_where=sa.text("message_id IS NOT NULL"),
            sqlite_where=sa.text("message_id IS NOT NULL"),
        )

    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait_reason", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("mailbox_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_campaign_enrollments_mailbox_id_mailboxes"),
            "mailboxes",
            ["mailbox_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailbox_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("thread_references", sa.Text(), nullable=True))
        batch_op.create_index("ix_deliveries_mailbox_created", ["mailbox_id", "created_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_mailbox_id_mailboxes"), "mailboxes", ["mailbox_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("sequence_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread", sa.Boolean(), nullable=True))


def downgrade():
    with op.batch_alter_table("sequence_steps", schema=None) as batch_op:
        batch_op.drop_column("thread")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_deliveries_mailbox_id_mailboxes"), type_="foreignkey")
        batch_op.drop_index("ix_deliveries_mailbox_created")
        batch_op.drop_column("thread_references")
        batch_op.drop_column("subject")
        batch_op.drop_column("mailbox_id")

    with op.batch_alter_table("campaign_enrollments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_campaign_enrollments_mailbox_id_mailboxes"), type_="foreignkey")
        batch_op.drop_column("mailbox_id")
        batch_op.drop_column("wait_reason")

    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_inbound_messages_workspace_message_id",
            postgresql_where=sa.text("message_id IS NOT NULL"),
            sqlite_where=sa.text("message_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_inbound_messages_workspace_kind_received")

    op.drop_table("inbound_messages")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailboxes_workspace_id"))

    op.drop_table("mailboxes")

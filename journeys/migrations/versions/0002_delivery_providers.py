"""Deliveries record whether they are transactional, which provider took them and when.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29

`sent_at` and its index serve frequency caps (a user's messages sent since a time).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns and the index; existing deliveries count as non-transactional, and
    those sent as sent when they were created."""
    # Batch mode, so that SQLite (which cannot drop a column default in place) copies the
    # table; PostgreSQL alters it. The default only fills existing rows: the models set it.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("transactional", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("provider", sa.String(), nullable=True))
        batch.add_column(sa.Column("provider_message_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("transactional", server_default=None)
        batch.create_index("ix_deliveries_user_sent_at", ["user_id", "sent_at"])
    # Best estimate for messages sent before `sent_at` existed, so frequency caps count them.
    op.execute("UPDATE deliveries SET sent_at = created_at WHERE status = 'sent'")


def downgrade() -> None:
    """Drop the index and the columns."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_user_sent_at")
        batch.drop_column("sent_at")
        batch.drop_column("provider_message_id")
        batch.drop_column("provider")
        batch.drop_column("transactional")

"""Erasure: the suppressions that keep an erased user's later events out.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

`suppressions` holds a hash of each erased user id (never the id itself) and when it was
erased; ingest drops events for a suppressed id until the user is identified again with
consent (`journeys.store.privacy`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "suppressions",
        sa.Column("user_hash", sa.String(), primary_key=True),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("suppressions")

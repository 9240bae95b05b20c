"""Channel rate limits: the log of sends under a limit, and the time a delivery waits for.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

`rate_grants` holds each send under a limit (`journeys.store.ratelimits`) for a window after it
finished; `deliveries.waits_until` says when a delivery held back by a limit gets its turn.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the log and add the column."""
    op.create_table(
        "rate_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bucket", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("reserved_for", sa.DateTime(), nullable=True),
        sa.Column("granted_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_rate_grants_bucket_key", "rate_grants", ["bucket", "key"])
    op.create_index("ix_rate_grants_bucket_finished_at", "rate_grants", ["bucket", "finished_at"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("waits_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Drop the column and the log."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("waits_until")
    op.drop_table("rate_grants")

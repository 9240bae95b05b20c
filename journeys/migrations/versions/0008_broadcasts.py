"""Broadcasts: one message to every member of a segment.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

`broadcasts` holds each broadcast as asked, its status and how many members it took; its
deliveries are ordinary `deliveries` rows (journey id `broadcast:{id}`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("broadcasts")

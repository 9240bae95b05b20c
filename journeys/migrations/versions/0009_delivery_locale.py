"""Localised messages: the locale a delivery's content came from.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

`deliveries.locale` holds the tag of the content's `locales` entry the user's `locale` trait
picked (None: the base content), so stats can count each language on its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column."""
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("locale", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("locale")

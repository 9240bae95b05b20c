"""Personal tokens, the audit log, and who published each journey version.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

`tokens` keeps each personal API token's name, role, expiry and revocation, and a hash of its
key (never the key); `audit_log` every management change with its actor and the token it came
with; and `journey_versions.published_by` the actor who published each version (empty for
versions published before this revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the tables and the column."""
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("token_id", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("journey_versions") as table:
        table.add_column(sa.Column("published_by", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("journey_versions") as table:
        table.drop_column("published_by")
    op.drop_table("audit_log")
    op.drop_table("tokens")

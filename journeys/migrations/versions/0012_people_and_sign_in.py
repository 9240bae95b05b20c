"""People who sign in to the designer, and the counts of failed sign-ins.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

`people` keeps each person's (lower-case) email, role and Argon2 password hash (null for people
who sign in only through OIDC); `sign_in_failures` counts failed sign-ins per hashed account
and client address within a window, to slow down guessing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "people",
        sa.Column("email", sa.String(), primary_key=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("sign_in_failures")
    op.drop_table("people")

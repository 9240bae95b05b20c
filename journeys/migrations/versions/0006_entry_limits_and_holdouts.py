"""Entry admissions (journeys with an entry limit) and the holdout mark of enrollments.

Routers look admissions up by workflow id too: a run the limit refused never records an
enrollment, yet it has run (`relay.admission`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the admissions table and add the column."""
    op.create_table(
        "entry_admissions",
        sa.Column("enrollment_id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id"),
    )
    op.create_index(
        "ix_entry_admissions_journey_at", "entry_admissions", ["journey_id", "admitted", "at"]
    )
    op.create_index("ix_entry_admissions_workflow_id", "entry_admissions", ["workflow_id"])
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("holdout", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop the column and the table."""
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("holdout")
    op.drop_index("ix_entry_admissions_workflow_id", table_name="entry_admissions")
    op.drop_index("ix_entry_admissions_journey_at", table_name="entry_admissions")
    op.drop_table("entry_admissions")

"""The schema as `SQLModel.metadata.create_all` made it before deliveries recorded providers.

Revision ID: 0001
Revises:
Create Date: 2025-11-29

Databases made by `create_all` at that time are adopted at this revision (stamped, not
re-created). Types are spelled out (String, DateTime) rather than imported from the models, so
this revision keeps creating the same tables whatever the models become.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _times(*names: str, nullable: bool = False) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.DateTime(), nullable=nullable) for name in names]


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "journeys",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        *_times("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "journey_versions",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        *_times("published_at"),
        sa.ForeignKeyConstraint(["journey_id"], ["journeys.id"]),
        sa.PrimaryKeyConstraint("journey_id", "version"),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("traits", sa.JSON(), nullable=False),
        *_times("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        *_times("timestamp", "received_at"),
        *_times("routed_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_events_routed_at", "events", ["routed_at", "id"])
    op.create_index("ix_events_user_name_timestamp", "events", ["user_id", "name", "timestamp"])
    op.create_table(
        "segments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("condition", sa.JSON(), nullable=False),
        *_times("updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        *_times("updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("variant", sa.String(), nullable=True),
        *_times("created_at"),
        *_times("read_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(
        "ix_deliveries_journey_node_status", "deliveries", ["journey_id", "node_id", "status"]
    )
    op.create_index("ix_deliveries_user_id", "deliveries", ["user_id"])
    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("current_node", sa.String(), nullable=True),
        sa.Column("variant", sa.String(), nullable=True),
        *_times("entered_at"),
        *_times("ended_at", "converted_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_enrollments_journey_current_node", "enrollments", ["journey_id", "current_node"]
    )
    op.create_index("ix_enrollments_journey_status", "enrollments", ["journey_id", "status"])
    op.create_index("ix_enrollments_user_id", "enrollments", ["user_id"])
    op.create_table(
        "node_visits",
        sa.Column("enrollment_id", sa.String(), nullable=False),
        sa.Column("node_id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        *_times("reached_at"),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollments.id"]),
        sa.PrimaryKeyConstraint("enrollment_id", "node_id"),
    )
    op.create_index("ix_node_visits_journey_node", "node_visits", ["journey_id", "node_id"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in (
        "settings",
        "node_visits",
        "enrollments",
        "deliveries",
        "templates",
        "segments",
        "events",
        "users",
        "journey_versions",
        "journeys",
    ):
        op.drop_table(table)

"""Deliveries record when they were first opened and clicked.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

In-app messages read before this revision count as opened when they were read, and each such
read becomes the `In-App Message Viewed` event an inbox read records from now on, already
routed (an old read must not move anyone through a journey today), so that engagement history
and predictions keep seeing it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_ATTRIBUTION = (
    "'delivery_id', id, 'journey_id', journey_id, 'journey_version', version, "
    "'node_id', node_id, 'channel', channel"
)


def upgrade() -> None:
    """Add the columns, then carry in-app reads over as opens and view events."""
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("opened_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("clicked_at", sa.DateTime(), nullable=True))
    read = "channel = 'in_app' AND read_at IS NOT NULL"
    op.execute(f"UPDATE deliveries SET opened_at = read_at WHERE {read}")
    if op.get_bind().dialect.name == "postgresql":
        build, false = "json_build_object", "false"
    else:
        build, false = "json_object", "json('false')"
    properties = (
        f"CASE WHEN variant IS NULL THEN {build}({_ATTRIBUTION}, 'machine', {false}) "
        f"ELSE {build}({_ATTRIBUTION}, 'variant', variant, 'machine', {false}) END"
    )
    op.execute(
        "INSERT INTO events "
        "(message_id, user_id, type, name, properties, timestamp, received_at, routed_at) "
        f"SELECT 'view:' || id, user_id, 'track', 'In-App Message Viewed', {properties}, "
        f"read_at, read_at, read_at FROM deliveries WHERE {read}"
    )


def downgrade() -> None:
    """Drop the columns (the view events stay: they are ordinary events)."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("clicked_at")
        batch.drop_column("opened_at")

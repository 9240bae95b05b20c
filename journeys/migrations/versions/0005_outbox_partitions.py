"""Events carry the key that places them in a partition of the outbox; enrollments are found
by workflow id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Routers of several API replicas share the outbox by partition (`journeys.store.claims`); an
event's partition is `partition_key % JOURNEYS_ROUTER_PARTITIONS`, where the key is a stable hash
of its user id. Events still waiting in the outbox get their key here; routed events never need
one, and keep none. Routers look up the enrollments of the runs they have just started by
workflow id (`relay.admission`).
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_PAGE = 1000


def _key(user_id: str) -> int:
    # Frozen here as `journeys.store.claims.partition_key` computes it today: a migration
    # must not change meaning if that function ever does.
    return zlib.crc32(user_id.encode()) & 0x7FFFFFFF


def upgrade() -> None:
    """Add the column and the index, then key the events waiting in the outbox."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("partition_key", sa.Integer(), nullable=True))
    op.create_index("ix_enrollments_workflow_id", "enrollments", ["workflow_id"])
    connection = op.get_bind()
    after = 0
    while True:
        waiting = connection.execute(
            sa.text(
                "SELECT id, user_id FROM events WHERE routed_at IS NULL AND id > :after "
                "ORDER BY id LIMIT :page"
            ),
            {"after": after, "page": _PAGE},
        ).all()
        if not waiting:
            return
        connection.execute(
            sa.text("UPDATE events SET partition_key = :key WHERE id = :id"),
            [{"id": event_id, "key": _key(user_id)} for event_id, user_id in waiting],
        )
        after = waiting[-1][0]


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_enrollments_workflow_id", table_name="enrollments")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("partition_key")

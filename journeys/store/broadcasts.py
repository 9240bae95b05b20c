"""Broadcasts: each recorded once by id, its status and how many members it took; and the
members whose broadcast message is still unfinished."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from journeys.store.base import StoreBase
from journeys.store.records import (
    UNFINISHED,
    BroadcastRecord,
    DeliveryRecord,
    DeliveryStatus,
    utcnow,
)

_FINAL = ("completed", "cancelled")


class BroadcastsAggregate(StoreBase):
    """Broadcasts, keyed by id; their deliveries are ordinary deliveries."""

    def add_broadcast(self, broadcast_id: str, definition: dict[str, Any], status: str) -> bool:
        """Record a new broadcast; False (nothing changed) when the id is already recorded."""
        record = BroadcastRecord(
            id=broadcast_id, definition=copy.deepcopy(definition), status=status
        )
        try:
            with self._write() as session:
                session.add(record)
        except IntegrityError:
            if self.get_broadcast(broadcast_id) is None:
                raise
            return False
        return True

    def get_broadcast(self, broadcast_id: str) -> BroadcastRecord | None:
        """The broadcast, or None."""
        with self._read() as session:
            return session.get(BroadcastRecord, broadcast_id)

    def list_broadcasts(self) -> list[BroadcastRecord]:
        """Every broadcast, newest first."""
        statement = select(BroadcastRecord).order_by(
            col(BroadcastRecord.created_at).desc(), col(BroadcastRecord.id)
        )
        with self._read() as session:
            return list(session.exec(statement))

    def set_broadcast_status(
        self, broadcast_id: str, status: str, *, targeted: int | None = None
    ) -> BroadcastRecord | None:
        """Set the broadcast's status (and how many members it took so far); a final status
        (completed, cancelled) stays as it is. The record, or None for an unknown id."""
        with self._write() as session:
            record = session.get(BroadcastRecord, broadcast_id, with_for_update=True)
            if record is None:
                return None
            if record.status not in _FINAL:
                record.status = status
                if status in _FINAL:
                    record.finished_at = utcnow()
            if targeted is not None:
                record.targeted = targeted
            session.add(record)
            session.flush()
            session.refresh(record)
            return record

    def unfinished_recipients(
        self,
        journey_id: str,
        after: str | None,
        limit: int,
        statuses: Sequence[DeliveryStatus] = UNFINISHED,
    ) -> list[str]:
        """Users (by id, after `after`) whose delivery of `journey_id` is not finished yet:
        pending (put off, or held back) or claimed by an attempt that stopped (`sending`);
        only those of `statuses`."""
        statement = (
            select(DeliveryRecord.user_id)
            .where(
                DeliveryRecord.journey_id == journey_id,
                col(DeliveryRecord.status).in_(statuses),
            )
            .order_by(col(DeliveryRecord.user_id))
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(col(DeliveryRecord.user_id) > after)
        with self._read() as session:
            return list(session.exec(statement))

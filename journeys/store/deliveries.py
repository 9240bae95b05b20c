"""Deliveries: recorded once per idempotency key, claimed under frequency caps, released or
finished; the in-app inbox and its reads; counts by node, channel and status."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from journeys.contracts import FinalDeliveryStatus
from journeys.errors import NotFound
from journeys.store.base import StoreBase
from journeys.store.records import (
    DELIVERY_STATUSES,
    IN_APP,
    CapWindow,
    DeliveryRecord,
    utcnow,
)

_CAP_LOCKS = int.from_bytes(b"cap!")
"""PostgreSQL advisory locks (this number, hash of a user id) serialise a user's capped claims."""


class DeliveriesAggregate(StoreBase):
    """Deliveries: one per message to one user from one node visit."""

    def begin_delivery(
        self,
        *,
        idempotency_key: str,
        journey_id: str,
        version: int,
        node_id: str,
        user_id: str,
        channel: str,
        variant: str | None,
        content: dict[str, Any],
        transactional: bool = False,
    ) -> tuple[DeliveryRecord, bool]:
        """Record a pending delivery: (record, True), or (the existing record, False) when the
        key is already stored, as on an activity retry."""
        record = DeliveryRecord(
            idempotency_key=idempotency_key,
            journey_id=journey_id,
            version=version,
            node_id=node_id,
            user_id=user_id,
            channel=channel,
            variant=variant,
            content=copy.deepcopy(content),
            transactional=transactional,
        )
        try:
            with self._write() as session:
                session.add(record)
        except IntegrityError:
            existing = self._delivery_by_key(idempotency_key)
            if existing is None:
                raise
            return existing, False
        return record, True

    def _delivery_by_key(self, idempotency_key: str) -> DeliveryRecord | None:
        statement = select(DeliveryRecord).where(DeliveryRecord.idempotency_key == idempotency_key)
        with self._read() as session:
            return session.exec(statement).first()

    def claim_delivery(
        self, idempotency_key: str, content: dict[str, Any], caps: Sequence[CapWindow] = ()
    ) -> DeliveryRecord:
        """Claim a pending delivery for sending, unless a frequency cap is reached.

        In one write transaction: for each cap on the delivery's channel or on all channels,
        count the user's non-transactional messages sent within its window, and those being
        sent now (so two journeys racing for the last slot cannot both take it). If a cap is
        full the delivery becomes "skipped" with the cap as its reason, else "sending" with its
        rendered `content`. A delivery already claimed (an
        interrupted attempt) or finished is returned unchanged. Raises NotFound for an unknown
        key.
        """
        with self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status != "pending":
                return record
            if caps and session.get_bind().dialect.name == "postgresql":
                # The row lock above covers this delivery only: without this lock, two claims
                # for one user would each count the other's slot as free (SQLite's write lock
                # already serialises them).
                session.exec(
                    select(func.pg_advisory_xact_lock(_CAP_LOCKS, func.hashtext(record.user_id)))
                ).one()
            full = next(
                (
                    cap
                    for cap in caps
                    if cap.channel in (None, record.channel)
                    and self._cap_used(session, record, cap) >= cap.max
                ),
                None,
            )
            if full is not None:
                record.status = "skipped"
                record.reason = f"frequency cap: {full.label}"
            else:
                record.status = "sending"
                record.content = copy.deepcopy(content)
            session.add(record)
            return record

    @staticmethod
    def _cap_used(session: Session, record: DeliveryRecord, cap: CapWindow) -> int:
        statement = (
            select(func.count())
            .select_from(DeliveryRecord)
            .where(
                DeliveryRecord.user_id == record.user_id,
                col(DeliveryRecord.transactional).is_(False),
                col(DeliveryRecord.id) != record.id,
                (
                    (col(DeliveryRecord.status) == "sending")
                    | (
                        (col(DeliveryRecord.status) == "sent")
                        & (col(DeliveryRecord.sent_at) >= cap.since)
                    )
                ),
            )
        )
        if cap.channel is not None:
            statement = statement.where(DeliveryRecord.channel == cap.channel)
        return session.exec(statement).one()

    def release_delivery(self, idempotency_key: str) -> DeliveryRecord:
        """Give a claimed delivery back ("sending" → "pending"): the provider refused it
        cleanly, so a later attempt may claim it again. Raises NotFound for an unknown key."""
        with self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status == "sending":
                record.status = "pending"
                session.add(record)
            return record

    def finish_delivery(
        self,
        idempotency_key: str,
        status: FinalDeliveryStatus,
        reason: str | None = None,
        content: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        provider_message_id: str | None = None,
    ) -> DeliveryRecord:
        """Set a delivery's final status and reason (and its content and provider, when given).

        A delivery that became "sent" records when. Raises NotFound for an unknown key.
        """
        with self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            record.status = status
            record.reason = reason
            if content is not None:
                record.content = copy.deepcopy(content)
            if provider is not None:
                record.provider = provider
                record.provider_message_id = provider_message_id
            if status == "sent":
                record.sent_at = utcnow()
            session.add(record)
            return record

    @staticmethod
    def _locked_delivery(session: Session, idempotency_key: str) -> DeliveryRecord:
        statement = (
            select(DeliveryRecord)
            .where(DeliveryRecord.idempotency_key == idempotency_key)
            .with_for_update()
        )
        record = session.exec(statement).first()
        if record is None:
            raise NotFound(f"no delivery with key {idempotency_key!r}")
        return record

    def deliveries_for_user(self, user_id: str, limit: int = 100) -> list[DeliveryRecord]:
        """The user's deliveries, newest first."""
        statement = (
            select(DeliveryRecord)
            .where(DeliveryRecord.user_id == user_id)
            .order_by(col(DeliveryRecord.created_at).desc(), col(DeliveryRecord.id).desc())
            .limit(limit)
        )
        with self._read() as session:
            return list(session.exec(statement))

    def inbox(self, user_id: str) -> list[DeliveryRecord]:
        """The user's sent in-app messages, read and unread, newest first."""
        statement = (
            select(DeliveryRecord)
            .where(
                DeliveryRecord.user_id == user_id,
                DeliveryRecord.channel == IN_APP,
                DeliveryRecord.status == "sent",
            )
            .order_by(col(DeliveryRecord.created_at).desc(), col(DeliveryRecord.id).desc())
        )
        with self._read() as session:
            return list(session.exec(statement))

    def in_app_reads(self) -> dict[str, int]:
        """How many in-app messages each user has read, by user id (users with none left out)."""
        statement = (
            select(DeliveryRecord.user_id, func.count())
            .where(DeliveryRecord.channel == IN_APP, col(DeliveryRecord.read_at).is_not(None))
            .group_by(col(DeliveryRecord.user_id))
        )
        with self._read() as session:
            return dict(session.exec(statement).all())

    def mark_read(
        self, user_id: str, delivery_id: int, at: datetime | None = None
    ) -> DeliveryRecord:
        """Mark an inbox message read (the first time only).

        Raises NotFound unless it is a sent in-app message to this user.
        """
        with self._write() as session:
            record = session.get(DeliveryRecord, delivery_id, with_for_update=True)
            if (
                record is None
                or record.user_id != user_id
                or record.channel != IN_APP
                or record.status != "sent"
            ):
                raise NotFound(f"no in-app message {delivery_id} for user {user_id!r}")
            if record.read_at is None:
                record.read_at = at or utcnow()
                session.add(record)
            return record

    def message_counts(self, journey_id: str) -> dict[str, dict[str, int]]:
        """Deliveries of the journey per node and status; every status is present per node."""
        statement = (
            select(DeliveryRecord.node_id, DeliveryRecord.status, func.count())
            .where(DeliveryRecord.journey_id == journey_id)
            .group_by(col(DeliveryRecord.node_id), col(DeliveryRecord.status))
        )
        counts: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for node_id, status, count in session.exec(statement):
                per_node = counts.setdefault(node_id, dict.fromkeys(DELIVERY_STATUSES, 0))
                per_node[status] = count
        return counts

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Every delivery, counted by (channel, status)."""
        statement = select(DeliveryRecord.channel, DeliveryRecord.status, func.count()).group_by(
            col(DeliveryRecord.channel), col(DeliveryRecord.status)
        )
        with self._read() as session:
            return {(channel, status): count for channel, status, count in session.exec(statement)}

"""Deliveries: recorded once per idempotency key, claimed under frequency caps and channel
rate limits, released or finished; the in-app inbox and its reads; opens and clicks; counts by
node, channel, status and engagement."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, func, select

from journeys.contracts import FinalDeliveryStatus, StepsInput
from journeys.engagement import DELIVERY_ID, MACHINE, Engagement, state_of
from journeys.errors import Conflict, NotFound
from journeys.ratelimits import Rate
from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.enrollments import record_steps_in
from journeys.store.events import store_events
from journeys.store.privacy import ERASED
from journeys.store.ratelimits import finish_slot, take_slot
from journeys.store.records import (
    DELIVERY_STATUSES,
    IN_APP,
    CapWindow,
    DeliveryRecord,
    EventRecord,
    NewEvent,
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
        self,
        idempotency_key: str,
        content: dict[str, Any],
        caps: Sequence[CapWindow] = (),
        rate: Rate | None = None,
        *,
        progress: StepsInput | None = None,
        locale: str | None = None,
        only_pending: bool = False,
    ) -> DeliveryRecord:
        """Claim a pending delivery for sending, unless a frequency cap is reached or its
        channel's `rate` has no slot for it yet.

        In one write transaction: for each cap on the delivery's channel or on all channels,
        count the user's non-transactional messages sent within its window, and those being
        sent now (so two journeys racing for the last slot cannot both take it). If a cap is
        full the delivery becomes "skipped" with the cap as its reason. Else, under a `rate`,
        it takes a slot of its channel (`journeys.store.ratelimits`): refused, it stays
        "pending" with `waits_until` set to when its turn comes and the wait as its reason.
        Otherwise it becomes "sending" with its rendered `content` and the `locale` of the
        content it was rendered from (None: the base content). A delivery already claimed
        (an interrupted attempt) or finished is returned unchanged, unless `only_pending`: then
        it raises Conflict, as another attempt took it since the caller saw it pending. A
        skipped delivery records the run's `progress` (`_record_progress`). Raises NotFound for
        an unknown key.
        """
        with self._rate_lock if rate is not None else nullcontext(), self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status != "pending":
                if only_pending:
                    raise Conflict(f"delivery {idempotency_key!r} was claimed by another attempt")
                return record
            failure = self._claim(
                session, record, content, caps, rate, progress=progress, locale=locale
            )
        if failure is not None:
            raise failure
        return record

    def _claim(
        self,
        session: Session,
        record: DeliveryRecord,
        content: dict[str, Any],
        caps: Sequence[CapWindow],
        rate: Rate | None,
        *,
        progress: StepsInput | None,
        locale: str | None,
    ) -> Exception | None:
        """Claim the pending `record` (locked) in `session`: capped, held back or "sending".
        The error recording `progress` met, if any, for the caller to raise once committed."""
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
        failure = None
        if full is not None:
            record.status = "skipped"
            record.reason = f"frequency cap: {full.label}"
            record.waits_until = None
            finish_slot(session, record.channel, record.idempotency_key, utcnow())
            failure = _record_progress(session, progress)
        elif rate is None or _takes_slot(session, record, rate):
            # A limit removed while it waited: nothing holds it back any more.
            record.reason, record.waits_until = None, None
            record.status = "sending"
            record.content = copy.deepcopy(content)
            record.locale = locale
        session.add(record)
        return failure

    def reclaim_delivery(self, idempotency_key: str, rate: Rate) -> DeliveryRecord:
        """Take a new slot under its channel's `rate` for a claimed delivery about to be sent
        again (its earlier attempt stopped while the provider was being called): the resend
        is a request the provider sees too. Refused, the delivery stays "sending" with
        `waits_until` set. Any other delivery is returned unchanged. Raises NotFound for an
        unknown key."""
        with self._rate_lock, self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status == "sending":
                _takes_slot(session, record, rate)
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

    def release_delivery(self, idempotency_key: str, *, keep_claim: bool = False) -> DeliveryRecord:
        """End a claimed delivery's attempt: its rate-limit slot stops counting a window from
        now, and the delivery goes back to "pending" (the provider refused it cleanly, so a
        later attempt may claim it again), or, with `keep_claim` (the provider may have taken
        it: a timeout, a lost connection), stays "sending" for a resend to decide. Raises
        NotFound for an unknown key."""
        answered = utcnow()  # the provider answered before: its slot stops here, not at commit
        with self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status == "sending":
                if not keep_claim:
                    record.status = "pending"
                    session.add(record)
                finish_slot(session, record.channel, idempotency_key, answered)
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
        progress: StepsInput | None = None,
    ) -> DeliveryRecord:
        """Set a delivery's final status and reason (and its content and provider, when given),
        and record the run's `progress` with it (`_record_progress`).

        A delivery that became "sent" records when. Raises NotFound for an unknown key.
        """
        answered = self.clock()
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
                record.sent_at = answered
            record.waits_until = None
            session.add(record)
            finish_slot(session, record.channel, idempotency_key, answered)
            failure = _record_progress(session, progress)
        if failure is not None:
            raise failure
        return record

    def skip_if_pending(self, idempotency_key: str, reason: str) -> bool:
        """Record a delivery skipped for `reason` if it is still pending, judged under its row
        lock: one claimed or finished since the caller saw it pending (sent meanwhile) is left
        as it is. True when it was skipped. Raises NotFound for an unknown key."""
        with self._write() as session:
            record = self._locked_delivery(session, idempotency_key)
            if record.status != "pending":
                return False
            record.status = "skipped"
            record.reason = reason
            record.waits_until = None
            session.add(record)
            # A reservation of its channel's rate it held goes back to the others.
            finish_slot(session, record.channel, idempotency_key, utcnow())
            return True

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

    def unread_in_app(self, user_ids: Collection[str]) -> list[DeliveryRecord]:
        """The sent, unread in-app messages of these users, oldest first (what a live inbox
        has yet to show)."""
        if not user_ids:
            return []
        statement = (
            select(DeliveryRecord)
            .where(
                col(DeliveryRecord.user_id).in_(user_ids),
                DeliveryRecord.channel == IN_APP,
                DeliveryRecord.status == "sent",
                col(DeliveryRecord.read_at).is_(None),
            )
            .order_by(col(DeliveryRecord.created_at), col(DeliveryRecord.id))
        )
        with self._read() as session:
            return list(session.exec(statement))

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

    # --- engagement ---------------------------------------------------------------------------

    def get_deliveries(self, ids: Collection[int]) -> dict[int, DeliveryRecord]:
        """The deliveries with these ids, by id (unknown ids left out)."""
        found: dict[int, DeliveryRecord] = {}
        unique = sorted(set(ids))
        with self._read() as session:
            # In chunks, to stay below the database's limit on bound parameters.
            for start in range(0, len(unique), 500):
                statement = select(DeliveryRecord).where(
                    col(DeliveryRecord.id).in_(unique[start : start + 500])
                )
                for record in session.exec(statement):
                    assert record.id is not None  # stored records have ids
                    found[record.id] = record
        return found

    def record_engagement(
        self,
        delivery_id: int,
        event: Callable[[DeliveryRecord, list[EventRecord]], NewEvent],
        *,
        since: datetime | None = None,
    ) -> bool | None:
        """Store the engagement event `event(delivery, recent)` makes for a delivery, and mark
        the delivery opened or clicked by it (`mark_engaged`); None when there is no delivery
        `delivery_id` (or its user was erased), else whether the event was new (a stored
        `message_id` drops it).

        `recent` holds the delivery's engagement events at or after `since` (none without
        it). The delivery's row stays locked from the read of `recent` to the write, so two
        hits on one delivery are decided one after the other, each seeing the other's event.
        """

        def write() -> bool | None:
            with self._write() as session:
                record = session.get(DeliveryRecord, delivery_id, with_for_update=True)
                if record is None or record.user_id.startswith(ERASED):
                    return None  # gone, or its user erased: a late hit brings nobody back
                recent = [] if since is None else _recent_engagement(session, record, since)
                made = event(record, recent)
                [new] = store_events(session, [made])
                if new:
                    _mark(session, record, made)
                return new

        return once_more_on_conflict(write)

    def mark_engaged(self, events: Sequence[NewEvent]) -> None:
        """Mark the deliveries these engagement events are about opened or clicked at the
        event's time, unless the event was made by a machine or the delivery was engaged with
        earlier: the first open and click stay, so marking again changes nothing. Each event
        must carry the integer `delivery_id` of a delivery of its user (ingest attributes them
        first); others are passed over."""
        ids = {found for event in events if (found := _delivery_id(event)) is not None}
        if not ids:
            return
        with self._write() as session:
            # Locked in id order, so two writers marking the same deliveries cannot deadlock.
            statement = (
                select(DeliveryRecord)
                .where(col(DeliveryRecord.id).in_(sorted(ids)))
                .order_by(col(DeliveryRecord.id))
                .with_for_update()
            )
            records = {record.id: record for record in session.exec(statement)}
            for event in events:
                record = records.get(_delivery_id(event))
                if record is not None:
                    _mark(session, record, event)

    def engagement_counts(self, journey_id: str) -> dict[str, tuple[int, int]]:
        """Users who opened and who clicked each message node of the journey, as (opened,
        clicked), for nodes with any."""
        statement = (
            select(
                DeliveryRecord.node_id,
                _users_with(DeliveryRecord.opened_at),
                _users_with(DeliveryRecord.clicked_at),
            )
            .where(
                DeliveryRecord.journey_id == journey_id,
                col(DeliveryRecord.opened_at).is_not(None),
            )
            .group_by(col(DeliveryRecord.node_id))
        )
        with self._read() as session:
            return {node_id: (o, c) for node_id, o, c in session.exec(statement)}

    def locale_counts(self, journey_id: str) -> dict[str, dict[str | None, tuple[int, int, int]]]:
        """Per message node of the journey and per locale its content came from (None: the
        base content), the deliveries sent and the users who opened and who clicked them, as
        (sent, opened, clicked); nodes and locales with no delivery sent are left out."""
        sent_here = (DeliveryRecord.journey_id == journey_id, DeliveryRecord.status == "sent")
        by = (col(DeliveryRecord.node_id), col(DeliveryRecord.locale))
        # Two statements: a select of five columns has no typed form.
        sends = select(DeliveryRecord.node_id, DeliveryRecord.locale, func.count())
        engaged = select(
            DeliveryRecord.node_id,
            DeliveryRecord.locale,
            _users_with(DeliveryRecord.opened_at),
            _users_with(DeliveryRecord.clicked_at),
        )
        counts: dict[str, dict[str | None, tuple[int, int, int]]] = {}
        with self._read() as session:
            users = {
                (node_id, locale): (opened, clicked)
                for node_id, locale, opened, clicked in session.exec(
                    engaged.where(*sent_here).group_by(*by)
                )
            }
            for node_id, locale, count in session.exec(sends.where(*sent_here).group_by(*by)):
                opened, clicked = users.get((node_id, locale), (0, 0))
                counts.setdefault(node_id, {})[locale] = (count, opened, clicked)
        return counts


def _record_progress(session: Session, progress: StepsInput | None) -> Exception | None:
    """Record a run's `progress` in the transaction that records its delivery's outcome, in a
    savepoint: when it fails (an enrollment inserted by a racing worker, a store error), the
    outcome still commits, since the message went or was skipped for good whatever the steps,
    and the error is returned for the caller to raise after the commit. The activity then fails
    and its retry, finding the outcome, records the steps on their own."""
    if progress is None:
        return None
    try:
        with session.begin_nested():
            record_steps_in(session, progress.steps, progress.enrollment)
    except (SQLAlchemyError, NotFound) as error:
        return error
    return None


def _takes_slot(session: Session, record: DeliveryRecord, rate: Rate) -> bool:
    """Whether the delivery may be handed to its provider now under its channel's `rate`
    (`journeys.store.ratelimits.take_slot`); if not, it waits, saying why and until when."""
    slot = take_slot(session, record.channel, record.idempotency_key, rate)
    if slot.granted:
        record.reason, record.waits_until = None, None
    else:
        record.reason = f"{record.channel} rate limit {rate.label}: waiting for a slot"
        record.waits_until = slot.retry_at
    return slot.granted


def _users_with(moment: datetime | None) -> Any:
    """Distinct users of the deliveries where the column `moment` is set."""
    return func.count(func.distinct(case((col(moment).is_not(None), DeliveryRecord.user_id))))


def _recent_engagement(
    session: Session, record: DeliveryRecord, since: datetime
) -> list[EventRecord]:
    statement = select(EventRecord).where(
        EventRecord.user_id == record.user_id, col(EventRecord.timestamp) >= since
    )
    # The delivery id is inside the JSON properties: a user's events of a few seconds are few.
    return [e for e in session.exec(statement) if e.properties.get(DELIVERY_ID) == record.id]


def _delivery_id(event: NewEvent) -> int | None:
    found = event.properties.get(DELIVERY_ID)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _mark(session: Session, record: DeliveryRecord, event: NewEvent) -> None:
    """Set the delivery's first open and click from one of its engagement events."""
    if event.properties.get(MACHINE) is True or event.name is None:
        return
    state: Engagement | None = state_of(event.name, event.properties)
    if state not in ("opened", "clicked"):
        return
    at = event.timestamp
    if record.opened_at is None or at < record.opened_at:
        record.opened_at = at
    if state == "clicked" and (record.clicked_at is None or at < record.clicked_at):
        record.clicked_at = at
    session.add(record)

"""Events and the routing outbox: batched, deduplicated appends (which also merge profiles
and traits), the events not yet routed, per-user reads and counts, and the batches of
retention that delete routed events."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal, text, tuple_
from sqlmodel import Session, and_, col, delete, func, or_, select, update

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.claims import NOTIFY_CHANNEL, partition_key
from journeys.store.privacy import admitted_events
from journeys.store.profiles import apply_operations, merge_profile, profile_of, profiles_of
from journeys.store.records import EventRecord, NewEvent, UTCDateTime, utcnow

RoutedPosition = tuple[datetime, int]
"""A place in routing order: (routed_at, id)."""
Expired = Callable[[str | None, datetime], bool]
"""Whether an event of this name (None for an identify) and time may be deleted."""


@dataclass(frozen=True)
class RetentionBatch:
    """What one batch of retention looked at and deleted."""

    scanned: int
    deleted: int
    last: RoutedPosition | None
    """The last event looked at, where the next batch starts; None: none was left."""


class EventsAggregate(StoreBase):
    """Events: appended once per `message_id`, routed through the outbox, read per user."""

    def append_events(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store many events in one transaction; for each, whether it was new.

        An event whose `message_id` is already stored, or appears earlier in `events`, is
        skipped (not an error) and has no effect at all; so is an event of an erased user,
        unless it is an identify with `consent`, which lifts the suppression. For each new
        event, in order: `merge_from` is merged into `user_id` (as `merge_profiles` does),
        the event is stored, the profile of `user_id` is created if need be and `traits` are
        merged into it.
        All or nothing: when anything fails, nothing is written.
        """
        if not events:
            return []
        return once_more_on_conflict(lambda: self._append_events(events))

    def _append_events(self, events: Sequence[NewEvent]) -> list[bool]:
        with self._write() as session:
            return store_events(session, events)

    def unrouted_events(
        self, limit: int = 500, partitions: tuple[int, Collection[int]] | None = None
    ) -> list[EventRecord]:
        """Events stored but not yet routed to journeys, oldest first; with `partitions`
        (count, claimed), only those in the claimed partitions (`journeys.store.claims`).
        Events without a partition key (stored by a release before revision 0005) belong to
        partition 0."""
        statement = select(EventRecord).where(col(EventRecord.routed_at).is_(None))
        if partitions is not None:
            count, claimed = partitions
            if not claimed:
                return []
            key = col(EventRecord.partition_key)
            mine = (key % count).in_(sorted(claimed))
            statement = statement.where(or_(mine, key.is_(None)) if 0 in claimed else mine)
        statement = statement.order_by(col(EventRecord.id)).limit(limit)
        with self._read() as session:
            return list(session.exec(statement))

    def mark_routed(self, event_ids: list[int], at: datetime | None = None) -> None:
        """Record that these events reached their journeys."""
        if not event_ids:
            return
        statement = (
            update(EventRecord)
            .where(col(EventRecord.id).in_(event_ids))
            .values(routed_at=at or utcnow())
        )
        with self._write() as session:
            session.exec(statement)

    def unrouted_count(self) -> int:
        """How many events wait in the outbox (an index range, cheap)."""
        statement = (
            select(func.count())
            .select_from(EventRecord)
            .where(col(EventRecord.routed_at).is_(None))
        )
        with self._read() as session:
            return session.exec(statement).one()

    def delete_expired_events(
        self,
        routed_before: datetime,
        expired: Expired,
        *,
        after: RoutedPosition | None = None,
        kept_for_good: Collection[str] = (),
        limit: int = 1000,
    ) -> RetentionBatch:
        """One batch of retention, in one short transaction: of the next `limit` events routed
        before `routed_before` (after `after`, in routing order), delete those `expired` says.

        Unrouted events, and events of the names `kept_for_good`, are never looked at (they
        would otherwise be read again on every run). Rows are found through the `routed_at`
        index and deleted by primary key, so PostgreSQL locks only those rows: events are
        appended, routed and read meanwhile."""
        routed = (col(EventRecord.routed_at), col(EventRecord.id))
        statement = select(
            col(EventRecord.id), col(EventRecord.routed_at), EventRecord.name, EventRecord.timestamp
        ).where(routed[0] < routed_before)
        if kept_for_good:
            name = col(EventRecord.name)
            statement = statement.where(name.is_(None) | name.not_in(kept_for_good))
        if after is not None:
            # Typed as the column, or PostgreSQL would compare an aware value in its own zone.
            at, event_id = after
            statement = statement.where(
                tuple_(*routed) > tuple_(literal(at, UTCDateTime()), event_id)
            )
        statement = statement.order_by(*routed).limit(limit)
        with self._write() as session:
            found = list(session.exec(statement))
            doomed = [event_id for event_id, _, name, at in found if expired(name, at)]
            if doomed:
                session.exec(delete(EventRecord).where(col(EventRecord.id).in_(doomed)))
        if not found:
            return RetentionBatch(scanned=0, deleted=0, last=None)
        last_id, last_routed, _, _ = found[-1]
        assert last_id is not None
        assert last_routed is not None
        return RetentionBatch(scanned=len(found), deleted=len(doomed), last=(last_routed, last_id))

    def events_for_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[EventRecord]:
        """The user's events, optionally only those named `name` and at or after `since`."""
        statement = select(EventRecord).where(EventRecord.user_id == user_id)
        if name is not None:
            statement = statement.where(EventRecord.name == name)
        if since is not None:
            statement = statement.where(col(EventRecord.timestamp) >= since)
        if newest_first:
            statement = statement.order_by(
                col(EventRecord.timestamp).desc(), col(EventRecord.id).desc()
            )
        else:
            statement = statement.order_by(col(EventRecord.timestamp), col(EventRecord.id))
        if limit is not None:
            statement = statement.limit(limit)
        with self._read() as session:
            return list(session.exec(statement))

    def events_page(
        self,
        user_id: str,
        *,
        after: tuple[datetime, int | None] | None = None,
        before: tuple[datetime, int | None] | None = None,
        limit: int,
    ) -> list[EventRecord]:
        """At most `limit` of the user's events strictly between two positions, oldest first:
        the first ones after `after`, or, given only `before`, the last ones before it (keyset
        paging, so a page costs the same however deep it is). A position is (timestamp, id);
        an id of None stands past every event of that instant."""
        statement = select(EventRecord).where(EventRecord.user_id == user_id)
        at, ident = col(EventRecord.timestamp), col(EventRecord.id)
        if after is not None:
            moment, after_id = after
            later = at > moment
            if after_id is not None:
                later = or_(later, and_(at == moment, ident > after_id))
            statement = statement.where(later)
        if before is not None:
            moment, before_id = before
            earlier = at <= moment if before_id is None else at < moment
            if before_id is not None:
                earlier = or_(earlier, and_(at == moment, ident < before_id))
            statement = statement.where(earlier)
        latest = after is None and before is not None
        order = (at.desc(), ident.desc()) if latest else (at, ident)
        with self._read() as session:
            found = list(session.exec(statement.order_by(*order).limit(limit)))
        return found[::-1] if latest else found

    def count_events(self, user_id: str, *, name: str | None, since: datetime | None) -> int:
        """How many events the user has (named `name`, at or after `since`, when given)."""
        statement = select(func.count()).select_from(EventRecord)
        statement = statement.where(EventRecord.user_id == user_id)
        if name is not None:
            statement = statement.where(EventRecord.name == name)
        if since is not None:
            statement = statement.where(col(EventRecord.timestamp) >= since)
        with self._read() as session:
            return session.exec(statement).one()


def store_events(session: Session, events: Sequence[NewEvent]) -> list[bool]:
    """`EventsAggregate.append_events` inside the caller's write transaction."""
    received = utcnow()
    stored = _stored_message_ids(session, [item.message_id for item in events])
    # An erased user's later events are dropped as if seen before (`journeys.store.privacy`).
    admitted = admitted_events(session, events)
    stored.update(e.message_id for e, ok in zip(events, admitted, strict=True) if not ok)
    # Every new event's profile: each is locked or created below in any case.
    profiles = profiles_of(
        session, [item.user_id for item in events if item.message_id not in stored]
    )
    new: list[bool] = []
    for item in events:
        if item.message_id in stored:
            new.append(False)
            continue
        stored.add(item.message_id)
        new.append(True)
        if item.merge_from is not None:
            merge_profile(session, profiles, item.merge_from, item.user_id)
        properties = copy.deepcopy(item.properties)
        profile = profile_of(session, profiles, item.user_id)
        if item.traits or item.operations:
            traits = {**profile.traits, **copy.deepcopy(item.traits)}
            if item.operations:
                traits, changed = apply_operations(traits, item.operations)
                properties.update(changed)
            profile.traits = traits
            profile.updated_at = received
            session.add(profile)
        session.add(
            EventRecord(
                message_id=item.message_id,
                user_id=item.user_id,
                type=item.type,
                name=item.name,
                properties=properties,
                timestamp=item.timestamp,
                received_at=item.received_at or received,
                partition_key=partition_key(item.user_id),
            )
        )
    if any(new) and session.get_bind().dialect.name == "postgresql":
        # Delivered at commit, to every router listening (OutboxBell), whatever its replica.
        session.connection().execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return new


def _stored_message_ids(session: Session, message_ids: list[str]) -> set[str]:
    """Which of these message ids are stored already."""
    unique = list(dict.fromkeys(message_ids))
    found: set[str] = set()
    # In chunks, to stay below the database's limit on bound parameters.
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        statement = select(EventRecord.message_id).where(col(EventRecord.message_id).in_(chunk))
        found.update(session.exec(statement))
    return found

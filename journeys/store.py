"""The app store: journeys and their versions, profiles, events, segments, templates,
deliveries, enrollments and settings, as SQLModel tables behind one synchronous `Store`.

SQLite (embedded, the default) and PostgreSQL are supported; opening a store brings its schema
to the newest migration (`journeys.migrations`). Every public method is one short
transaction, so activities can call the store from a thread pool. Timestamps are aware UTC
datetimes in Python; columns hold naive UTC (`UTCDateTime`), which both databases compare
correctly.

Writes that must not happen twice (an event's `message_id`, a delivery's idempotency key, an
enrollment id) rely on unique constraints rather than on a look-up first, so two racing callers
cannot both win.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Engine,
    Index,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString, Field, Session, SQLModel, col, select, update

from journeys.contracts import (
    EndStatus,
    EnrollInput,
    EnrollmentStatus,
    EventType,
    FinalDeliveryStatus,
    ProgressInput,
)
from journeys.errors import Conflict, NotFound
from journeys.migrations import Migration, upgrade
from journeys.settings import Settings

JourneyStatus = Literal["draft", "live", "paused", "archived"]
DeliveryStatus = Literal["pending", "sending", "sent", "skipped", "failed"]
"""pending (recorded, not yet handed to a provider) → sending (claimed: being handed over) →
sent; or → skipped / failed. A send a provider refused cleanly goes back to pending."""

DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "sending", "sent", "skipped", "failed")
UNFINISHED: tuple[DeliveryStatus, ...] = ("pending", "sending")
IN_APP = "in_app"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as naive UTC (SQLite has no time zones).

    Naive datetimes are refused rather than guessed at: they are a bug in the caller.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware (UTC) datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark a stored naive UTC datetime as UTC."""
        return None if value is None else value.replace(tzinfo=UTC)


def _time_column(*, nullable: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable)


def _json_column(*, nullable: bool = False) -> Any:
    return Column(JSON, nullable=nullable)


# --- tables ------------------------------------------------------------------------------------


class JourneyRecord(SQLModel, table=True):
    """A journey: its editable draft document, status and latest published version."""

    __tablename__ = "journeys"

    id: str = Field(primary_key=True)
    draft: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    status: JourneyStatus = Field(default="draft", sa_type=AutoString)
    version: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class JourneyVersionRecord(SQLModel, table=True):
    """A published, immutable copy of a journey's draft."""

    __tablename__ = "journey_versions"

    journey_id: str = Field(primary_key=True, foreign_key="journeys.id")
    version: int = Field(primary_key=True)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    published_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class UserRecord(SQLModel, table=True):
    """A user profile: traits by name."""

    __tablename__ = "users"

    user_id: str = Field(primary_key=True)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class EventRecord(SQLModel, table=True):
    """An ingested event; `name` is the track event or the page/screen name (None for identify)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_name_timestamp", "user_id", "name", "timestamp"),
        Index("ix_events_routed_at", "routed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True)
    user_id: str
    type: EventType = Field(sa_type=AutoString)
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    timestamp: datetime = Field(sa_column=_time_column())
    received_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    routed_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    """None until the event reached every journey that cares: the events table is the outbox."""


class SegmentRecord(SQLModel, table=True):
    """A named condition over users."""

    __tablename__ = "segments"

    id: str = Field(primary_key=True)
    name: str
    condition: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class TemplateRecord(SQLModel, table=True):
    """Stored message content for one channel."""

    __tablename__ = "templates"

    id: str = Field(primary_key=True)
    channel: str
    content: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class DeliveryRecord(SQLModel, table=True):
    """One message to one user from one node visit; `idempotency_key` makes retries safe."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_journey_node_status", "journey_id", "node_id", "status"),
        Index("ix_deliveries_user_sent_at", "user_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    journey_id: str
    version: int
    node_id: str
    user_id: str = Field(index=True)
    channel: str
    status: DeliveryStatus = Field(default="pending", sa_type=AutoString)
    reason: str | None = None
    content: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    variant: str | None = None
    transactional: bool = False
    provider: str | None = None
    """Who took the message: "smtp", "push", "sms", "webhook", "outbox" or "inbox"."""
    provider_message_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    sent_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    read_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))

    @property
    def finished(self) -> bool:
        """Whether the delivery has its outcome (sent, skipped or failed)."""
        return self.status not in UNFINISHED


class EnrollmentRecord(SQLModel, table=True):
    """One user's run through one journey version."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_journey_status", "journey_id", "status"),
        Index("ix_enrollments_journey_current_node", "journey_id", "current_node"),
    )

    id: str = Field(primary_key=True)
    user_id: str = Field(index=True)
    journey_id: str
    version: int
    workflow_id: str
    status: EnrollmentStatus = Field(default="active", sa_type=AutoString)
    current_node: str | None = None
    variant: str | None = None
    entered_at: datetime = Field(sa_column=_time_column())
    ended_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    converted_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))


class NodeVisitRecord(SQLModel, table=True):
    """That an enrollment reached a node (at most once: journeys are acyclic)."""

    __tablename__ = "node_visits"
    __table_args__ = (Index("ix_node_visits_journey_node", "journey_id", "node_id"),)

    enrollment_id: str = Field(primary_key=True, foreign_key="enrollments.id")
    node_id: str = Field(primary_key=True)
    journey_id: str
    reached_at: datetime = Field(sa_column=_time_column())


class ExperimentDecisionRecord(SQLModel, table=True):
    """Where an experiment node's winner rule stands: looks made so far, and the winner once
    one is picked (then final)."""

    __tablename__ = "experiment_decisions"

    journey_id: str = Field(primary_key=True)
    node_id: str = Field(primary_key=True)
    looks: int = 0
    winner: str | None = None
    p_value: float | None = None
    """The p-value at the latest look."""
    decided_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class PredictionRunRecord(SQLModel, table=True):
    """One run of the conversion model: its report (`journeys.contracts.PredictionReport`)."""

    __tablename__ = "prediction_runs"

    id: int | None = Field(default=None, primary_key=True)
    trained_at: datetime = Field(sa_column=_time_column())
    report: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class SettingRecord(SQLModel, table=True):
    """One global setting (e.g. `frequency_caps`, `timezone`) as JSON."""

    __tablename__ = "settings"

    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=_json_column(nullable=True))


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to store with `Store.append_events`, and what it does to profiles.

    Identify events carry their traits twice: in `properties` (so the events table alone says
    what each identify changed) and in `traits` (merged into the profile).
    """

    message_id: str
    user_id: str
    type: EventType
    name: str | None
    properties: dict[str, Any]
    timestamp: datetime
    received_at: datetime | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    """Merged into the profile of `user_id` (identify)."""
    merge_from: str | None = None
    """A profile to merge into `user_id` first (an anonymous visitor who identified)."""


@dataclass(frozen=True)
class CapWindow:
    """A frequency cap as `Store.claim_delivery` applies it: at most `max` non-transactional
    messages (on `channel`, or on any) sent since `since`; `label` names it in the reason."""

    max: int
    since: datetime
    channel: str | None
    label: str


# --- engine ------------------------------------------------------------------------------------

_WRITE_OPTION = "journeys_write"
_Record = TypeVar("_Record", JourneyRecord, EnrollmentRecord)
_T = TypeVar("_T")
_Catalog = TypeVar("_Catalog", SegmentRecord, TemplateRecord)
_CAP_LOCKS = int.from_bytes(b"cap!")
"""PostgreSQL advisory locks (this number, hash of a user id) serialise a user's capped claims."""


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control from pysqlite so `_sqlite_begin` decides how each one starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for a concurrent writer:
    # SQLite fails it at once with SQLITE_BUSY. Write transactions therefore take the write
    # lock up front, where busy_timeout applies; read transactions stay deferred so WAL
    # readers never block.
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database in (None, "", ":memory:"):
        # One shared connection, or every pooled connection would see its own empty database.
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        if not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


# --- the store ---------------------------------------------------------------------------------


class Store:
    """The app store over one database URL (SQLite file, in-memory SQLite, or PostgreSQL).

    Opening it migrates the database to the newest revision (`migration` says what that
    did); it raises `ConfigurationError` when the database cannot be reached or migrated.
    Returned records are detached copies: reading their attributes is safe after the method
    returns, changing them changes nothing stored. An in-memory SQLite store shares one
    connection and is for single-threaded tests only.
    """

    def __init__(self, url: str) -> None:
        self._engine = _create_engine(url)
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})
        # SQLite has one writer at a time. Queueing this process's writers on a lock is far
        # cheaper than letting them spin in SQLite's busy handler; other processes still wait
        # through BEGIN IMMEDIATE and busy_timeout.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self._engine.dialect.name == "sqlite" else nullcontext()
        )
        try:
            self.migration: Migration = upgrade(self._writer)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store at `settings.database_url`."""
        return cls(settings.database_url)

    @property
    def engine(self) -> Engine:
        """The underlying SQLAlchemy engine."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    # --- journeys ------------------------------------------------------------------------------

    def save_draft(self, journey_id: str, document: dict[str, Any]) -> JourneyRecord:
        """Create the journey (status "draft") or replace its draft, keeping its status."""
        draft = copy.deepcopy(document)
        try:
            with self._write() as session:
                journey = session.get(JourneyRecord, journey_id, with_for_update=True)
                if journey is None:
                    journey = JourneyRecord(id=journey_id, draft=draft)
                else:
                    journey.draft = draft
                    journey.updated_at = utcnow()
                session.add(journey)
                return journey
        except IntegrityError:
            # Created concurrently (PostgreSQL cannot lock a row that does not exist yet).
            with self._write() as session:
                journey = _get_or_raise(session, JourneyRecord, journey_id, lock=True)
                journey.draft = draft
                journey.updated_at = utcnow()
                session.add(journey)
                return journey

    def get_journey(self, journey_id: str) -> JourneyRecord | None:
        """The journey, or None."""
        with self._read() as session:
            return session.get(JourneyRecord, journey_id)

    def list_journeys(self) -> list[JourneyRecord]:
        """Every journey, by id."""
        with self._read() as session:
            return list(session.exec(select(JourneyRecord).order_by(col(JourneyRecord.id))))

    def publish(self, journey_id: str, validated: dict[str, Any] | None = None) -> int:
        """Copy the draft into a new immutable version and return its number.

        The journey becomes "live", except that a paused journey stays paused.
        Raises NotFound for an unknown journey and Conflict for an archived one. With
        `validated` (the draft the caller checked), raises Conflict if the draft has changed
        since, so only a checked document is ever published.
        """
        with self._write() as session:
            journey = _get_or_raise(session, JourneyRecord, journey_id, lock=True)
            if journey.status == "archived":
                raise Conflict(f"journey {journey_id!r} is archived")
            if validated is not None and journey.draft != validated:
                raise Conflict(f"the draft of {journey_id!r} changed while publishing: try again")
            version = (journey.version or 0) + 1
            now = utcnow()
            session.add(
                JourneyVersionRecord(
                    journey_id=journey_id,
                    version=version,
                    definition=copy.deepcopy(journey.draft),
                    published_at=now,
                )
            )
            journey.version = version
            if journey.status != "paused":
                journey.status = "live"
            journey.updated_at = now
            session.add(journey)
            return version

    def set_status(self, journey_id: str, status: JourneyStatus) -> JourneyRecord:
        """Change the journey's status.

        Raises NotFound for an unknown journey, Conflict to leave "archived" (it is final) or
        to make a journey "live" that has never been published.
        """
        with self._write() as session:
            journey = _get_or_raise(session, JourneyRecord, journey_id, lock=True)
            if journey.status == "archived" and status != "archived":
                raise Conflict(f"journey {journey_id!r} is archived")
            if status == "live" and journey.version is None:
                raise Conflict(f"journey {journey_id!r} has never been published")
            if journey.status != status:
                journey.status = status
                journey.updated_at = utcnow()
                session.add(journey)
            return journey

    def get_version(self, journey_id: str, version: int) -> JourneyVersionRecord | None:
        """One published version, or None."""
        with self._read() as session:
            return session.get(JourneyVersionRecord, (journey_id, version))

    def list_versions(self, journey_id: str) -> list[JourneyVersionRecord]:
        """Every published version of the journey, oldest first."""
        statement = (
            select(JourneyVersionRecord)
            .where(JourneyVersionRecord.journey_id == journey_id)
            .order_by(col(JourneyVersionRecord.version))
        )
        with self._read() as session:
            return list(session.exec(statement))

    def live_versions(self) -> list[JourneyVersionRecord]:
        """The latest version of every live journey, by journey id."""
        statement = (
            select(JourneyVersionRecord)
            .join(
                JourneyRecord,
                (col(JourneyRecord.id) == col(JourneyVersionRecord.journey_id))
                & (col(JourneyRecord.version) == col(JourneyVersionRecord.version)),
            )
            .where(JourneyRecord.status == "live")
            .order_by(col(JourneyVersionRecord.journey_id))
        )
        with self._read() as session:
            return list(session.exec(statement))

    # --- users ---------------------------------------------------------------------------------

    def get_user(self, user_id: str) -> UserRecord | None:
        """The profile, or None."""
        with self._read() as session:
            return session.get(UserRecord, user_id)

    def merge_traits(self, user_id: str, traits: dict[str, Any]) -> dict[str, Any]:
        """Shallow-merge `traits` into the profile (created if needed); the merged traits."""
        return self.update_traits(user_id, traits, [])

    def update_traits(self, user_id: str, set: dict[str, Any], unset: list[str]) -> dict[str, Any]:
        """Set then remove traits (creating the profile if needed); the resulting traits."""
        return _once_more_on_conflict(lambda: self._update_traits(user_id, set, unset))

    def _update_traits(
        self, user_id: str, values: dict[str, Any], unset: list[str]
    ) -> dict[str, Any]:
        with self._write() as session:
            user = session.get(UserRecord, user_id, with_for_update=True)
            if user is None:
                user = UserRecord(user_id=user_id)
            merged = {**user.traits, **copy.deepcopy(values)}
            for name in unset:
                merged.pop(name, None)
            # A new dict, not an in-place change: plain JSON columns do not track mutation.
            user.traits = merged
            user.updated_at = utcnow()
            session.add(user)
            return dict(merged)

    def remove_push_tokens(self, user_id: str, tokens: Sequence[str]) -> dict[str, Any]:
        """Drop `tokens` from the profile's `push_tokens` (a gateway said they are gone),
        keeping any added meanwhile; the resulting traits."""
        gone = set(tokens)
        with self._write() as session:
            user = session.get(UserRecord, user_id, with_for_update=True)
            if user is None:
                return {}
            current = user.traits.get("push_tokens")
            if isinstance(current, list) and gone.intersection(current):
                user.traits = {**user.traits, "push_tokens": [t for t in current if t not in gone]}
                user.updated_at = utcnow()
                session.add(user)
            return dict(user.traits)

    # --- events --------------------------------------------------------------------------------

    def append_event(
        self,
        *,
        message_id: str,
        user_id: str,
        type: EventType,
        name: str | None,
        properties: dict[str, Any],
        timestamp: datetime,
        received_at: datetime | None = None,
    ) -> bool:
        """Store an event; False (and nothing written) when `message_id` is already stored."""
        record = EventRecord(
            message_id=message_id,
            user_id=user_id,
            type=type,
            name=name,
            properties=copy.deepcopy(properties),
            timestamp=timestamp,
            received_at=received_at or utcnow(),
        )
        try:
            with self._write() as session:
                session.add(record)
        except IntegrityError:
            if self._event_exists(message_id):
                return False
            raise
        return True

    def unrouted_events(self, limit: int = 500) -> list[EventRecord]:
        """Events stored but not yet routed to journeys, oldest first."""
        statement = (
            select(EventRecord)
            .where(col(EventRecord.routed_at).is_(None))
            .order_by(col(EventRecord.id))
            .limit(limit)
        )
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

    def _event_exists(self, message_id: str) -> bool:
        statement = select(EventRecord.id).where(EventRecord.message_id == message_id)
        with self._read() as session:
            return session.exec(statement).first() is not None

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

    # --- ingest ------------------------------------------------------------------------------

    def append_events(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store many events in one transaction; for each, whether it was new.

        An event whose `message_id` is already stored, or appears earlier in `events`, is
        skipped (not an error) and has no effect at all. For each new event, in order:
        `merge_from` is merged into `user_id` (as `merge_profiles` does), the event is stored,
        the profile of `user_id` is created if need be and `traits` are merged into it.
        All or nothing: when anything fails, nothing is written.
        """
        if not events:
            return []
        return _once_more_on_conflict(lambda: self._append_events(events))

    def _append_events(self, events: Sequence[NewEvent]) -> list[bool]:
        received = utcnow()
        with self._write() as session:
            stored = _stored_message_ids(session, [item.message_id for item in events])
            # Every new event's profile: each is locked or created below in any case.
            profiles = _profiles_of(
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
                    _merge_profile(session, profiles, item.merge_from, item.user_id)
                session.add(
                    EventRecord(
                        message_id=item.message_id,
                        user_id=item.user_id,
                        type=item.type,
                        name=item.name,
                        properties=copy.deepcopy(item.properties),
                        timestamp=item.timestamp,
                        received_at=item.received_at or received,
                    )
                )
                profile = _profile(session, profiles, item.user_id)
                if item.traits:
                    profile.traits = {**profile.traits, **copy.deepcopy(item.traits)}
                    profile.updated_at = received
                    session.add(profile)
            return new

    def merge_profiles(self, from_user_id: str, into_user_id: str) -> bool:
        """Merge one profile into another: an anonymous visitor (`anon:{anonymousId}`) who
        identified as `into_user_id`.

        Moves every event, merges the traits (the target's own win; the target profile is
        created if need be) and deletes the merged profile. Enrollments and deliveries stay
        where they are: they belong to runs under the old id. Idempotent; returns whether
        there was a profile to merge.
        """
        return _once_more_on_conflict(lambda: self._merge_profiles(from_user_id, into_user_id))

    def _merge_profiles(self, from_user_id: str, into_user_id: str) -> bool:
        with self._write() as session:
            return _merge_profile(session, {}, from_user_id, into_user_id)

    def iter_users(self, page_size: int = 500) -> Iterator[UserRecord]:
        """Every profile by user id, read a page at a time (each page one short transaction),
        so a long walk never holds a transaction open."""
        after: str | None = None
        while True:
            statement = select(UserRecord).order_by(col(UserRecord.user_id)).limit(page_size)
            if after is not None:
                statement = statement.where(col(UserRecord.user_id) > after)
            with self._read() as session:
                page = list(session.exec(statement))
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].user_id

    def variant_counts(self, journey_id: str, node_id: str) -> dict[str, dict[str, int]]:
        """Per variant, the enrollments of the journey that reached `node_id` (an experiment)
        with that variant: `users`, and `conversions` among them.

        An enrollment records one variant, so a journey with several experiment nodes counts
        each enrollment under its latest variant.
        """
        statement = (
            select(
                EnrollmentRecord.variant,
                func.count(),
                func.count(col(EnrollmentRecord.converted_at)),
            )
            .join(NodeVisitRecord, col(NodeVisitRecord.enrollment_id) == col(EnrollmentRecord.id))
            .where(
                NodeVisitRecord.journey_id == journey_id,
                NodeVisitRecord.node_id == node_id,
                col(EnrollmentRecord.variant).is_not(None),
            )
            .group_by(col(EnrollmentRecord.variant))
        )
        counts: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for variant, users, conversions in session.exec(statement):
                if variant is not None:
                    counts[variant] = {"users": users, "conversions": conversions}
        return counts

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (health checks)."""
        with self._read() as session:
            session.connection().execute(text("SELECT 1")).one()

    # --- segments and templates ------------------------------------------------------------------

    def put_segment(self, segment_id: str, name: str, condition: dict[str, Any]) -> SegmentRecord:
        """Create or replace a segment."""
        record = SegmentRecord(
            id=segment_id, name=name, condition=copy.deepcopy(condition), updated_at=utcnow()
        )
        return _once_more_on_conflict(lambda: self._merge(record))

    def get_segment(self, segment_id: str) -> SegmentRecord | None:
        """The segment, or None."""
        with self._read() as session:
            return session.get(SegmentRecord, segment_id)

    def delete_segment(self, segment_id: str) -> bool:
        """Delete the segment; whether it existed."""
        return self._delete(SegmentRecord, segment_id)

    def list_segments(self) -> list[SegmentRecord]:
        """Every segment, by id."""
        with self._read() as session:
            return list(session.exec(select(SegmentRecord).order_by(col(SegmentRecord.id))))

    def put_template(
        self, template_id: str, channel: str, content: dict[str, Any]
    ) -> TemplateRecord:
        """Create or replace a template."""
        record = TemplateRecord(
            id=template_id, channel=channel, content=copy.deepcopy(content), updated_at=utcnow()
        )
        return _once_more_on_conflict(lambda: self._merge(record))

    def _merge(self, record: _Catalog) -> _Catalog:
        with self._write() as session:
            return session.merge(record)

    def get_template(self, template_id: str) -> TemplateRecord | None:
        """The template, or None."""
        with self._read() as session:
            return session.get(TemplateRecord, template_id)

    def delete_template(self, template_id: str) -> bool:
        """Delete the template; whether it existed."""
        return self._delete(TemplateRecord, template_id)

    def list_templates(self) -> list[TemplateRecord]:
        """Every template, by id."""
        with self._read() as session:
            return list(session.exec(select(TemplateRecord).order_by(col(TemplateRecord.id))))

    def _delete(self, model: type[SegmentRecord] | type[TemplateRecord], key: str) -> bool:
        with self._write() as session:
            record = session.get(model, key)
            if record is None:
                return False
            session.delete(record)
            return True

    # --- deliveries ----------------------------------------------------------------------------

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

    # --- enrollments ---------------------------------------------------------------------------

    def enroll(
        self,
        *,
        enrollment_id: str,
        user_id: str,
        journey_id: str,
        version: int,
        workflow_id: str,
        entered_at: datetime,
        variant: str | None = None,
    ) -> EnrollmentRecord:
        """Record that a user entered a journey; an existing enrollment id is returned as is."""
        entered = EnrollInput(
            enrollment_id=enrollment_id,
            user_id=user_id,
            journey_id=journey_id,
            version=version,
            workflow_id=workflow_id,
            entered_at=entered_at,
        )
        return _once_more_on_conflict(lambda: self._enroll(entered, variant))

    def _enroll(self, entered: EnrollInput, variant: str | None) -> EnrollmentRecord:
        with self._write() as session:
            return _enrollment_of(session, entered, variant=variant)

    def move(self, enrollment_id: str, node_id: str, at: datetime) -> EnrollmentRecord:
        """Record that the enrollment reached `node_id` (once; repeats change nothing).

        A finished enrollment keeps `current_node` None. Raises NotFound for an unknown id.
        """
        with self._write() as session:
            enrollment = _get_or_raise(session, EnrollmentRecord, enrollment_id, lock=True)
            first = session.get(NodeVisitRecord, (enrollment_id, node_id)) is None
            _reach(session, enrollment, node_id, at, first=first)
            return enrollment

    def finish(self, enrollment_id: str, status: EndStatus, at: datetime) -> EnrollmentRecord:
        """End the enrollment; an already finished one is returned unchanged.

        Raises NotFound for an unknown id.
        """
        with self._write() as session:
            enrollment = _get_or_raise(session, EnrollmentRecord, enrollment_id, lock=True)
            _finish(session, enrollment, status, at)
            return enrollment

    def record_steps(
        self, steps: Sequence[ProgressInput], *, enrollment: EnrollInput | None = None
    ) -> None:
        """Record an enrollment (unless recorded already) and then its steps, in order, in one
        transaction. Recording the same again changes nothing, so a retry is harmless.

        Raises NotFound for a step of an enrollment that is neither recorded nor `enrollment`.
        """
        _once_more_on_conflict(lambda: self._record_steps(steps, enrollment))

    def _record_steps(self, steps: Sequence[ProgressInput], enrollment: EnrollInput | None) -> None:
        with self._write() as session:
            records: dict[str, EnrollmentRecord] = {}
            if enrollment is not None:
                records[enrollment.enrollment_id] = _enrollment_of(session, enrollment)
            for step in steps:
                if step.enrollment_id not in records:
                    records[step.enrollment_id] = _get_or_raise(
                        session, EnrollmentRecord, step.enrollment_id, lock=True
                    )
            # The visits recorded already, in one query rather than one per step.
            reached = {(step.enrollment_id, step.node_id) for step in steps if step.node_id}
            visited: set[tuple[str, str]] = set()
            if reached:
                statement = select(NodeVisitRecord.enrollment_id, NodeVisitRecord.node_id).where(
                    col(NodeVisitRecord.enrollment_id).in_({e for e, _ in reached}),
                    col(NodeVisitRecord.node_id).in_({n for _, n in reached}),
                )
                visited = {(e, n) for e, n in session.exec(statement)}
            for step in steps:
                record = records[step.enrollment_id]
                if step.node_id is not None:
                    first = (step.enrollment_id, step.node_id) not in visited
                    _reach(session, record, step.node_id, step.at, first=first)
                    visited.add((step.enrollment_id, step.node_id))
                if step.variant is not None:
                    record.variant = step.variant
                if step.converted and record.converted_at is None:
                    record.converted_at = step.at
                if step.ended is not None:
                    _finish(session, record, step.ended, step.at)
                session.add(record)

    def set_variant(self, enrollment_id: str, variant: str | None) -> EnrollmentRecord:
        """Record the experiment variant the enrollment is in. Raises NotFound."""
        with self._write() as session:
            enrollment = _get_or_raise(session, EnrollmentRecord, enrollment_id, lock=True)
            enrollment.variant = variant
            session.add(enrollment)
            return enrollment

    def mark_converted(self, enrollment_id: str, at: datetime) -> bool:
        """Record the conversion unless already recorded; whether this call recorded it.

        Raises NotFound for an unknown id.
        """
        statement = (
            update(EnrollmentRecord)
            .where(
                col(EnrollmentRecord.id) == enrollment_id,
                col(EnrollmentRecord.converted_at).is_(None),
            )
            .values(converted_at=at)
        )
        with self._write() as session:
            # One conditional UPDATE, so two racing conversions cannot both report True.
            changed = session.exec(statement).rowcount > 0
            if not changed and session.get(EnrollmentRecord, enrollment_id) is None:
                raise NotFound(f"no enrollment {enrollment_id!r}")
            return changed

    def get_enrollment(self, enrollment_id: str) -> EnrollmentRecord | None:
        """The enrollment, or None."""
        with self._read() as session:
            return session.get(EnrollmentRecord, enrollment_id)

    def enrollments_for_user(self, user_id: str) -> list[EnrollmentRecord]:
        """The user's enrollments in every journey, newest first."""
        statement = (
            select(EnrollmentRecord)
            .where(EnrollmentRecord.user_id == user_id)
            .order_by(col(EnrollmentRecord.entered_at).desc(), col(EnrollmentRecord.id).desc())
        )
        with self._read() as session:
            return list(session.exec(statement))

    def last_enrollment(self, journey_id: str, user_id: str) -> EnrollmentRecord | None:
        """The user's most recent enrollment in the journey, or None."""
        statement = (
            select(EnrollmentRecord)
            .where(EnrollmentRecord.journey_id == journey_id, EnrollmentRecord.user_id == user_id)
            .order_by(col(EnrollmentRecord.entered_at).desc(), col(EnrollmentRecord.id).desc())
            .limit(1)
        )
        with self._read() as session:
            return session.exec(statement).first()

    def active_workflow_ids(self, journey_id: str) -> list[str]:
        """The workflow ids of the journey's active enrollments."""
        statement = select(EnrollmentRecord.workflow_id).where(
            EnrollmentRecord.journey_id == journey_id, EnrollmentRecord.status == "active"
        )
        with self._read() as session:
            return list(session.exec(statement))

    def journey_counts(self, journey_id: str) -> dict[str, int]:
        """Enrollments of the journey: entered, active, completed, exited and converted."""
        statement = (
            select(
                EnrollmentRecord.status,
                func.count(),
                func.count(col(EnrollmentRecord.converted_at)),
            )
            .where(EnrollmentRecord.journey_id == journey_id)
            .group_by(col(EnrollmentRecord.status))
        )
        counts = {"entered": 0, "active": 0, "completed": 0, "exited": 0, "converted": 0}
        with self._read() as session:
            for status, enrolled, converted in session.exec(statement):
                counts[status] = enrolled
                counts["entered"] += enrolled
                counts["converted"] += converted
        return counts

    def node_counts(self, journey_id: str) -> dict[str, dict[str, int]]:
        """Per node of the journey: how many enrollments reached it and how many wait there."""
        reached = (
            select(NodeVisitRecord.node_id, func.count())
            .where(NodeVisitRecord.journey_id == journey_id)
            .group_by(col(NodeVisitRecord.node_id))
        )
        waiting = (
            select(EnrollmentRecord.current_node, func.count())
            .where(
                EnrollmentRecord.journey_id == journey_id,
                EnrollmentRecord.status == "active",
                col(EnrollmentRecord.current_node).is_not(None),
            )
            .group_by(col(EnrollmentRecord.current_node))
        )
        counts: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for node_id, count in session.exec(reached):
                counts.setdefault(node_id, {"reached": 0, "waiting": 0})["reached"] = count
            for current_node, count in session.exec(waiting):
                if current_node is not None:
                    counts.setdefault(current_node, {"reached": 0, "waiting": 0})["waiting"] = count
        return counts

    # --- experiments and predictions -----------------------------------------------------------

    def experiment_decision(self, journey_id: str, node_id: str) -> ExperimentDecisionRecord:
        """Where the experiment's winner rule stands (no looks yet when never recorded)."""
        with self._read() as session:
            record = session.get(ExperimentDecisionRecord, (journey_id, node_id))
        return record or ExperimentDecisionRecord(journey_id=journey_id, node_id=node_id)

    def record_experiment_look(
        self,
        journey_id: str,
        node_id: str,
        *,
        after_looks: int,
        looks: int,
        winner: str | None,
        p_value: float | None,
    ) -> ExperimentDecisionRecord:
        """Record a look made when `after_looks` looks were done, unless another caller
        recorded one since (then nothing changes); the decision as it stands."""

        def record() -> ExperimentDecisionRecord:
            with self._write() as session:
                key = (journey_id, node_id)
                stored = session.get(ExperimentDecisionRecord, key, with_for_update=True)
                decision = stored or ExperimentDecisionRecord(
                    journey_id=journey_id, node_id=node_id
                )
                if decision.looks != after_looks or decision.winner is not None:
                    return decision
                now = utcnow()
                decision.looks, decision.p_value, decision.updated_at = looks, p_value, now
                if winner is not None:
                    decision.winner, decision.decided_at = winner, now
                session.add(decision)
                return decision

        return _once_more_on_conflict(record)

    def record_prediction_run(self, report: dict[str, Any]) -> None:
        """Keep a prediction run's report (JSON, with its `trained_at`)."""
        trained_at = datetime.fromisoformat(report["trained_at"])
        with self._write() as session:
            session.add(PredictionRunRecord(trained_at=trained_at, report=copy.deepcopy(report)))

    def prediction_runs(self, limit: int) -> list[dict[str, Any]]:
        """The latest prediction reports, newest first."""
        statement = (
            select(PredictionRunRecord)
            .order_by(
                col(PredictionRunRecord.trained_at).desc(), col(PredictionRunRecord.id).desc()
            )
            .limit(limit)
        )
        with self._read() as session:
            return [record.report for record in session.exec(statement)]

    # --- settings ------------------------------------------------------------------------------

    def get_settings(self) -> dict[str, Any]:
        """Every global setting by key."""
        with self._read() as session:
            return {record.key: record.value for record in session.exec(select(SettingRecord))}

    def put_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the given settings (others are kept); every setting by key."""
        return _once_more_on_conflict(lambda: self._put_settings(values))

    def _put_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._write() as session:
            for key, value in values.items():
                session.merge(SettingRecord(key=key, value=copy.deepcopy(value)))
            session.flush()
            return {record.key: record.value for record in session.exec(select(SettingRecord))}


def _once_more_on_conflict(operation: Callable[[], _T]) -> _T:
    """Run a write that looks a row up and inserts it when missing; run it once more when it
    lost the race to insert that key (IntegrityError): the retry finds the winner's row.

    SQLite never loses that race (writers are serialised from the start of a transaction);
    PostgreSQL cannot lock a row that does not exist yet, so two callers may both insert.
    """
    try:
        return operation()
    except IntegrityError:
        return operation()


def _enrollment_of(
    session: Session, enrollment: EnrollInput, *, variant: str | None = None
) -> EnrollmentRecord:
    """The enrollment's record, locked, or a new one (in `variant`) if it has none yet."""
    record = session.get(EnrollmentRecord, enrollment.enrollment_id, with_for_update=True)
    if record is None:
        record = EnrollmentRecord(
            id=enrollment.enrollment_id,
            user_id=enrollment.user_id,
            journey_id=enrollment.journey_id,
            version=enrollment.version,
            workflow_id=enrollment.workflow_id,
            entered_at=enrollment.entered_at,
            variant=variant,
        )
        session.add(record)
        session.flush()  # before its visits, which refer to it
    return record


def _reach(
    session: Session, enrollment: EnrollmentRecord, node_id: str, at: datetime, *, first: bool
) -> None:
    """The enrollment reached a node: a `first` visit there is recorded, and an active
    enrollment is now at that node."""
    if first:
        session.add(
            NodeVisitRecord(
                enrollment_id=enrollment.id,
                node_id=node_id,
                journey_id=enrollment.journey_id,
                reached_at=at,
            )
        )
    if enrollment.status == "active" and enrollment.current_node != node_id:
        enrollment.current_node = node_id
        session.add(enrollment)


def _finish(
    session: Session, enrollment: EnrollmentRecord, status: EndStatus, at: datetime
) -> None:
    """End an active enrollment; a finished one keeps how it ended."""
    if enrollment.status == "active":
        enrollment.status = status
        enrollment.ended_at = at
        enrollment.current_node = None
        session.add(enrollment)


def _get_or_raise(
    session: Session, model: type[_Record], key: str, *, lock: bool = False
) -> _Record:
    record = session.get(model, key, with_for_update=lock)
    if record is None:
        what = "journey" if model is JourneyRecord else "enrollment"
        raise NotFound(f"no {what} {key!r}")
    return record


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


def _profiles_of(session: Session, user_ids: list[str]) -> dict[str, UserRecord]:
    """The profiles of these users by user id, locked, and created where missing: one query
    (per 500 users) for a whole batch instead of one per user."""
    unique = list(dict.fromkeys(user_ids))
    profiles: dict[str, UserRecord] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        statement = select(UserRecord).where(col(UserRecord.user_id).in_(chunk)).with_for_update()
        profiles.update((profile.user_id, profile) for profile in session.exec(statement))
    for user_id in unique:
        if user_id not in profiles:
            profiles[user_id] = UserRecord(user_id=user_id)
            session.add(profiles[user_id])
    return profiles


def _profile(session: Session, profiles: dict[str, UserRecord], user_id: str) -> UserRecord:
    """The profile (created if need be), cached for the rest of the transaction."""
    profile = profiles.get(user_id)
    if profile is None:
        profile = session.get(UserRecord, user_id, with_for_update=True)
        if profile is None:
            profile = UserRecord(user_id=user_id)
            session.add(profile)
        profiles[user_id] = profile
    return profile


def _merge_profile(
    session: Session, profiles: dict[str, UserRecord], source: str, target: str
) -> bool:
    """Move `source`'s events to `target`, merge its traits under the target's, delete it."""
    if source == target:
        return False
    # Pending events and profiles must be rows before the bulk UPDATE and the delete.
    session.flush()
    session.exec(
        update(EventRecord).where(col(EventRecord.user_id) == source).values(user_id=target)
    )
    old = profiles.pop(source, None) or session.get(UserRecord, source, with_for_update=True)
    if old is None:
        return False
    into = _profile(session, profiles, target)
    into.traits = {**old.traits, **into.traits}
    into.updated_at = utcnow()
    session.add(into)
    session.delete(old)
    session.flush()
    return True

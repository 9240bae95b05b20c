"""What every part of the store shares: the engine (with SQLite's pragmas and transaction
start), the read and write sessions, and the retry of a write that lost a race to insert.

Every public store method is one short transaction (`_read` or `_write`), so activities can
call the store from a thread pool. Returned records are detached copies (`expire_on_commit`
off): reading their attributes is safe after the method returns.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool
from sqlmodel import Session

from journeys.errors import NotFound
from journeys.migrations import Migration, upgrade
from journeys.settings import Settings
from journeys.store.claims import OutboxBell, OutboxClaims, outbox_claims
from journeys.store.records import EnrollmentRecord, JourneyRecord, utcnow

_WRITE_OPTION = "journeys_write"
CONNECTIONS = 10
"""Connections a store keeps open for reuse, unless its process says how many it uses at once."""
OVERFLOW = 10
"""Connections a store may open beyond those it keeps, closed again after their transaction."""
PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may go unused before it is checked (`SELECT 1`) as it
is taken again: one a busy process used a moment ago is taken as it is."""
_RETURNED_AT = "journeys_returned_at"
_Record = TypeVar("_Record", JourneyRecord, EnrollmentRecord)
_T = TypeVar("_T")


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control from pysqlite so `_sqlite_begin` decides how each one starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")  # first: switching to WAL may have to wait
        cursor.execute("PRAGMA journal_mode=WAL")
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


def _create_engine(url: str, connections: int) -> Engine:
    parsed = make_url(url)
    # Every transaction beyond the pool's size opens a connection and closes it after (on
    # PostgreSQL a new backend process each time): the pool keeps as many as its process uses.
    pooled = {"pool_size": connections, "max_overflow": OVERFLOW}
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, **pooled)
        _ping_idle_connections(engine)
        return engine
    database = parsed.database
    if database in (None, "", ":memory:"):
        # One shared connection, or every pooled connection would see its own empty database.
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        if not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pooled)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before it is used again when it went unused for longer than
    `PING_AFTER_IDLE`, as `pool_pre_ping` would before every transaction (one round trip to the
    server more for each): a connection the server closed meanwhile (a restart, a failover)
    fails its check, and the pool replaces it and every connection older, so no transaction
    fails on one."""

    def returned(_dbapi: object, record: ConnectionPoolEntry, *_: object) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def taken(dbapi: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as error:  # whatever the driver raises for a connection that is gone
            raise InvalidatePoolError(f"a pooled connection is gone: {error}") from error

    event.listen(engine, "connect", returned)  # a new connection needs no check
    event.listen(engine, "checkin", returned)
    event.listen(engine, "checkout", taken)


class StoreBase:
    """The engine over one database URL, migrated on opening, and its sessions; the parts of
    the store (`journeys.store.Store`) build on it. It keeps up to `connections` connections
    open for reuse: as many as its process runs transactions at once (a worker's activity
    threads)."""

    def __init__(self, url: str, *, connections: int = CONNECTIONS) -> None:
        if connections < 1:
            raise ValueError(f"a store needs at least one connection, not {connections}")
        self._engine = _create_engine(url, connections)
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})
        # SQLite has one writer at a time. Queueing this process's writers on a lock is far
        # cheaper than letting them spin in SQLite's busy handler; other processes still wait
        # through BEGIN IMMEDIATE and busy_timeout.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self._engine.dialect.name == "sqlite" else nullcontext()
        )
        # Claims under a rate limit queue for one database lock per channel: this process's
        # claimers queue here first, so at most one of them holds a pooled connection while it
        # waits, and the connections stay free for the sends that must finish to free slots.
        self._rate_lock = threading.Lock()
        self.clock: Callable[[], datetime] = utcnow
        """When a message went, as deliveries record it (a simulation sets its engine's)."""
        try:
            self.migration: Migration = upgrade(self._writer)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: Settings, *, connections: int = CONNECTIONS) -> Self:
        """The store at `settings.database_url`, keeping up to `connections` connections."""
        return cls(settings.database_url, connections=connections)

    @property
    def engine(self) -> Engine:
        """The underlying SQLAlchemy engine."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def outbox_claims(self) -> OutboxClaims:
        """A router's claims on the outbox (`journeys.store.claims`)."""
        return outbox_claims(self._engine)

    def outbox_bell(self, ring: Callable[[], None]) -> OutboxBell | None:
        """Call `ring` whenever any process stores events, until the bell is closed: on
        PostgreSQL; None on SQLite, whose one router is woken by its own API."""
        if self._engine.dialect.name != "postgresql":
            return None
        return OutboxBell(self._engine, ring)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session for reads: its transaction (deferred, on SQLite) ends with the block."""
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in one write transaction, committed when the block ends (SQLite: begun
        IMMEDIATE, behind this process's write lock)."""
        with (
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (health checks)."""
        with self._read() as session:
            session.connection().execute(text("SELECT 1")).one()


def once_more_on_conflict(operation: Callable[[], _T]) -> _T:
    """Run a write that looks a row up and inserts it when missing; run it once more when it
    lost the race to insert that key (IntegrityError): the retry finds the winner's row.

    SQLite never loses that race (writers are serialised from the start of a transaction);
    PostgreSQL cannot lock a row that does not exist yet, so two callers may both insert.
    """
    try:
        return operation()
    except IntegrityError:
        return operation()


def get_or_raise(
    session: Session, model: type[_Record], key: str, *, lock: bool = False
) -> _Record:
    """The journey or enrollment `key` (row-locked with `lock`); NotFound when there is none."""
    record = session.get(model, key, with_for_update=lock)
    if record is None:
        what = "journey" if model is JourneyRecord else "enrollment"
        raise NotFound(f"no {what} {key!r}")
    return record

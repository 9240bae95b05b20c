"""Who routes which events: claims on the outbox, so each event is routed by one router.

The outbox (the events table) is split into `partitions` by a hash of the user id
(`partition_key`), so one user's events, which must be routed in order, are always in one
partition. A router routes only the partitions it has claimed:

- PostgreSQL (`PartitionClaims`): session-level advisory locks, held on one dedicated
  connection. Each router also holds a membership lock, so every router can count the others
  in `pg_locks`, and claims its fair share, ceil(partitions / routers): a router that joins
  takes partitions as the others give up what is over their share; a router that dies loses
  its connection, PostgreSQL releases its locks at once, and the others claim them at their
  next rebalance. No lease can expire under a live router, and no clock is involved.
- SQLite (`SoleClaim`): one router at a time, through an exclusive lock on a file beside the
  database (SQLite's writers are one process anyway); a second API process serves HTTP and
  stands by, and takes over when the first process ends, however it ends.

`OutboxBell` (PostgreSQL) rings when any process stores events (`NOTIFY`, sent on commit by
`store_events`), so routers on other replicas route them at once rather than at their next
poll.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final, Literal, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, make_url

log = logging.getLogger(__name__)

ALL: Final = "all"
"""A claim on the whole outbox (the only router)."""
Claim = frozenset[int] | Literal["all"]
"""What a router may route: `ALL`, or these partitions (none: it stands by)."""

NOTIFY_CHANNEL = "journeys_outbox"
_MEMBERS = int.from_bytes(b"rmem")
"""Advisory lock class of router membership (one lock per router, keyed by its backend pid)."""
_PARTITIONS = int.from_bytes(b"rout")
"""Advisory lock class of outbox partitions (one lock per partition)."""


def partition_key(user_id: str) -> int:
    """The stable hash that places a user's events in a partition (`key % partitions`)."""
    return zlib.crc32(user_id.encode()) & 0x7FFFFFFF


class OutboxClaims(Protocol):
    """A router's claim on the outbox."""

    def claim(self, partitions: int) -> Claim:
        """Rebalance, then what this router may route now."""
        ...

    def close(self) -> None:
        """Give every claim up."""
        ...


class PartitionClaims:
    """PostgreSQL: a fair share of the partitions, as advisory locks on one connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._held: set[int] = set()

    def claim(self, partitions: int) -> frozenset[int]:
        """Join (again, after a lost connection), give up what is over the fair share, claim
        free partitions up to it; what is held afterwards."""
        try:
            return frozenset(self._rebalance(partitions))
        except Exception:
            # The connection and every lock on it are gone, or soon will be: route nothing
            # until claims are made again on a new connection.
            log.exception("lost the outbox claims; claiming again at the next rebalance")
            self.close()
            return frozenset()

    def _rebalance(self, partitions: int) -> set[int]:
        connection = self._join()
        routers = connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid::bigint = :members AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"members": _MEMBERS},
        ).scalar_one()
        fair = math.ceil(partitions / max(1, routers))
        over = sorted(self._held, reverse=True)[: max(0, len(self._held) - fair)]
        for partition in {*over, *(p for p in self._held if p >= partitions)}:
            self._lock(connection, "pg_advisory_unlock", partition)
            self._held.discard(partition)
        # Start at a place of our own, so routers that join together try different partitions.
        start = os.getpid() % partitions
        for offset in range(partitions):
            if len(self._held) >= fair:
                break
            partition = (start + offset) % partitions
            if partition not in self._held and self._lock(
                connection, "pg_try_advisory_lock", partition
            ):
                self._held.add(partition)
        return self._held

    def _join(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(
                text("SELECT pg_advisory_lock(:members, pg_backend_pid())"),
                {"members": _MEMBERS},
            )
            self._connection = connection
        return self._connection

    @staticmethod
    def _lock(connection: Connection, function: str, partition: int) -> bool:
        statement = text(f"SELECT {function}(:partitions, :partition)")
        held = connection.execute(statement, {"partitions": _PARTITIONS, "partition": partition})
        return bool(held.scalar_one())

    def close(self) -> None:
        """Close the connection: PostgreSQL releases every lock held on it."""
        self._held.clear()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.invalidate()  # never back to the pool with locks on it
                self._connection.close()
            self._connection = None


class SoleClaim:
    """SQLite: the whole outbox for the one process that holds the router lock file."""

    def __init__(self, database: str | None) -> None:
        if database is not None and database.startswith("file:"):  # a URI: its path, if any
            database = None if "mode=memory" in database else database[5:].split("?")[0]
        in_memory = database in (None, "", ":memory:")
        self._path = None if in_memory else Path(f"{database}.router-lock")
        self._file: IO[bytes] | None = None

    def claim(self, partitions: int) -> Claim:
        """`ALL` while this process holds the lock (taking it if it is free), else nothing."""
        if self._path is None:  # a database only this process can open
            return ALL
        if self._file is None:
            file = self._path.open("ab")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                return frozenset()
            self._file = file
        return ALL

    def close(self) -> None:
        """Release the lock (closing the file does)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def outbox_claims(engine: Engine) -> OutboxClaims:
    """The claims of a router on this database."""
    if engine.dialect.name == "postgresql":
        return PartitionClaims(engine)
    return SoleClaim(make_url(str(engine.url)).database)


class OutboxBell:
    """PostgreSQL: calls `ring` (from a thread of its own) whenever any process has stored
    events, until closed. A lost connection is opened again; meanwhile routers still poll."""

    def __init__(self, engine: Engine, ring: Callable[[], None]) -> None:
        self._engine = engine
        self._ring = ring
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="journeys-outbox-bell")
        self._thread.daemon = True
        self._thread.start()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                raw = self._engine.raw_connection()
            except Exception:
                log.warning("cannot listen for new events; retrying", exc_info=True)
                self._stopping.wait(1.0)
                continue
            try:
                connection = raw.driver_connection
                assert connection is not None
                connection.autocommit = True
                connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not self._stopping.is_set():
                    for _ in connection.notifies(timeout=0.5, stop_after=1):
                        self._ring()
            except Exception:
                if not self._stopping.is_set():
                    log.warning("stopped listening for new events; listening again", exc_info=True)
            finally:
                with contextlib.suppress(Exception):
                    raw.invalidate()  # LISTEN state must not go back to the pool
                    raw.close()

    def close(self) -> None:
        """Stop listening (within half a second)."""
        self._stopping.set()
        self._thread.join(timeout=5)

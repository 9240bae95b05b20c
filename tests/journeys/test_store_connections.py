"""The store keeps the connections its process uses at once, rather than opening one for each
transaction beyond a few (on PostgreSQL a new backend process each time), and checks one before
it is used again only when it went unused for a while (on PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from journeys.store import Store, base

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

AT_ONCE = 12
"""More transactions at once than a store kept before it was told how many."""


@pytest.fixture
def busy_store(store: Store) -> Iterator[Store]:
    """A second store on `store`'s database, told it runs `AT_ONCE` transactions at once."""
    opened = Store(store.engine.url.render_as_string(hide_password=False), connections=AT_ONCE)
    yield opened
    opened.close()


def _opened_while_busy(store: Store, rounds: int) -> int:
    """Connections `store` opened while `AT_ONCE` were in use at once, `rounds` times."""
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(store.engine, "connect", count)
    for _ in range(rounds):
        with ExitStack() as in_use:
            for _ in range(AT_ONCE):
                in_use.enter_context(store.engine.connect()).exec_driver_sql("SELECT 1")
    event.remove(store.engine, "connect", count)
    return opened


def test_connections_used_at_once_are_kept_for_the_next_transactions(busy_store: Store) -> None:
    first = _opened_while_busy(busy_store, 1)
    assert first <= AT_ONCE
    assert _opened_while_busy(busy_store, 3) == 0  # every one of them was kept


def test_a_store_told_nothing_keeps_fewer(store: Store) -> None:
    _opened_while_busy(store, 1)
    assert _opened_while_busy(store, 1) > 0  # those beyond the default were closed again


def test_connections_must_be_at_least_one(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one connection"):
        Store(store.engine.url.render_as_string(hide_password=False), connections=0)


def _server_closes_every_connection(store: Store) -> None:
    """What a restart of the server does to a store's pooled connections."""
    url = store.engine.url
    admin = create_engine(url.set(database="postgres"), poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": url.database},
            )
    finally:
        admin.dispose()


def _pings(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The checks the store makes of its connections, from now on."""
    pinged: list[object] = []
    check = store.engine.dialect.do_ping

    def counted(dbapi: Any) -> bool:
        pinged.append(dbapi)
        return check(dbapi)

    monkeypatch.setattr(store.engine.dialect, "do_ping", counted)
    return pinged


@pytest.mark.store_backends("postgresql")
def test_a_connection_used_again_at_once_is_not_checked_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ping()
    pinged = _pings(store, monkeypatch)
    for _ in range(5):
        store.ping()
    assert pinged == []
    monkeypatch.setattr(base, "PING_AFTER_IDLE", 0.1)
    time.sleep(0.2)
    store.ping()
    assert len(pinged) == 1


@pytest.mark.store_backends("postgresql")
def test_connections_the_server_closed_while_idle_are_replaced(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "PING_AFTER_IDLE", 0.1)
    _opened_while_busy(store, 1)  # several pooled connections, all closed by the server below
    _server_closes_every_connection(store)
    time.sleep(0.2)
    for _ in range(AT_ONCE):
        store.ping()  # none fails
    assert store.get_settings() == {}


@pytest.mark.store_backends("postgresql")
def test_without_the_check_a_closed_connection_fails_its_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the check above prevents (so that test can tell)."""
    monkeypatch.setattr(base, "PING_AFTER_IDLE", 3600.0)
    store.ping()
    _server_closes_every_connection(store)
    with pytest.raises(OperationalError):
        store.ping()

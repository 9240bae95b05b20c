"""The store keeps the connections its process uses at once, rather than opening one for each
transaction beyond a few (on PostgreSQL a new backend process each time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import event

from journeys.store import Store

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

"""Claims on the outbox: routers share PostgreSQL's partitions fairly and take over a dead
router's at once; on SQLite one router at a time holds the whole outbox."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeys.store import NewEvent, Store
from journeys.store.claims import ALL, PartitionClaims, SoleClaim, partition_key

PARTITIONS = 8


@pytest.mark.store_backends("postgresql")
def test_routers_share_the_partitions_and_take_over_a_dead_ones(store: Store) -> None:
    first, second, third = (PartitionClaims(store.engine) for _ in range(3))
    try:
        assert first.claim(PARTITIONS) == frozenset(range(PARTITIONS))  # alone: everything
        assert second.claim(PARTITIONS) == frozenset()  # all taken, for now
        held_by_first = first.claim(PARTITIONS)  # sees two routers: gives up half
        assert len(held_by_first) == PARTITIONS // 2
        held_by_second = second.claim(PARTITIONS)
        assert held_by_second == frozenset(range(PARTITIONS)) - held_by_first

        third.claim(PARTITIONS)
        for _ in range(2):  # a few rebalances settle three routers on 3, 3 and 2
            shares = [claims.claim(PARTITIONS) for claims in (first, second, third)]
        assert sorted(map(len, shares)) == [2, 3, 3]
        assert frozenset().union(*shares) == frozenset(range(PARTITIONS))
        assert sum(map(len, shares)) == PARTITIONS  # nobody's partition is anyone else's

        second.close()  # its connection ends, as when its process dies
        for _ in range(2):
            shares = [claims.claim(PARTITIONS) for claims in (first, third)]
        assert sorted(map(len, shares)) == [4, 4]
        assert frozenset().union(*shares) == frozenset(range(PARTITIONS))
    finally:
        for claims in (first, second, third):
            claims.close()


@pytest.mark.store_backends("postgresql")
def test_fewer_partitions_release_the_ones_beyond(store: Store) -> None:
    claims = PartitionClaims(store.engine)
    try:
        assert claims.claim(PARTITIONS) == frozenset(range(PARTITIONS))
        assert claims.claim(3) == frozenset(range(3))
        other = PartitionClaims(store.engine)
        try:
            # Its fair share of the eight, all among those given up.
            taken = other.claim(PARTITIONS)
            assert len(taken) == PARTITIONS // 2
            assert taken <= frozenset(range(3, PARTITIONS))
        finally:
            other.close()
    finally:
        claims.close()


@pytest.mark.store_backends("postgresql")
def test_the_bell_rings_when_another_process_stores_events(store: Store) -> None:
    rung = threading.Event()
    bell = store.outbox_bell(rung.set)
    assert bell is not None
    try:
        other = Store(str(store.engine.url.render_as_string(hide_password=False)))
        try:
            assert not rung.wait(0.3)
            other.append_events([event("ada", "m1")])
            assert rung.wait(5)
        finally:
            other.close()
    finally:
        bell.close()


@pytest.mark.store_backends("sqlite")
def test_sqlite_has_no_bell(store: Store) -> None:
    assert store.outbox_bell(lambda: None) is None


def test_one_sqlite_router_at_a_time(tmp_path: Path) -> None:
    database = str(tmp_path / "journeys.db")
    first, second = SoleClaim(database), SoleClaim(database)
    try:
        assert first.claim(PARTITIONS) == ALL
        assert second.claim(PARTITIONS) == frozenset()  # stands by
        assert first.claim(PARTITIONS) == ALL
        first.close()
        assert second.claim(PARTITIONS) == ALL
    finally:
        first.close()
        second.close()


def test_a_dead_process_hands_the_sqlite_outbox_over(tmp_path: Path) -> None:
    database = str(tmp_path / "journeys.db")
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time\n"
            "from journeys.store.claims import SoleClaim\n"
            f"claims = SoleClaim({database!r})\n"
            "assert claims.claim(8) == 'all'\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    claims = SoleClaim(database)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert claims.claim(PARTITIONS) == frozenset()
        holder.kill()  # no chance to release anything
        holder.wait()
        assert claims.claim(PARTITIONS) == ALL
    finally:
        holder.kill()
        holder.wait()
        claims.close()


def test_an_in_memory_database_has_one_router() -> None:
    assert SoleClaim(":memory:").claim(PARTITIONS) == ALL
    assert SoleClaim("file:shared?mode=memory&cache=shared").claim(PARTITIONS) == ALL


def test_a_database_named_by_uri_is_locked_by_its_path(tmp_path: Path) -> None:
    database = tmp_path / "journeys.db"
    first, second = SoleClaim(f"file:{database}?mode=rwc"), SoleClaim(str(database))
    try:
        assert first.claim(PARTITIONS) == ALL
        assert second.claim(PARTITIONS) == frozenset()
    finally:
        first.close()
        second.close()


def event(user_id: str, message_id: str) -> NewEvent:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return NewEvent(
        message_id=message_id, user_id=user_id, type="track", name="Viewed",
        properties={}, timestamp=at,
    )  # fmt: skip


@pytest.mark.store_backends("sqlite", "postgresql")
def test_the_outbox_reads_only_the_claimed_partitions(store: Store) -> None:
    users = [f"user-{n}" for n in range(40)]
    store.append_events([event(user, f"m-{user}") for user in users])
    claimed = {1, 3}
    mine = store.unrouted_events(partitions=(4, claimed))
    assert [e.user_id for e in mine] == [u for u in users if partition_key(u) % 4 in claimed]
    assert all(e.partition_key == partition_key(e.user_id) for e in mine)
    assert store.unrouted_events(partitions=(4, set())) == []
    assert len(store.unrouted_events()) == len(users)


def test_partition_keys_are_stable() -> None:
    # Stored in the events table (and frozen in migration 0005): never to change.
    assert partition_key("ada") == 225478504
    assert all(0 <= partition_key(str(n)) < 2**31 for n in range(1000))

"""The store methods ingest and the API added: batched appends, profile merges, paging,
experiment counts and the health check (on a real SQLite file)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeys.store import NewEvent, Store
from tests.factories import enroll, mark_converted, merge_traits, move, set_variant

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def new_event(message_id: str, user_id: str = "u1", **fields: Any) -> NewEvent:
    """A track event with defaults."""
    values: dict[str, Any] = {
        "type": "track",
        "name": "Viewed",
        "properties": {},
        "timestamp": T0,
        **fields,
    }
    return NewEvent(message_id=message_id, user_id=user_id, **values)


def test_append_events_reports_which_were_new(store: Store) -> None:
    assert store.append_events([]) == []
    assert store.append_events([new_event("m1"), new_event("m2")]) == [True, True]
    flags = store.append_events([new_event("m2"), new_event("m3"), new_event("m3")])
    assert flags == [False, True, False]
    assert sorted(e.message_id for e in store.events_for_user("u1")) == ["m1", "m2", "m3"]


def test_append_events_creates_profiles_and_merges_traits(store: Store) -> None:
    identify = new_event(
        "m1", type="identify", name=None, properties={"plan": "pro"}, traits={"plan": "pro"}
    )
    store.append_events([new_event("m0", user_id="u2"), identify])
    u1, u2 = store.get_user("u1"), store.get_user("u2")
    assert u1 is not None
    assert u2 is not None
    assert (u1.traits, u2.traits) == ({"plan": "pro"}, {})
    again = new_event("m1", type="identify", name=None, traits={"plan": "free"})
    assert store.append_events([again]) == [False]
    assert store.get_user("u1").traits == {"plan": "pro"}  # type: ignore[union-attr]


def test_append_events_is_all_or_nothing(store: Store) -> None:
    naive = new_event("m2", timestamp=datetime(2025, 3, 1, 12, 0))  # refused by the store
    with pytest.raises(Exception, match="naive datetime"):
        store.append_events([new_event("m1", traits={"a": 1}), naive])
    assert store.events_for_user("u1") == []
    assert store.get_user("u1") is None


def test_append_events_merges_the_anonymous_profile_first(store: Store) -> None:
    store.append_events(
        [
            new_event("a1", user_id="anon:x", type="identify", name=None, traits={"a": 1, "b": 1}),
            new_event("a2", user_id="anon:x"),
        ]
    )
    merge_traits(store, "u1", {"b": 2})
    identify = new_event("u1", type="identify", name=None, traits={"c": 3}, merge_from="anon:x")
    assert store.append_events([identify, new_event("a3", user_id="anon:x")]) == [True, True]
    assert store.get_user("u1").traits == {"a": 1, "b": 2, "c": 3}  # type: ignore[union-attr]
    assert sorted(e.message_id for e in store.events_for_user("u1")) == ["a1", "a2", "u1"]
    # After the merge the anonymous id is a new visitor again.
    assert [e.message_id for e in store.events_for_user("anon:x")] == ["a3"]


def test_merge_profiles_is_idempotent(store: Store) -> None:
    store.append_events([new_event("a1", user_id="anon:x", traits={"a": 1})])
    assert store.merge_profiles("anon:x", "u1") is True
    assert store.merge_profiles("anon:x", "u1") is False
    assert store.merge_profiles("u1", "u1") is False
    assert store.get_user("anon:x") is None
    assert store.get_user("u1").traits == {"a": 1}  # type: ignore[union-attr]
    assert [e.message_id for e in store.events_for_user("u1")] == ["a1"]
    assert store.merge_profiles("anon:nobody", "u9") is False
    assert store.get_user("u9") is None


def test_concurrent_appends_of_the_same_events_store_each_once(store: Store) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    batch = [new_event(f"m{i}", traits={"n": i}) for i in range(20)]

    def append(_: int) -> list[bool]:
        barrier.wait()
        return store.append_events(batch)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(append, range(workers)))
    assert [sum(flags) for flags in zip(*results, strict=True)] == [1] * 20
    assert len(store.events_for_user("u1")) == 20


def test_iter_users_walks_every_page(store: Store) -> None:
    for index in range(7):
        merge_traits(store, f"u{index}", {"i": index})
    assert [u.user_id for u in store.iter_users(page_size=3)] == [f"u{i}" for i in range(7)]
    assert [u.user_id for u in store.iter_users(page_size=7)] == [f"u{i}" for i in range(7)]
    assert [u.traits["i"] for u in store.iter_users()] == list(range(7))


def test_variant_counts_per_experiment_node(store: Store) -> None:
    for index, variant in enumerate(["a", "a", "b", None]):
        enrollment = f"e{index}"
        enroll(
            store,
            enrollment_id=enrollment,
            user_id=f"u{index}",
            journey_id="j",
            version=1,
            workflow_id=f"journey:j:u{index}",
            entered_at=T0,
        )
        move(store, enrollment, "split", T0)
        if variant is not None:
            set_variant(store, enrollment, variant)
    mark_converted(store, "e0", T0 + timedelta(hours=1))
    assert store.variant_counts("j", "split") == {
        "a": {"users": 2, "conversions": 1},
        "b": {"users": 1, "conversions": 0},
    }
    assert store.variant_counts("j", "elsewhere") == {}
    assert store.variant_counts("other", "split") == {}


def test_ping(store: Store) -> None:
    store.ping()

"""Tests of the app store, on a real SQLite file and on a real PostgreSQL database."""

from __future__ import annotations

import inspect
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import StatementError
from sqlmodel import SQLModel

from journeys import migrations
from journeys.contracts import EnrollInput, FinalDeliveryStatus, ProgressInput
from journeys.errors import ConfigurationError, Conflict, NotFound
from journeys.settings import Settings
from journeys.store import CapWindow, Store, utcnow
from journeys.store.claims import partition_key
from tests import factories
from tests.conftest import BACKENDS, run_journeys
from tests.factories import (
    append_event,
    finish,
    get_enrollment,
    mark_converted,
    merge_traits,
    move,
    set_variant,
)

T = TypeVar("T")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
APPLICATION = (
    "journeys", "api", "relay", "worker", "activities", "workflows", "journey_designer", "cli",
    "api_client", "bench",
)  # fmt: skip
"""The packages outside the tests that use the store."""


def document(journey_id: str = "welcome", name: str = "Welcome") -> dict[str, Any]:
    """A small journey document (the store does not validate it)."""
    return {
        "id": journey_id,
        "name": name,
        "entry": {"event": "Signed Up"},
        "start": "hello",
        "nodes": {"hello": {"type": "exit"}},
    }


def race(workers: int, task: Callable[[int], T]) -> list[T]:
    """Run `task(i)` for each worker at once, released together by a barrier."""
    barrier = threading.Barrier(workers)

    def run(index: int) -> T:
        barrier.wait()
        return task(index)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


def add_event(
    store: Store,
    message_id: str,
    *,
    user_id: str = "u1",
    name: str | None = "Viewed",
    at: datetime = T0,
    properties: dict[str, Any] | None = None,
) -> bool:
    """Append a track event with defaults."""
    return append_event(
        store,
        message_id=message_id,
        user_id=user_id,
        type="track",
        name=name,
        properties=properties or {},
        timestamp=at,
    )


def begin(store: Store, key: str, **fields: Any) -> tuple[Any, bool]:
    """Begin a delivery with defaults."""
    values: dict[str, Any] = {
        "idempotency_key": key,
        "journey_id": "welcome",
        "version": 1,
        "node_id": "hello",
        "user_id": "u1",
        "channel": "email",
        "variant": None,
        "content": {"subject": "Hi"},
    }
    values.update(fields)
    return store.begin_delivery(**values)


def enroll(store: Store, enrollment_id: str, **fields: Any) -> Any:
    """Enroll with defaults."""
    values: dict[str, Any] = {
        "enrollment_id": enrollment_id,
        "user_id": "u1",
        "journey_id": "welcome",
        "version": 1,
        "workflow_id": "journey:welcome:u1",
        "entered_at": T0,
    }
    values.update(fields)
    return factories.enroll(store, **values)


# --- the facade ----------------------------------------------------------------------------------


def test_every_public_store_method_is_used_outside_the_tests() -> None:
    # What only tests need belongs in tests/factories.py: the store's API is what runs.
    store_package = ROOT / "journeys" / "store"
    source = "\n".join(
        path.read_text()
        for package in APPLICATION
        for path in sorted((ROOT / package).rglob("*.py"))
        if store_package not in path.parents
    )
    methods = [name for name, _ in inspect.getmembers(Store, callable) if not name.startswith("_")]
    assert {"from_settings", "save_draft", "claim_delivery", "record_steps"} <= set(methods)
    unused = [name for name in methods if not re.search(rf"\.{name}\b", source)]
    assert unused == [], f"only tests call Store.{unused}: move them to tests/factories.py"


# --- engine ------------------------------------------------------------------------------------


@pytest.mark.store_backends("sqlite")
def test_sqlite_pragmas(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_creates_parent_directory_and_reads_settings(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journeys.db"
    store = Store.from_settings(Settings(JOURNEYS_DATABASE_URL=f"sqlite:///{path}"))
    try:
        store.save_draft("welcome", document())
        assert path.exists()
    finally:
        store.close()
    reopened = Store(f"sqlite:///{path}")
    try:
        journey = reopened.get_journey("welcome")
        assert journey is not None
        assert journey.draft == document()
    finally:
        reopened.close()


def test_in_memory_store() -> None:
    store = Store("sqlite://")
    try:
        assert merge_traits(store, "u1", {"plan": "pro"}) == {"plan": "pro"}
        user = store.get_user("u1")
        assert user is not None
        assert user.traits == {"plan": "pro"}
    finally:
        store.close()


def test_timestamps_are_aware_utc_and_naive_is_refused(store: Store) -> None:
    paris = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert add_event(store, "m1", at=paris)
    (event,) = store.events_for_user("u1")
    assert event.timestamp == paris
    assert event.timestamp.tzinfo == UTC
    assert event.received_at.tzinfo == UTC
    with pytest.raises(StatementError, match="naive datetime"):
        add_event(store, "m2", at=datetime(2025, 3, 1, 12, 0))
    assert store.count_events("u1", name=None, since=None) == 1


# --- journeys ----------------------------------------------------------------------------------


def test_save_draft_creates_then_updates_keeping_status(store: Store) -> None:
    assert store.get_journey("welcome") is None
    created = store.save_draft("welcome", document())
    assert (created.status, created.version, created.draft["name"]) == ("draft", None, "Welcome")
    assert created.created_at.tzinfo == UTC

    store.publish("welcome")
    updated = store.save_draft("welcome", document(name="Welcome v2"))
    assert updated.status == "live"
    assert updated.version == 1
    assert updated.draft["name"] == "Welcome v2"
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert [j.id for j in store.list_journeys()] == ["welcome"]


def test_saved_draft_is_a_copy(store: Store) -> None:
    draft = document()
    saved = store.save_draft("welcome", draft)
    draft["name"] = "changed afterwards"
    assert saved.draft["name"] == "Welcome"
    journey = store.get_journey("welcome")
    assert journey is not None
    assert journey.draft["name"] == "Welcome"


def test_publish_numbers_versions_and_keeps_them_immutable(store: Store) -> None:
    store.save_draft("welcome", document(name="First"))
    assert store.publish("welcome") == 1
    store.save_draft("welcome", document(name="Second"))
    assert store.publish("welcome") == 2
    store.save_draft("welcome", document(name="Third (unpublished)"))

    first = store.get_version("welcome", 1)
    second = store.get_version("welcome", 2)
    assert first is not None
    assert second is not None
    assert first.definition["name"] == "First"
    assert second.definition["name"] == "Second"
    assert first.published_at <= second.published_at
    assert store.get_version("welcome", 3) is None
    assert [v.version for v in store.list_versions("welcome")] == [1, 2]
    journey = store.get_journey("welcome")
    assert journey is not None
    assert (journey.status, journey.version) == ("live", 2)


def test_publish_keeps_a_paused_journey_paused(store: Store) -> None:
    store.save_draft("welcome", document())
    store.publish("welcome")
    store.set_status("welcome", "paused")
    assert store.publish("welcome") == 2
    journey = store.get_journey("welcome")
    assert journey is not None
    assert (journey.status, journey.version) == ("paused", 2)


def test_archived_journey_refuses_publish_and_status_changes(store: Store) -> None:
    store.save_draft("welcome", document())
    store.publish("welcome")
    assert store.set_status("welcome", "archived").status == "archived"
    with pytest.raises(Conflict):
        store.publish("welcome")
    with pytest.raises(Conflict):
        store.set_status("welcome", "live")
    assert [v.version for v in store.list_versions("welcome")] == [1]


def test_publish_and_status_errors(store: Store) -> None:
    with pytest.raises(NotFound):
        store.publish("nope")
    with pytest.raises(NotFound):
        store.set_status("nope", "paused")
    store.save_draft("welcome", document())
    with pytest.raises(Conflict):
        store.set_status("welcome", "live")


def test_live_versions_are_the_latest_of_live_journeys(store: Store) -> None:
    for journey_id in ("a-live", "b-paused", "c-draft", "d-archived"):
        store.save_draft(journey_id, document(journey_id))
    store.publish("a-live")
    store.publish("a-live")
    store.publish("b-paused")
    store.set_status("b-paused", "paused")
    store.publish("d-archived")
    store.set_status("d-archived", "archived")
    assert [(v.journey_id, v.version) for v in store.live_versions()] == [("a-live", 2)]
    store.set_status("b-paused", "live")
    assert [(v.journey_id, v.version) for v in store.live_versions()] == [
        ("a-live", 2),
        ("b-paused", 1),
    ]


def test_concurrent_publishes_get_distinct_versions(store: Store) -> None:
    store.save_draft("welcome", document())
    versions = race(6, lambda _: store.publish("welcome"))
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


# --- users -------------------------------------------------------------------------------------


def test_merge_and_update_traits(store: Store) -> None:
    assert store.get_user("u1") is None
    assert merge_traits(store, "u1", {"plan": "free", "address": {"city": "Oslo"}}) == {
        "plan": "free",
        "address": {"city": "Oslo"},
    }
    # Shallow: a nested object is replaced, not merged.
    assert merge_traits(store, "u1", {"plan": "pro", "address": {"zip": "0150"}}) == {
        "plan": "pro",
        "address": {"zip": "0150"},
    }
    assert store.update_traits("u1", {"vip": True}, ["address", "missing"]) == {
        "plan": "pro",
        "vip": True,
    }
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"plan": "pro", "vip": True}
    assert user.updated_at >= user.created_at
    assert store.update_traits("u2", {}, ["x"]) == {}
    assert store.get_user("u2") is not None


def test_concurrent_trait_merges_lose_nothing(store: Store) -> None:
    race(8, lambda i: merge_traits(store, "u1", {f"t{i}": i}))
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {f"t{i}": i for i in range(8)}


# --- events ------------------------------------------------------------------------------------


def test_message_id_is_unique(store: Store) -> None:
    assert add_event(store, "m1", properties={"n": 1})
    assert not add_event(store, "m1", name="Other", properties={"n": 2})
    assert store.count_events("u1", name=None, since=None) == 1
    (event,) = store.events_for_user("u1")
    assert (event.name, event.properties) == ("Viewed", {"n": 1})


def test_events_for_user_filters_and_orders(store: Store) -> None:
    add_event(store, "m1", name="Viewed", at=T0)
    add_event(store, "m2", name="Added", at=T0 + timedelta(minutes=1))
    add_event(store, "m3", name="Viewed", at=T0 + timedelta(minutes=2))
    add_event(store, "m4", name="Viewed", at=T0 + timedelta(minutes=3), user_id="u2")
    # Received out of order: ordering follows `timestamp`, not insertion.
    add_event(store, "m0", name="Viewed", at=T0 - timedelta(minutes=1))

    def ids(**query: Any) -> list[str]:
        return [e.message_id for e in store.events_for_user("u1", **query)]

    assert ids() == ["m3", "m2", "m1", "m0"]
    assert ids(newest_first=False) == ["m0", "m1", "m2", "m3"]
    assert ids(name="Viewed") == ["m3", "m1", "m0"]
    assert ids(since=T0) == ["m3", "m2", "m1"]
    assert ids(name="Viewed", since=T0 + timedelta(seconds=1)) == ["m3"]
    assert ids(limit=2) == ["m3", "m2"]
    assert ids(name="Nothing") == []


def test_count_events(store: Store) -> None:
    for i in range(5):
        add_event(store, f"v{i}", name="Viewed", at=T0 + timedelta(hours=i))
    add_event(store, "a0", name="Added", at=T0 + timedelta(hours=10))
    add_event(store, "x0", name="Viewed", user_id="u2")
    assert store.count_events("u1", name=None, since=None) == 6
    assert store.count_events("u1", name="Viewed", since=None) == 5
    assert store.count_events("u1", name="Viewed", since=T0 + timedelta(hours=3)) == 2
    assert store.count_events("u1", name=None, since=T0 + timedelta(hours=4)) == 2
    assert store.count_events("nobody", name=None, since=None) == 0


# --- segments and templates ----------------------------------------------------------------------


def test_segments_and_templates(store: Store) -> None:
    condition = {"field": "user.plan", "op": "eq", "value": "pro"}
    store.put_segment("pros", "Pro users", condition)
    store.put_segment("pros", "Paying users", condition)
    store.put_segment("all", "Everyone", {"all": []})
    segment = store.get_segment("pros")
    assert segment is not None
    assert (segment.name, segment.condition) == ("Paying users", condition)
    assert [s.id for s in store.list_segments()] == ["all", "pros"]
    assert store.delete_segment("pros")
    assert not store.delete_segment("pros")
    assert store.get_segment("pros") is None

    store.put_template("hello", "email", {"subject": "Hi", "body": "Hello"})
    store.put_template("hello", "email", {"subject": "Hey", "body": "Hello"})
    template = store.get_template("hello")
    assert template is not None
    assert (template.channel, template.content["subject"]) == ("email", "Hey")
    assert [t.id for t in store.list_templates()] == ["hello"]
    assert store.delete_template("hello")
    assert not store.delete_template("hello")
    assert store.list_templates() == []


# --- deliveries --------------------------------------------------------------------------------


def test_begin_delivery_is_idempotent(store: Store) -> None:
    first, created = begin(store, "k1", content={"subject": "first"})
    assert created
    assert first.id is not None
    assert first.status == "pending"
    again, created_again = begin(store, "k1", content={"subject": "second"})
    assert not created_again
    assert again.id == first.id
    assert again.content == {"subject": "first"}
    assert len(store.deliveries_for_user("u1")) == 1


def test_concurrent_begin_delivery_creates_one(store: Store) -> None:
    results = race(6, lambda _: begin(store, "k1"))
    assert [created for _, created in results].count(True) == 1
    assert len({record.id for record, _ in results}) == 1
    assert len(store.deliveries_for_user("u1")) == 1


def test_finish_delivery(store: Store) -> None:
    begin(store, "k1", content={"subject": "{{ raw }}"})
    sent = store.finish_delivery("k1", "sent", content={"subject": "Rendered"})
    assert (sent.status, sent.reason, sent.content) == ("sent", None, {"subject": "Rendered"})
    begin(store, "k2")
    skipped = store.finish_delivery("k2", "skipped", reason="no email address")
    assert (skipped.status, skipped.reason, skipped.content) == (
        "skipped",
        "no email address",
        {"subject": "Hi"},
    )
    stored = {d.idempotency_key: d.status for d in store.deliveries_for_user("u1")}
    assert stored == {"k1": "sent", "k2": "skipped"}
    with pytest.raises(NotFound):
        store.finish_delivery("missing", "failed")


def test_deliveries_for_user_newest_first_with_limit(store: Store) -> None:
    for i in range(4):
        begin(store, f"k{i}")
    begin(store, "other", user_id="u2")
    assert [d.idempotency_key for d in store.deliveries_for_user("u1")] == [
        "k3",
        "k2",
        "k1",
        "k0",
    ]
    assert [d.idempotency_key for d in store.deliveries_for_user("u1", limit=2)] == ["k3", "k2"]


def test_inbox_and_mark_read(store: Store) -> None:
    old, _ = begin(store, "in1", channel="in_app", content={"body": "old"})
    store.finish_delivery("in1", "sent")
    new, _ = begin(store, "in2", channel="in_app", content={"body": "new"})
    store.finish_delivery("in2", "sent")
    begin(store, "in3", channel="in_app")  # still pending: not in the inbox
    email, _ = begin(store, "mail", channel="email")
    store.finish_delivery("mail", "sent")
    theirs, _ = begin(store, "theirs", channel="in_app", user_id="u2")
    store.finish_delivery("theirs", "sent")

    assert [d.content["body"] for d in store.inbox("u1")] == ["new", "old"]
    assert all(d.read_at is None for d in store.inbox("u1"))

    assert old.id is not None
    read_at = T0 + timedelta(days=1)
    marked = store.mark_read("u1", old.id, at=read_at)
    assert marked.read_at == read_at
    again = store.mark_read("u1", old.id, at=read_at + timedelta(hours=1))
    assert again.read_at == read_at
    assert {d.id: d.read_at for d in store.inbox("u1")} == {new.id: None, old.id: read_at}

    assert theirs.id is not None
    assert email.id is not None
    with pytest.raises(NotFound):
        store.mark_read("u1", theirs.id)
    with pytest.raises(NotFound):
        store.mark_read("u1", email.id)
    with pytest.raises(NotFound):
        store.mark_read("u1", 10_000)
    assert store.inbox("u2")[0].read_at is None


def test_a_delivery_is_claimed_then_sent_or_released(store: Store) -> None:
    begin(store, "k1")
    claimed = store.claim_delivery("k1", {"subject": "Rendered"})
    assert (claimed.status, claimed.content, claimed.finished) == (
        "sending",
        {"subject": "Rendered"},
        False,
    )
    assert store.claim_delivery("k1", {"subject": "Again"}).content == {"subject": "Rendered"}
    assert store.release_delivery("k1").status == "pending"
    store.claim_delivery("k1", {"subject": "Rendered"})
    sent = store.finish_delivery("k1", "sent", provider="smtp", provider_message_id="<m1@x>")
    assert (sent.provider, sent.provider_message_id, sent.finished) == ("smtp", "<m1@x>", True)
    assert sent.sent_at is not None
    # Finished deliveries are neither claimed nor released again.
    assert store.claim_delivery("k1", {}).status == "sent"
    assert store.release_delivery("k1").status == "sent"
    with pytest.raises(NotFound):
        store.claim_delivery("missing", {})


def sent(store: Store, key: str, **fields: Any) -> None:
    """A delivery that went out now."""
    begin(store, key, **fields)
    store.claim_delivery(key, {})
    store.finish_delivery(key, "sent")


def test_a_full_frequency_cap_skips_the_delivery(store: Store) -> None:
    day = CapWindow(max=2, since=utcnow() - timedelta(hours=1), channel=None, label="2 per 1d")
    sent(store, "a")
    sent(store, "transactional", transactional=True)  # never counted
    sent(store, "other user", user_id="u2")
    begin(store, "b")
    assert store.claim_delivery("b", {}, [day]).status == "sending"  # counted while sending
    begin(store, "c")
    capped = store.claim_delivery("c", {}, [day])
    assert (capped.status, capped.reason) == ("skipped", "frequency cap: 2 per 1d")
    # A transactional message is never capped by the caller; messages before the window and
    # caps on other channels do not count either.
    store.finish_delivery("b", "sent")
    later = CapWindow(max=1, since=utcnow() + timedelta(seconds=1), channel=None, label="later")
    push = CapWindow(max=1, since=utcnow() - timedelta(days=1), channel="push", label="push")
    begin(store, "d")
    assert store.claim_delivery("d", {}, [later, push]).status == "sending"


def test_racing_claims_cannot_both_take_the_last_slot(store: Store) -> None:
    cap = CapWindow(max=1, since=utcnow() - timedelta(days=1), channel="email", label="1 per 1d")
    for i in range(6):
        begin(store, f"k{i}")
    claims = race(6, lambda i: store.claim_delivery(f"k{i}", {}, [cap]).status)
    assert sorted(claims) == ["sending"] + ["skipped"] * 5


def test_unregistered_push_tokens_are_removed(store: Store) -> None:
    merge_traits(store, "u1", {"push_tokens": ["a", "b", "c"], "plan": "pro"})
    traits = store.remove_push_tokens("u1", ["b", "gone"])
    assert traits == {"push_tokens": ["a", "c"], "plan": "pro"}
    assert store.remove_push_tokens("nobody", ["a"]) == {}


def test_message_counts(store: Store) -> None:
    statuses: list[FinalDeliveryStatus] = ["sent", "sent", "skipped", "failed"]
    for i, status in enumerate(statuses):
        begin(store, f"a{i}", node_id="a")
        store.finish_delivery(f"a{i}", status)
    begin(store, "b0", node_id="b")
    begin(store, "other", journey_id="other", node_id="a")
    assert store.message_counts("welcome") == {
        "a": {"pending": 0, "sending": 0, "sent": 2, "skipped": 1, "failed": 1},
        "b": {"pending": 1, "sending": 0, "sent": 0, "skipped": 0, "failed": 0},
    }
    assert store.message_counts("nothing") == {}


# --- enrollments -------------------------------------------------------------------------------


def test_recording_an_enrollment_again_changes_nothing(store: Store) -> None:
    entered = EnrollInput(
        enrollment_id="e1",
        user_id="u1",
        journey_id="welcome",
        version=1,
        workflow_id="journey:welcome:u1",
        entered_at=T0,
    )
    store.record_steps([], enrollment=entered)
    store.record_steps(
        [],
        enrollment=entered.model_copy(update={"version": 9, "entered_at": T0 + timedelta(days=1)}),
    )
    again = get_enrollment(store, "e1")
    assert again is not None
    assert (again.version, again.entered_at, again.status) == (1, T0, "active")
    assert [e.id for e in store.enrollments_for_user("u1")] == ["e1"]
    assert store.journey_counts("welcome")["entered"] == 1


def test_move_and_finish_are_idempotent(store: Store) -> None:
    enroll(store, "e1")
    move(store, "e1", "hello", T0)
    moved = move(store, "e1", "hello", T0 + timedelta(minutes=5))
    assert moved.current_node == "hello"
    move(store, "e1", "bye", T0 + timedelta(minutes=10))
    assert store.node_counts("welcome") == {
        "hello": {"reached": 1, "waiting": 0},
        "bye": {"reached": 1, "waiting": 1},
    }

    done = finish(store, "e1", "completed", T0 + timedelta(hours=1))
    assert (done.status, done.ended_at, done.current_node) == (
        "completed",
        T0 + timedelta(hours=1),
        None,
    )
    again = finish(store, "e1", "exited", T0 + timedelta(hours=2))
    assert (again.status, again.ended_at) == ("completed", T0 + timedelta(hours=1))

    # A late retry of a move must not put a finished user back on the canvas.
    late = move(store, "e1", "bye", T0 + timedelta(hours=3))
    assert late.current_node is None
    stored = get_enrollment(store, "e1")
    assert stored is not None
    assert (stored.status, stored.current_node) == ("completed", None)


def test_a_variant_is_kept_and_the_first_conversion_counts(store: Store) -> None:
    enroll(store, "e1")
    assert set_variant(store, "e1", "urgency").variant == "urgency"
    converted = T0 + timedelta(hours=1)
    assert mark_converted(store, "e1", converted).converted_at == converted
    enrollment = mark_converted(store, "e1", converted + timedelta(hours=1))
    assert (enrollment.converted_at, enrollment.variant) == (converted, "urgency")


def test_concurrent_conversions_count_once(store: Store) -> None:
    enroll(store, "e1")
    results = race(6, lambda i: mark_converted(store, "e1", T0 + timedelta(minutes=i)))
    assert len({enrollment.converted_at for enrollment in results}) == 1
    assert store.journey_counts("welcome")["converted"] == 1


def test_record_steps_enrolls_and_records_steps_in_order_once(store: Store) -> None:
    entered = EnrollInput(
        enrollment_id="e1",
        user_id="u1",
        journey_id="welcome",
        version=1,
        workflow_id="journey:welcome:u1",
        entered_at=T0,
    )
    steps = [
        ProgressInput(enrollment_id="e1", at=T0, node_id="split"),
        ProgressInput(enrollment_id="e1", at=T0, variant="bold"),
        ProgressInput(enrollment_id="e1", at=T0 + timedelta(seconds=1), node_id="hello"),
        ProgressInput(enrollment_id="e1", at=T0 + timedelta(seconds=2), converted=True),
        ProgressInput(enrollment_id="e1", at=T0 + timedelta(seconds=3), node_id="wait"),
    ]
    store.record_steps(steps, enrollment=entered)
    store.record_steps(steps, enrollment=entered)  # an activity's retry changes nothing

    stored = get_enrollment(store, "e1")
    assert stored is not None
    assert (stored.status, stored.current_node, stored.variant) == ("active", "wait", "bold")
    assert stored.converted_at == T0 + timedelta(seconds=2)
    assert store.node_counts("welcome") == {
        "split": {"reached": 1, "waiting": 0},
        "hello": {"reached": 1, "waiting": 0},
        "wait": {"reached": 1, "waiting": 1},
    }

    ended = ProgressInput(enrollment_id="e1", at=T0 + timedelta(hours=1), ended="completed")
    late = ProgressInput(enrollment_id="e1", at=T0 + timedelta(hours=2), node_id="bye")
    store.record_steps([ended, late])
    stored = get_enrollment(store, "e1")
    assert stored is not None
    assert (stored.status, stored.current_node) == ("completed", None)
    assert stored.ended_at == T0 + timedelta(hours=1)
    assert store.journey_counts("welcome")["entered"] == 1

    with pytest.raises(NotFound):
        store.record_steps([ProgressInput(enrollment_id="nope", at=T0, node_id="hello")])


def test_enrollment_lookups_newest_first(store: Store) -> None:
    enroll(store, "e1", entered_at=T0)
    enroll(store, "e2", entered_at=T0 + timedelta(days=8))
    enroll(store, "e3", entered_at=T0 + timedelta(days=1), journey_id="other")
    enroll(store, "e4", entered_at=T0 + timedelta(days=9), user_id="u2")
    assert [e.id for e in store.enrollments_for_user("u1")] == ["e2", "e3", "e1"]
    last = store.last_enrollment("welcome", "u1")
    assert last is not None
    assert last.id == "e2"
    assert store.last_enrollment("welcome", "nobody") is None
    assert get_enrollment(store, "missing") is None


def test_journey_and_node_counts(store: Store) -> None:
    # Five users: two wait at "wait", one at "mail", one completed, one exited; two converted.
    for i in range(5):
        enroll(store, f"e{i}", user_id=f"u{i}")
        move(store, f"e{i}", "wait", T0)
    for i in (2, 3, 4):
        move(store, f"e{i}", "mail", T0 + timedelta(hours=1))
    finish(store, "e3", "completed", T0 + timedelta(hours=2))
    finish(store, "e4", "exited", T0 + timedelta(hours=2))
    mark_converted(store, "e0", T0 + timedelta(hours=3))
    mark_converted(store, "e3", T0 + timedelta(hours=3))
    enroll(store, "x", journey_id="other")
    move(store, "x", "wait", T0)

    assert store.journey_counts("welcome") == {
        "entered": 5,
        "active": 3,
        "completed": 1,
        "exited": 1,
        "converted": 2,
        "limited": 0,
    }
    assert store.node_counts("welcome") == {
        "wait": {"reached": 5, "waiting": 2},
        "mail": {"reached": 3, "waiting": 1},
    }
    assert store.journey_counts("nothing") == {
        "entered": 0,
        "active": 0,
        "completed": 0,
        "exited": 0,
        "converted": 0,
        "limited": 0,
    }
    assert store.node_counts("nothing") == {}


# --- settings ----------------------------------------------------------------------------------


def test_settings_round_trip(store: Store) -> None:
    assert store.get_settings() == {}
    caps = [{"max": 3, "per": "1d", "channel": "push"}]
    assert store.put_settings({"frequency_caps": caps, "timezone": "UTC"}) == {
        "frequency_caps": caps,
        "timezone": "UTC",
    }
    assert store.put_settings({"timezone": "Europe/Oslo"}) == {
        "frequency_caps": caps,
        "timezone": "Europe/Oslo",
    }
    assert store.get_settings() == {"frequency_caps": caps, "timezone": "Europe/Oslo"}


def test_events_are_the_routing_outbox(store: Store) -> None:
    for i in range(3):
        append_event(
            store, message_id=f"m{i}", user_id="u1", type="track", name="Viewed",
            properties={}, timestamp=T0 + timedelta(minutes=i),
        )  # fmt: skip
    pending = store.unrouted_events()
    assert [e.message_id for e in pending] == ["m0", "m1", "m2"]
    assert [e.message_id for e in store.unrouted_events(limit=2)] == ["m0", "m1"]
    store.mark_routed([e.id for e in pending[:2] if e.id is not None], at=T0)
    assert [e.message_id for e in store.unrouted_events()] == ["m2"]
    store.mark_routed([])
    assert [e.message_id for e in store.unrouted_events()] == ["m2"]


def test_publish_refuses_a_draft_changed_since_it_was_validated(store: Store) -> None:
    checked = document()
    store.save_draft("welcome", checked)
    store.save_draft("welcome", document(name="Changed meanwhile"))
    with pytest.raises(Conflict, match="changed while publishing"):
        store.publish("welcome", validated=checked)
    assert store.list_versions("welcome") == []
    assert store.publish("welcome", validated=document(name="Changed meanwhile")) == 1


def test_racing_creations_of_one_segment_both_succeed(store: Store) -> None:
    condition = {"field": "user.plan", "op": "eq", "value": "pro"}
    race(6, lambda i: store.put_segment("pros", f"Pros {i}", condition))
    race(6, lambda i: store.put_settings({f"key{i % 2}": i}))
    assert [s.id for s in store.list_segments()] == ["pros"]
    assert set(store.get_settings()) == {"key0", "key1"}


# --- migrations --------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'journeys.db'}"


def execute(url: str, *statements: str, revision: str | None = None) -> None:
    """Migrate a database to `revision` (when given), then run `statements`, in one transaction."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if revision is not None:
                command.upgrade(migrations.config(connection), revision)
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def test_migrations_make_exactly_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        assert migrations.differences(connection) == []
        assert set(SQLModel.metadata.tables) <= set(
            store.engine.dialect.get_table_names(connection)
        )


def test_opening_waits_for_a_migration_that_holds_sqlite_longer_than_a_write_would(
    tmp_path: Path,
) -> None:
    # Another process holds the write lock (as one migrating a new database on a slow disk)
    # past the 5 s an ordinary write waits: opening waits on, then finds the database usable.
    path = tmp_path / "journeys.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")  # as the store's connections leave it
    holder.execute("BEGIN IMMEDIATE")
    opening = ThreadPoolExecutor(1).submit(Store, f"sqlite:///{path}")
    time.sleep(6)
    assert not opening.done()
    holder.execute("COMMIT")
    holder.close()
    store = opening.result(timeout=60)
    store.close()
    assert store.migration.head == migrations.head()


def test_an_empty_database_is_migrated_once_however_many_open_it(empty_url: str) -> None:
    stores = race(4, lambda _: Store(empty_url))
    try:
        applied = [s.migration.applied for s in stores]
        revisions = [step.split(":")[0] for step in max(applied)]
        assert revisions == ["0001", *AFTER_0001]
        assert sorted(applied) == [(), (), (), max(applied)]  # one did the work
        assert {s.migration.head for s in stores} == {migrations.head()}
        with stores[0].engine.connect() as connection:
            assert migrations.differences(connection) == []
    finally:
        for opened in stores:
            opened.close()


HEAD = migrations.head()
REVISIONS = [script.revision for script in migrations.scripts().walk_revisions()][::-1]
AFTER_0001 = REVISIONS[1:]
"""The revisions a database at 0001 is migrated through."""

POPULATED_AT_0001 = (
    "INSERT INTO journeys (id, draft, status, version, created_at, updated_at) "
    """VALUES ('welcome', '{"name": "Welcome"}', 'live', 1, '2025-03-01 12:00:00', """
    "'2025-03-01 12:00:00')",
    "INSERT INTO users (user_id, traits, created_at, updated_at) "
    """VALUES ('u1', '{"plan": "pro"}', '2025-03-01 12:00:00', '2025-03-01 12:00:00')""",
    "INSERT INTO deliveries (idempotency_key, journey_id, version, node_id, user_id, channel, "
    "status, content, created_at) VALUES "
    """('k1', 'welcome', 1, 'hello', 'u1', 'email', 'sent', '{"subject": "Hi"}', """
    "'2025-03-01 12:00:00'), "
    "('k2', 'welcome', 1, 'hello', 'u2', 'email', 'pending', '{}', '2025-03-01 12:05:00')",
)


def assert_populated_data_kept(store: Store) -> None:
    """The rows of `POPULATED_AT_0001`, read through the current models."""
    journey = store.get_journey("welcome")
    assert journey is not None
    assert (journey.draft, journey.status, journey.created_at) == ({"name": "Welcome"}, "live", T0)
    assert store.get_user("u1").traits == {"plan": "pro"}  # type: ignore[union-attr]
    [sent] = store.deliveries_for_user("u1")
    assert (sent.status, sent.transactional, sent.sent_at, sent.provider) == (
        "sent",
        False,
        T0,
        None,
    )
    [pending] = store.deliveries_for_user("u2")
    assert (pending.status, pending.transactional, pending.sent_at) == ("pending", False, None)
    # And the store works on as usual: a frequency cap counts the delivery sent before 0002.
    cap = CapWindow(max=1, since=T0 - timedelta(hours=1), channel=None, label="1 per 1d")
    begin(store, "k3")
    assert store.claim_delivery("k3", {}, [cap]).status == "skipped"


def test_upgrading_a_populated_database_keeps_its_data(empty_url: str) -> None:
    execute(empty_url, *POPULATED_AT_0001, revision="0001")
    store = Store(empty_url)
    try:
        assert store.migration.found == "0001"
        assert [step.split(":")[0] for step in store.migration.applied] == AFTER_0001
        assert_populated_data_kept(store)
        with store.engine.connect() as connection:
            assert migrations.differences(connection) == []
    finally:
        store.close()


def test_in_app_reads_before_0004_become_opens_and_view_events(empty_url: str) -> None:
    columns = "idempotency_key, journey_id, version, node_id, user_id, channel, status, content"
    execute(
        empty_url,
        f"INSERT INTO deliveries ({columns}, variant, transactional, created_at, read_at) VALUES "
        "('r1', 'welcome', 2, 'popup', 'u1', 'in_app', 'sent', '{}', 'b', false, "
        "'2025-03-01 12:00:00', '2025-03-01 13:00:00'), "
        "('r2', 'welcome', 2, 'popup', 'u2', 'in_app', 'sent', '{}', NULL, false, "
        "'2025-03-01 12:00:00', '2025-03-01 14:00:00'), "
        "('r3', 'welcome', 2, 'popup', 'u3', 'in_app', 'sent', '{}', NULL, false, "
        "'2025-03-01 12:00:00', NULL)",
        revision="0003",
    )
    store = Store(empty_url)
    try:
        opened = {
            d.user_id: d.opened_at for u in ("u1", "u2", "u3") for d in store.deliveries_for_user(u)
        }
        assert opened == {"u1": T0 + timedelta(hours=1), "u2": T0 + timedelta(hours=2), "u3": None}
        assert store.unrouted_events() == []  # old reads move nobody through a journey now
        [read] = store.deliveries_for_user("u1")
        [first] = store.events_for_user("u1")
        [second] = store.events_for_user("u2")
        assert (first.name, first.message_id, first.timestamp) == (
            "In-App Message Viewed",
            f"view:{read.id}",
            T0 + timedelta(hours=1),
        )
        attribution = {"journey_id": "welcome", "journey_version": 2, "node_id": "popup"}
        assert first.properties == {
            "delivery_id": read.id,
            **attribution,
            "channel": "in_app",
            "variant": "b",
            "machine": False,
        }
        assert "variant" not in second.properties
        assert store.events_for_user("u3") == []
    finally:
        store.close()


def test_events_waiting_in_the_outbox_at_0005_get_their_partition_key(empty_url: str) -> None:
    columns = "message_id, user_id, type, name, properties, timestamp, received_at, routed_at"
    execute(
        empty_url,
        f"INSERT INTO events ({columns}) VALUES "
        "('m1', 'ada', 'track', 'A', '{}', '2025-03-01 12:00:00', '2025-03-01 12:00:00', NULL), "
        "('m2', 'bo', 'track', 'B', '{}', '2025-03-01 12:00:00', '2025-03-01 12:00:00', NULL), "
        "('m3', 'ada', 'track', 'C', '{}', '2025-03-01 12:00:00', '2025-03-01 12:00:00', "
        "'2025-03-01 12:00:01')",
        revision="0004",
    )
    store = Store(empty_url)
    try:
        keys = {e.message_id: e.partition_key for e in store.events_for_user("ada")}
        assert keys == {"m1": partition_key("ada"), "m3": None}  # routed: never needed
        assert [e.message_id for e in store.unrouted_events(partitions=(4, {0, 1, 2, 3}))] == [
            "m1", "m2"
        ]  # fmt: skip
        # One stored without a key, by an API of the previous release: partition 0 routes it.
        execute(
            empty_url,
            f"INSERT INTO events ({columns}) VALUES ('m4', 'cy', 'track', 'D', '{{}}', "
            "'2025-03-01 12:00:00', '2025-03-01 12:00:00', NULL)",
        )
        everyone_but_0 = store.unrouted_events(partitions=(4, {1, 2, 3}))
        assert "m4" not in [e.message_id for e in everyone_but_0]
        assert "m4" in [e.message_id for e in store.unrouted_events(partitions=(4, {0}))]
    finally:
        store.close()


def test_a_database_made_by_create_all_is_adopted(empty_url: str, tmp_path: Path) -> None:
    # As `SQLModel.metadata.create_all` left databases before migrations: tables, no history
    # (and none of the tables added since).
    engine = create_engine(empty_url)
    added_since = {
        "experiment_decisions",
        "prediction_runs",
        "entry_admissions",
        "rate_grants",
        "broadcasts",
        "suppressions",
        "tokens",
        "audit_log",
        "people",
        "sign_in_failures",
    }
    tables = [t for name, t in SQLModel.metadata.tables.items() if name not in added_since]
    SQLModel.metadata.create_all(engine, tables=tables)
    engine.dispose()
    dropped = [
        "ALTER TABLE deliveries DROP COLUMN opened_at",
        "ALTER TABLE deliveries DROP COLUMN clicked_at",
        "ALTER TABLE deliveries DROP COLUMN waits_until",
        "ALTER TABLE deliveries DROP COLUMN locale",
        "ALTER TABLE events DROP COLUMN partition_key",
        "DROP INDEX ix_enrollments_workflow_id",
        "ALTER TABLE enrollments DROP COLUMN holdout",
        "ALTER TABLE journey_versions DROP COLUMN published_by",
    ]
    execute(empty_url, *dropped, *POPULATED_AT_0001[:2])
    store = Store(empty_url)
    try:
        assert (store.migration.found, store.migration.adopted) == (None, "0002")
        assert [step.split(":")[0] for step in store.migration.applied] == AFTER_0001[1:]
        assert store.get_user("u1").traits == {"plan": "pro"}  # type: ignore[union-attr]
    finally:
        store.close()
    reopened = Store(empty_url)
    reopened.close()
    assert reopened.migration.describe() == f"already at revision {HEAD}: nothing to do"


def test_a_database_made_by_create_all_before_0002_is_adopted_and_upgraded(
    empty_url: str,
) -> None:
    execute(empty_url, *POPULATED_AT_0001, "DROP TABLE alembic_version", revision="0001")
    store = Store(empty_url)
    try:
        assert (store.migration.found, store.migration.adopted) == (None, "0001")
        assert [step.split(":")[0] for step in store.migration.applied] == AFTER_0001
        assert_populated_data_kept(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("statements", "says"),
    [
        (
            ["CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
             "INSERT INTO alembic_version VALUES ('9999')"],
            "is at revision 9999, which this release does not know",
        ),
        (
            ["CREATE TABLE journeys (id VARCHAR PRIMARY KEY)"],
            "has journeys tables but no migration history, and they match no known schema",
        ),
    ],
)  # fmt: skip
def test_a_database_it_cannot_migrate_is_refused_and_left_alone(
    empty_url: str, statements: list[str], says: str
) -> None:
    execute(empty_url, *statements)
    with pytest.raises(ConfigurationError, match=says):
        Store(empty_url)
    engine = create_engine(empty_url)
    try:
        with engine.connect() as connection:
            tables = set(engine.dialect.get_table_names(connection))
        assert "users" not in tables  # every change was rolled back
    finally:
        engine.dispose()


def test_an_unreachable_database_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot open or migrate the database") as raised:
        Store("postgresql+psycopg://journeys:secret@127.0.0.1:1/journeys")
    assert "secret" not in str(raised.value)


def test_journeys_migrate_says_what_it_did(tmp_path: Path) -> None:
    environment = {"JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}"}
    first = run_journeys("migrate", env={**os.environ, **environment}, clean=False)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"database sqlite:///{tmp_path / 'journeys.db'}"
    assert [line.split(":")[0] for line in lines[1:]] == [
        *(f"applied {revision}" for revision in ("0001", *AFTER_0001)),
        f"now at revision {HEAD}",
    ]
    again = run_journeys("migrate", env={**os.environ, **environment})
    assert again.stdout.splitlines()[1:] == [f"already at revision {HEAD}: nothing to do"]


# --- experiments and predictions ---------------------------------------------------------------


def test_an_experiment_look_is_recorded_once_and_a_winner_is_final(store: Store) -> None:
    fresh = store.experiment_decision("cart", "split")
    assert (fresh.looks, fresh.winner, fresh.decided_at) == (0, None, None)
    looks = race(
        4,
        lambda i: store.record_experiment_look(
            "cart", "split", after_looks=0, looks=1, winner=None, p_value=0.4 + i / 100
        ),
    )
    assert {look.looks for look in looks} == {1}
    assert store.experiment_decision("cart", "split").looks == 1
    stale = store.record_experiment_look(
        "cart", "split", after_looks=0, looks=2, winner="a", p_value=0.001
    )
    assert (stale.looks, stale.winner) == (1, None)  # another caller made that look already
    won = store.record_experiment_look(
        "cart", "split", after_looks=1, looks=2, winner="b", p_value=0.001
    )
    assert (won.looks, won.winner, won.p_value) == (2, "b", 0.001)
    assert won.decided_at is not None
    after = store.record_experiment_look(
        "cart", "split", after_looks=2, looks=3, winner="a", p_value=0.0001
    )
    assert (after.winner, after.looks) == ("b", 2)
    assert store.experiment_decision("cart", "other").looks == 0


def test_prediction_runs_newest_first(store: Store) -> None:
    for day in (1, 3, 2):
        store.record_prediction_run({"trained_at": f"2026-06-0{day}T03:00:00+00:00", "auc": day})
    assert [run["auc"] for run in store.prediction_runs(2)] == [3, 2]


# --- broadcasts -------------------------------------------------------------------------------


def test_a_broadcast_is_recorded_once_and_its_end_is_final(store: Store) -> None:
    definition = {"id": "sale", "segment": "vips", "message": {"channel": "sms"}}
    added = race(4, lambda _: store.add_broadcast("sale", definition, "scheduled"))
    assert sorted(added) == [False, False, False, True]  # one recorded it, the others found it
    assert store.add_broadcast("later", {**definition, "id": "later"}, "sending")
    assert [b.id for b in store.list_broadcasts()] == ["later", "sale"]  # newest first
    record = store.set_broadcast_status("sale", "sending", targeted=10)
    assert record is not None
    assert (record.status, record.targeted, record.finished_at) == ("sending", 10, None)
    cancelled = store.set_broadcast_status("sale", "cancelled")
    assert cancelled is not None
    assert cancelled.finished_at is not None
    # The workflow's own close after a cancel keeps the status, and records the count.
    closed = store.set_broadcast_status("sale", "completed", targeted=12)
    assert closed is not None
    assert (closed.status, closed.targeted, closed.finished_at) == (
        "cancelled",
        12,
        cancelled.finished_at,
    )
    assert store.set_broadcast_status("nothing", "sending") is None
    assert store.get_broadcast("nothing") is None


def test_unfinished_recipients_page_through_one_broadcast(store: Store) -> None:
    for user in ("a", "b", "c", "d"):
        begin(store, f"broadcast:sale:{user}", journey_id="broadcast:sale", user_id=user)
    begin(store, "other", journey_id="broadcast:other", user_id="e")
    store.finish_delivery("broadcast:sale:b", "sent")
    store.claim_delivery("broadcast:sale:c", {})  # claimed by an attempt that stopped
    assert store.unfinished_recipients("broadcast:sale", None, 2) == ["a", "c"]
    assert store.unfinished_recipients("broadcast:sale", "c", 2) == ["d"]
    assert store.unfinished_recipients("broadcast:sale", "d", 2) == []
    assert store.unfinished_recipients("broadcast:sale", None, 5, ("pending",)) == ["a", "d"]


def test_skip_if_pending_leaves_a_delivery_claimed_or_finished_as_it_is(store: Store) -> None:
    for key in ("waiting", "claimed", "sent"):
        begin(store, key, user_id=key)
    store.claim_delivery("claimed", {})
    store.claim_delivery("sent", {})
    store.finish_delivery("sent", "sent")
    skipped = {
        key: store.skip_if_pending(key, "broadcast cancelled")
        for key in ("waiting", "claimed", "sent")
    }
    assert skipped == {"waiting": True, "claimed": False, "sent": False}
    status = {k: (d.status, d.reason) for k in skipped for d in store.deliveries_for_user(k)}
    assert status == {
        "waiting": ("skipped", "broadcast cancelled"),
        "claimed": ("sending", None),
        "sent": ("sent", None),
    }
    with pytest.raises(NotFound):
        store.skip_if_pending("nothing", "broadcast cancelled")


def test_users_are_walked_after_a_user_id(store: Store) -> None:
    for user in ("a", "b", "c"):
        store.update_traits(user, {}, [])
    assert [u.user_id for u in store.iter_users(page_size=1, after="a")] == ["b", "c"]

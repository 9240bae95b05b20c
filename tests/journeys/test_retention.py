"""Event retention: the windows in use, the plan they make, and the store's batches of
deletion on SQLite and PostgreSQL (only routed events past the plan's cutoffs go, and on
PostgreSQL a batch locks rows, never the table)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from journeys.facts import CONDITION
from journeys.localtime import ACTIVE_HOUR_HISTORY
from journeys.model import Journey
from journeys.retention import RetentionPlan, retention_plan, windows_in_use
from journeys.store import Store
from tests.factories import aged_event, enroll, finish

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HELLO = {"type": "message", "channel": "in_app", "content": {"body": "Hi"}}


def journey(journey_id: str = "j", **parts: Any) -> dict[str, Any]:
    """A valid journey document: entry on `Signed Up`, one message, and `parts` on top."""
    return {
        "id": journey_id,
        "name": journey_id,
        "entry": {"event": "Signed Up"},
        "start": "hello",
        "nodes": {"hello": HELLO},
        **parts,
    }


def counted(event: str, within: str | None = None, where: Any = None) -> dict[str, Any]:
    """An `event_count` condition: at least one `event` (within, where)."""
    count: dict[str, Any] = {"event": event}
    if within is not None:
        count["within"] = within
    if where is not None:
        count["where"] = where
    return {"event_count": count, "op": "gte", "value": 1}


def test_every_place_a_journey_reads_past_events_is_a_window() -> None:
    document = journey(
        entry={"event": "Signed Up", "audience": counted("Opened", "30d")},
        exit=[{"when": counted("Refunded", "300d")}],
        goal={"event": "Purchased", "within": "7d", "where": counted("Viewed", "2d")},
        nodes={
            "hello": {**HELLO, "next": "b"},
            "b": {"type": "branch", "paths": [{"when": {"not": counted("Clicked")}, "next": "w"}]},
            "w": {
                "type": "wait_for_event",
                "timeout": "1d",
                "paths": [{"event": "Paid", "where": {"any": [counted("Opened", "90d")]}}],
            },
        },
    )  # fmt: skip
    nested = counted("Searched", "10d", where=counted("Compared", "365d"))
    windows = windows_in_use(
        [Journey.model_validate(document)], [CONDITION.validate_python(nested)]
    )
    assert windows == {
        "Opened": timedelta(days=90),
        "Refunded": timedelta(days=300),
        "Viewed": timedelta(days=2),
        "Clicked": None,
        "Searched": timedelta(days=10),
        "Compared": timedelta(days=365),
    }


def test_send_time_optimisation_reads_every_event_of_its_history() -> None:
    optimal = {"type": "delay", "until": {"time": "optimal", "fallback": "10:00"}}
    document = journey(
        nodes={
            "hello": {**HELLO, "next": "d"},
            "d": optimal,
        }
    )  # fmt: skip
    assert windows_in_use([Journey.model_validate(document)], []) == {"*": ACTIVE_HOUR_HISTORY}
    assert windows_in_use([Journey.model_validate(journey())], []) == {}


def test_the_plan_keeps_the_longest_of_retention_and_the_windows() -> None:
    plan = retention_plan(
        30,
        NOW,
        {"Opened": timedelta(days=90), "Viewed": timedelta(days=2), "Purchased": None},
    )
    assert plan == RetentionPlan(
        cutoff=NOW - timedelta(days=30),
        kept={"Opened": NOW - timedelta(days=90), "Purchased": None},
    )
    day = timedelta(days=1)
    assert plan.expired("Viewed", NOW - 31 * day)
    assert not plan.expired("Viewed", NOW - 29 * day)
    assert plan.expired(None, NOW - 31 * day)  # identify calls have no name
    assert not plan.expired("Opened", NOW - 89 * day)
    assert plan.expired("Opened", NOW - 91 * day)
    assert not plan.expired("Purchased", NOW - 5000 * day)


def test_a_window_over_every_event_moves_the_cutoff_or_keeps_everything() -> None:
    longer = retention_plan(30, NOW, {"*": timedelta(days=60), "Opened": timedelta(days=45)})
    assert longer == RetentionPlan(cutoff=NOW - timedelta(days=60), kept={})
    assert retention_plan(30, NOW, {"*": None, "Opened": timedelta(days=45)}) == RetentionPlan(
        cutoff=None
    )
    assert not RetentionPlan(cutoff=None).expired("Opened", NOW - timedelta(days=5000))


# --- the store --------------------------------------------------------------------------------

DAY = timedelta(days=1)


def old_event(store: Store, name: str | None, age: timedelta, *, routed: timedelta | None) -> str:
    """An event of Ada's `age` old, routed `routed` ago (None: left in the outbox)."""
    routed_at = None if routed is None else NOW - routed
    return aged_event(store, "ada", name, NOW - age, routed_at=routed_at)


def in_tokyo(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
    dbapi_connection.commit()


def remaining(store: Store) -> set[str]:
    return {e.message_id for e in store.events_for_user("ada")}


@pytest.mark.store_backends("sqlite", "postgresql")
def test_batches_delete_only_routed_events_the_plan_lets_go(store: Store) -> None:
    if store.engine.dialect.name == "postgresql":
        # Columns hold naive UTC: a session in another zone must compare them all the same.
        event.listen(store.engine, "connect", in_tokyo)
        store.engine.dispose()
    cutoff = NOW - 30 * DAY
    plan = RetentionPlan(cutoff=cutoff, kept={"Opened": NOW - 90 * DAY, "Paid": None})
    gone = {
        old_event(store, "Viewed", 40 * DAY, routed=40 * DAY),
        old_event(store, None, 300 * DAY, routed=35 * DAY),
        old_event(store, "Opened", 100 * DAY, routed=99 * DAY),
        old_event(store, "Viewed", 31 * DAY, routed=31 * DAY),
    }
    outbox = old_event(store, "Viewed", 400 * DAY, routed=None)
    kept = {
        outbox,
        old_event(store, "Viewed", 40 * DAY, routed=20 * DAY),  # routed lately
        old_event(store, "Viewed", 20 * DAY, routed=31 * DAY),  # its time is recent
        old_event(store, "Opened", 60 * DAY, routed=60 * DAY),  # a window reads it
        old_event(store, "Paid", 900 * DAY, routed=900 * DAY),  # a window reads it for good
    }
    batches = []
    after = None
    while True:
        batch = store.delete_expired_events(
            cutoff, plan.expired, after=after, kept_for_good=plan.kept_for_good, limit=2
        )
        batches.append((batch.scanned, batch.deleted))
        if batch.last is None:
            break
        after = batch.last
    # Seven routed before the cutoff, less the one kept for good (never read again), two at a
    # time, in routing order; then none is left.
    assert plan.kept_for_good == ["Paid"]
    assert [scanned for scanned, _ in batches] == [2, 2, 2, 0]
    assert sum(deleted for _, deleted in batches) == len(gone)
    assert remaining(store) == kept
    assert [e.message_id for e in store.unrouted_events()] == [outbox]


@pytest.mark.store_backends("sqlite", "postgresql")
def test_versions_in_use_are_those_runs_may_still_evaluate(store: Store) -> None:
    def published(journey_id: str, versions: int) -> None:
        for _ in range(versions):
            store.save_draft(journey_id, journey(journey_id))
            store.publish(journey_id)

    published("live", 3)
    published("paused", 1)
    store.set_status("paused", "paused")
    published("archived", 1)
    store.set_status("archived", "archived")
    store.save_draft("draft", journey("draft"))
    for number, (journey_id, version) in enumerate([("live", 1), ("live", 2), ("archived", 1)]):
        enroll(
            store, enrollment_id=f"e{number}", user_id="ada", journey_id=journey_id,
            version=version, workflow_id=f"w{number}", entered_at=NOW,
        )  # fmt: skip
    finish(store, "e1", "completed", NOW)
    in_use = [(v.journey_id, v.version) for v in store.versions_in_use()]
    assert in_use == [("live", 1), ("live", 3), ("paused", 1)]


@pytest.mark.store_backends("postgresql")
def test_a_batch_locks_rows_not_the_table_on_postgresql(store: Store) -> None:
    cutoff = NOW - 30 * DAY
    plan = RetentionPlan(cutoff=cutoff)
    doomed = old_event(store, "Viewed", 40 * DAY, routed=40 * DAY)
    seen: dict[str, Any] = {}

    def while_deleting(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        """Inside the batch's transaction, right after its DELETE: what it locks, and whether
        another session can append an event meanwhile."""
        if not statement.lstrip().upper().startswith("DELETE FROM EVENTS"):
            return
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with store.engine.connect() as other:
            seen["modes"] = set(
                other.execute(
                    text(
                        "SELECT mode FROM pg_locks WHERE pid = :pid "
                        "AND relation = 'events'::regclass"
                    ),
                    {"pid": pid},
                ).scalars()
            )
        appending = threading.Thread(
            target=lambda: seen.update(new=old_event(store, "Later", DAY, routed=None))
        )
        appending.start()
        appending.join(timeout=10)
        seen["appended while open"] = not appending.is_alive()
        seen["appending"] = appending  # blocked by a table lock: it ends once the batch does

    event.listen(store.engine, "after_cursor_execute", while_deleting)
    try:
        batch = store.delete_expired_events(cutoff, plan.expired)
    finally:
        event.remove(store.engine, "after_cursor_execute", while_deleting)
        seen["appending"].join()
    assert batch.deleted == 1
    assert seen["appended while open"]
    # ROW EXCLUSIVE (and ACCESS SHARE, for the select) conflict with no insert or read.
    assert seen["modes"] <= {"RowExclusiveLock", "AccessShareLock"}
    assert "RowExclusiveLock" in seen["modes"]
    assert remaining(store) == {seen["new"]}
    assert doomed not in remaining(store)

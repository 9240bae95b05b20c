"""Entry limits and holdout marks in the store, on SQLite and on PostgreSQL: admissions are
exact under a race and idempotent per run; the statistics count the runs kept out and the
holdout's conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from journeys.contracts import EnrollInput, ProgressInput
from journeys.errors import NotFound
from journeys.model import EntryLimit
from journeys.store import Store
from tests import factories
from tests.journeys.test_store import document, race

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN_PER_HOUR = EntryLimit(count=10, per="1h")


def admit(store: Store, run: str, at: datetime = T0, limit: EntryLimit = TEN_PER_HOUR) -> bool:
    return factories.admit(store, "welcome", run, at, limit)


@pytest.fixture
def journey(store: Store) -> str:
    store.save_draft("welcome", document())
    return "welcome"


def test_admits_up_to_the_count_then_refuses(store: Store, journey: str) -> None:
    answers = [admit(store, f"r{i}", T0 + timedelta(seconds=i)) for i in range(12)]
    assert answers == [True] * 10 + [False] * 2
    assert store.journey_counts(journey)["limited"] == 2


def test_the_window_rolls(store: Store, journey: str) -> None:
    limit = EntryLimit(count=2, per="1h")
    assert admit(store, "a", T0, limit)
    assert admit(store, "b", T0 + timedelta(minutes=30), limit)
    assert not admit(store, "c", T0 + timedelta(minutes=59), limit)
    # An hour after the first admission its place is free again; the second's is not.
    assert admit(store, "d", T0 + timedelta(hours=1), limit)
    assert not admit(store, "e", T0 + timedelta(hours=1, minutes=1), limit)
    # Refusals take no place.
    assert admit(store, "f", T0 + timedelta(hours=1, minutes=30), limit)


def test_asking_again_gets_the_first_answer(store: Store, journey: str) -> None:
    limit = EntryLimit(count=1, per="1d")
    assert admit(store, "first", T0, limit)
    assert not admit(store, "second", T0, limit)
    # Retries (later, even after the window) neither take a second place nor lose the first.
    assert admit(store, "first", T0 + timedelta(days=2), limit)
    assert not admit(store, "second", T0 + timedelta(days=2), limit)
    assert admit(store, "third", T0 + timedelta(days=2), limit)
    assert store.journey_counts(journey)["limited"] == 1


def test_racing_admissions_let_in_exactly_the_count(store: Store, journey: str) -> None:
    limit = EntryLimit(count=5, per="1h")
    answers = race(12, lambda i: admit(store, f"r{i}", T0, limit))
    assert answers.count(True) == 5
    # The same runs racing again (retries) change nothing.
    assert race(12, lambda i: admit(store, f"r{i}", T0, limit)) == answers
    assert store.journey_counts(journey)["limited"] == 7


def test_an_unknown_journey_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        admit(store, "r1")


def test_holdout_counts_by_mark(store: Store, journey: str) -> None:
    marks = ["holdout", "holdout", None, None, None, "global holdout"]
    for i, mark in enumerate(marks):
        enrollment = EnrollInput(
            enrollment_id=f"e{i}",
            user_id=f"u{i}",
            journey_id=journey,
            version=1,
            workflow_id=f"w{i}",
            entered_at=T0,
            holdout=mark,
        )
        steps = [ProgressInput(enrollment_id=f"e{i}", at=T0, converted=True)] if i % 2 else []
        store.record_steps(steps, enrollment=enrollment)
    assert store.holdout_counts(journey) == {
        "holdout": (2, 1),
        None: (3, 1),
        "global holdout": (1, 1),
    }


def test_a_refused_run_counts_as_started(store: Store, journey: str) -> None:
    limit = EntryLimit(count=1, per="1h")
    assert admit(store, "in", T0, limit)
    assert not admit(store, "out", T0, limit)
    started = {"w-in": T0, "w-out": T0, "w-other": T0}
    # Runs the relay started: both asked for their place, so both have run their first task.
    assert store.started_runs(started) == {"w-in", "w-out"}
    # An admission from before this start belongs to an earlier run of the same workflow id.
    assert store.started_runs({"w-out": T0 + timedelta(minutes=1)}) == set()

"""A run's enrollment recorded with its first steps is written once, in its final state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from journeys.contracts import EnrollInput, ProgressInput
from journeys.store import Store
from tests.journeys.test_store import race

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")


@pytest.fixture
def writes(store: Store) -> Iterator[list[str]]:
    """The INSERT, UPDATE and DELETE statements the store sends from now on."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            sent.append(" ".join(statement.split()[:3]))

    event.listen(store.engine, "before_cursor_execute", record)
    yield sent
    event.remove(store.engine, "before_cursor_execute", record)


def test_an_enrollment_that_ends_in_its_first_record_is_inserted_as_it_ends(
    store: Store, writes: list[str]
) -> None:
    at = datetime(2026, 12, 2, 12, tzinfo=UTC)
    enrollment = EnrollInput(
        enrollment_id="e1", user_id="u1", journey_id="j", version=1, workflow_id="w1", entered_at=at
    )
    store.record_steps(
        [
            ProgressInput(enrollment_id="e1", node_id="notify", at=at),
            ProgressInput(enrollment_id="e1", ended="completed", at=at),
        ],
        enrollment=enrollment,
    )
    assert [w for w in writes if "enrollments" in w] == ["INSERT INTO enrollments"]
    assert [w for w in writes if "node_visits" in w] == ["INSERT INTO node_visits"]
    [recorded] = store.enrollments_for_user("u1")
    assert (recorded.status, recorded.current_node, recorded.ended_at) == ("completed", None, at)
    assert store.node_counts("j") == {"notify": {"reached": 1, "waiting": 0}}


def test_workers_recording_one_new_enrollment_at_once_record_it_once(store: Store) -> None:
    """A retried activity racing its first attempt: one enrollment, each visit once, and every
    attempt succeeds (on PostgreSQL the losers' inserts conflict and are tried once more)."""
    at = datetime(2026, 12, 3, 6, tzinfo=UTC)
    enrollment = EnrollInput(
        enrollment_id="e1", user_id="u1", journey_id="j", version=1, workflow_id="w1", entered_at=at
    )
    steps = [
        ProgressInput(enrollment_id="e1", node_id="wait", at=at),
        ProgressInput(enrollment_id="e1", node_id="notify", at=at),
        ProgressInput(enrollment_id="e1", variant="bold", at=at),
    ]
    race(6, lambda _: store.record_steps(steps, enrollment=enrollment))
    [recorded] = store.enrollments_for_user("u1")
    assert (recorded.status, recorded.current_node) == ("active", "notify")
    assert recorded.variant == "bold"
    assert store.node_counts("j") == {
        "wait": {"reached": 1, "waiting": 0},
        "notify": {"reached": 1, "waiting": 1},
    }

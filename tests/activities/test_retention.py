"""The retention activity on a real store: it heartbeats where it got to, and an attempt
retried after a crash goes on from the last heartbeat instead of starting over."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.retention import RetentionActivities
from journeys.contracts import RetentionInput, RetentionReport, RoutedAt
from journeys.store import Store
from tests.factories import aged_event


def test_a_retried_attempt_goes_on_from_its_last_heartbeat(store: Store) -> None:
    now = datetime.now(UTC)
    routed = [now - timedelta(days=900 - n) for n in range(4)]
    events = [aged_event(store, "ada", "Viewed", at, routed_at=at) for at in routed]
    ids = {e.message_id: e.id for e in store.events_for_user("ada")}
    # The crashed attempt had got past the first two (which this test left in place).
    reached = RetentionReport(
        cutoff=now, scanned=2, deleted=2, after=RoutedAt(routed_at=routed[1], id=ids[events[1]])
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[reached.model_dump(mode="json")])
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])

    activity = RetentionActivities(store).delete_expired_events
    report = env.run(activity, RetentionInput(batch_size=10))

    assert (report.scanned, report.deleted, report.finished) == (4, 4, True)
    assert [e.message_id for e in store.events_for_user("ada", newest_first=False)] == events[:2]
    assert [beat.after.id for beat in beats] == [ids[events[3]]]

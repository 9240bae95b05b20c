"""Send-time optimisation on the time-skipping server: `delay until {"time": "optimal"}` sends
at the local hour each user is most active, in their own time zone."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.store import Store
from tests.factories import append_event, merge_traits
from tests.workflows.helpers import make_journey, start

JOURNEY = make_journey(
    "best_time",
    {
        "best_time": {
            "type": "delay",
            "until": {"time": "optimal", "fallback": "09:30"},
            "next": "mail",
        },
        "mail": {"type": "message", "channel": "in_app", "content": {"body": "Hi"}},
    },
)


def active_at(store: Store, user_id: str, zone: ZoneInfo, now: datetime, hour: int) -> None:
    """A week of visits, most of them at `hour` local time and a few at other hours."""
    local = now.astimezone(zone)
    for days in range(1, 8):
        day = (local - timedelta(days=days)).date()
        for when in (hour, hour, (hour + 5) % 24):
            at = datetime(day.year, day.month, day.day, when, 10, tzinfo=zone)
            append_event(
                store,
                message_id=uuid.uuid4().hex,
                user_id=user_id,
                type="track",
                name="Product Viewed",
                properties={},
                timestamp=at,
            )


async def test_each_user_gets_the_message_at_their_most_active_local_hour(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    now = await time_skipping.get_current_time()
    zones = {
        "new-york": "America/New_York",
        "paris": "Europe/Paris",
        "tokyo": "Asia/Tokyo",
        "thin": "Australia/Sydney",
    }
    for user_id, zone in zones.items():
        merge_traits(store, user_id, {"timezone": zone})
        if user_id != "thin":  # one visit only: too little to know; the fallback applies
            active_at(store, user_id, ZoneInfo(zone), now, hour=19)
    append_event(
        store,
        message_id="once",
        user_id="thin",
        type="track",
        name="Viewed",
        properties={},
        timestamp=now,
    )
    handles = [await start(time_skipping, task_queue, JOURNEY, user_id) for user_id in zones]
    for handle in handles:
        await handle.result()
    for user_id, zone in zones.items():
        [enrollment] = store.enrollments_for_user(user_id)
        assert enrollment.ended_at is not None
        local = enrollment.ended_at.astimezone(ZoneInfo(zone))
        expected = (9, 30) if user_id == "thin" else (19, 0)
        assert (local.hour, local.minute) == expected, user_id
        assert timedelta(0) < enrollment.ended_at - enrollment.entered_at <= timedelta(days=1)
        traits = store.get_user(user_id).traits  # type: ignore[union-attr]
        assert traits.get("most_active_hour") == (None if user_id == "thin" else 19)

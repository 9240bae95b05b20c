"""The scheduled segment sweep against a real dev server and store."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy, ScheduleRange
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import (
    PREDICTION_SCHEDULE_ID,
    RETENTION_SCHEDULE_ID,
    RETENTION_WORKFLOW_TYPE,
    SWEEP_SCHEDULE_ID,
    SweepInput,
    SweepResult,
    workflow_id,
)
from journeys.store import Store
from tests.factories import append_event, merge_traits
from worker.main import build_worker, ensure_schedules
from workflows.segment_sweep import SegmentSweepWorkflow


async def test_sweep_starts_users_a_time_based_segment_gained(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    task_queue = f"sweep-{uuid.uuid4().hex[:8]}"
    segment = f"quiet-{uuid.uuid4().hex[:6]}"
    quiet = {"event_count": {"event": "*", "within": "1h"}, "op": "eq", "value": 0}
    store.put_segment(segment, "Quiet for an hour", quiet)
    journey = f"win-back-{uuid.uuid4().hex[:6]}"
    store.save_draft(
        journey,
        {
            "id": journey,
            "name": "Win back",
            "entry": {"segment": segment},
            "start": "miss-you",
            "nodes": {
                "miss-you": {"type": "message", "channel": "in_app", "content": {"body": "Hi"}}
            },
        },
    )
    store.publish(journey)
    merge_traits(store, "idle", {})
    merge_traits(store, "busy", {})
    append_event(
        store, message_id=uuid.uuid4().hex, user_id="busy", type="track", name="Page Viewed",
        properties={}, timestamp=datetime.now(UTC),
    )  # fmt: skip

    async with build_worker(dev_server.client, store, task_queue, executor):
        sweep_id = f"sweep-{uuid.uuid4().hex[:6]}"
        first = await dev_server.client.execute_workflow(
            SegmentSweepWorkflow.run, SweepInput(), id=sweep_id, task_queue=task_queue
        )
        assert isinstance(first, SweepResult)
        assert first.started == 1
        handle = dev_server.client.get_workflow_handle(workflow_id(journey, "idle"))
        await handle.result()
        assert [m.content["body"] for m in store.inbox("idle")] == ["Hi"]
        assert store.enrollments_for_user("busy") == []

        again = await dev_server.client.execute_workflow(
            SegmentSweepWorkflow.run, SweepInput(), id=f"{sweep_id}-2", task_queue=task_queue
        )
        assert again.started == 0  # re-entry "never"


async def test_the_schedules_are_created_once(dev_server: WorkflowEnvironment) -> None:
    await ensure_schedules(dev_server.client, "journeys-schedule-test")
    await ensure_schedules(dev_server.client, "journeys-schedule-test")
    sweep = dev_server.client.get_schedule_handle(SWEEP_SCHEDULE_ID)
    assert (await sweep.describe()).schedule.spec.intervals[0].every.total_seconds() == 15 * 60
    predictions = dev_server.client.get_schedule_handle(PREDICTION_SCHEDULE_ID)
    [nightly] = (await predictions.describe()).schedule.spec.calendars
    assert (list(nightly.hour), list(nightly.minute)) == ([ScheduleRange(3, 3)], [ScheduleRange(0)])
    retention = await dev_server.client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
    [after_predictions] = retention.schedule.spec.calendars
    assert list(after_predictions.hour) == [ScheduleRange(4, 4)]
    assert retention.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    action = retention.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == RETENTION_WORKFLOW_TYPE
    await sweep.delete()
    await predictions.delete()
    await dev_server.client.get_schedule_handle(RETENTION_SCHEDULE_ID).delete()

"""What operators see of a wait: every timer named in the Temporal UI's timeline
(`checkout: up to 1h for Checkout Started`), and the run's current details and `state` saying
the same with when the wait ends. Runs started before `lean-steps` name theirs too."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from activities.channels import embedded_channels
from activities.journey import JourneyActivities
from journeys.contracts import STATE_QUERY, StateView
from journeys.durations import as_written
from journeys.store import Store
from tests.workflows.helpers import make_journey, reached, send, start, workflow_task_failures
from workflows import client
from workflows import journey as interpreter
from workflows.journey import JourneyWorkflow
from workflows.patches import PreLeanSteps

ENDS = " · ends "

JOURNEY = make_journey(
    "browsing",
    {
        "browsing": {
            "type": "wait_for_inactivity",
            "duration": "PT30M",
            "events": ["Product Viewed"],
            "next": "checkout",
        },
        "checkout": {
            "type": "wait_for_event",
            "paths": [{"event": "Checkout Started"}, {"event": "Order Completed"}],
            "timeout": "1h",
            "on_timeout": "pause",
        },
        "pause": {"type": "delay", "duration": "PT2H", "next": "morning"},
        "morning": {
            "type": "delay",
            "until": {"time": "10:00", "weekdays": ["sat"], "timezone": "Asia/Tokyo"},
            "next": "mail",
        },
        # Saturday 10:00 in Tokyo is 01:00 UTC: inside these quiet hours.
        "mail": {"type": "message", "channel": "in_app", "content": {"body": "Hi"}},
    },
    settings={"quiet_hours": {"start": "00:30", "end": "03:00"}},
)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("24h", "24h"),
        (" 7d", "7d"),
        ("PT4H", "4h"),
        ("P3D", "3d"),
        ("PT1H30M", "1h 30m"),
        ("PT90S", "1m 30s"),
        ("PT0.5S", "0.5s"),
        ("P1DT0.5S", "1d 0.5s"),
    ],
)
def test_durations_show_as_written_iso_ones_shortened(written: str, shown: str) -> None:
    assert as_written(written) == shown


async def timer_summaries(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The summary of every timer the run started, in order."""
    converter = env.client.data_converter.payload_converter
    return [
        converter.from_payload(history_event.user_metadata.summary, str)
        async for history_event in handle.fetch_history_events()
        if history_event.HasField("timer_started_event_attributes")
    ]


async def waiting_for(handle: WorkflowHandle[Any, Any]) -> tuple[str, datetime]:
    """What the run says it waits for (the same in `state` and the current details), and the
    deadline the details give."""
    state = await handle.query(STATE_QUERY, result_type=StateView)
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert state.waiting_for is not None
    assert metadata.current_details == state.waiting_for
    what, ends = state.waiting_for.split(ENDS)
    return what, datetime.fromisoformat(ends)


async def test_every_wait_names_its_timer_and_says_until_when(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await start(time_skipping, task_queue, JOURNEY)
    await reached(handle, "browsing")
    what, ends = await waiting_for(handle)
    assert what == "browsing: 30m without activity (Product Viewed)"
    entered = await time_skipping.get_current_time()
    assert timedelta(minutes=29) < ends - entered <= timedelta(minutes=30)

    await time_skipping.sleep(timedelta(minutes=10))
    viewed = await send(time_skipping, handle, "Product Viewed")
    async with asyncio.timeout(10):  # the details follow the deadline the event moved
        while (moved := await waiting_for(handle))[1] == ends:
            await asyncio.sleep(0.02)
    assert moved == (what, (viewed.timestamp + timedelta(minutes=30)).replace(microsecond=0))

    assert (await handle.result()).path == ["browsing", "checkout", "pause", "morning", "mail"]
    assert await timer_summaries(time_skipping, handle) == [
        "browsing: 30m without activity",
        "browsing: 30m without activity",  # the one timer fired early, once: armed again
        "checkout: up to 1h for Checkout Started or Order Completed",
        "pause: 2h delay",
        "morning: until sat 10:00 Asia/Tokyo",
        "mail: quiet hours until 03:00 UTC",
    ]


async def test_runs_started_before_lean_steps_name_their_timers_too(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    journey = make_journey(
        "checkout",
        {
            "checkout": {
                "type": "wait_for_event",
                "paths": [{"event": "Checkout Started"}],
                "timeout": "1h",
            }
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        # New runs start as runs did before revisions, and take the branch of runs started
        # before `lean-steps` (outside the sandbox, which would import the interpreter afresh).
        patch.setattr(client, "REVISION", None)
        patch.setattr(interpreter, "choose_run_style", lambda where, revision: PreLeanSteps())
        async with Worker(
            time_skipping.client,
            task_queue=task_queue,
            workflows=[JourneyWorkflow],
            activities=JourneyActivities(store, embedded_channels()).all(),
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await start(time_skipping, task_queue, journey)
            await reached(handle, "checkout")
            await send(time_skipping, handle, "Product Viewed")  # wakes the wait: a new timer
            assert (await handle.result()).status == "completed"
    assert await workflow_task_failures(time_skipping.client, handle.id) == []
    assert await timer_summaries(time_skipping, handle) == 2 * [
        "checkout: up to 1h for Checkout Started"
    ]

    # Each step recorded at once, as before the patch; and no marker, so the history replays
    # on the interpreter as deployed, which takes this branch for it.
    recorded = []
    async for history_event in handle.fetch_history_events():
        details = history_event.marker_recorded_event_attributes.details
        if "data" in details:
            recorded.append(json.loads(details["data"].payloads[0].data)["activity_type"])
        assert "patch-data" not in details
    assert recorded == ["enroll", "record_progress", "record_progress"]
    await Replayer(
        workflows=[JourneyWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(await handle.fetch_history())

"""Building journeys and driving runs in workflow tests."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.journey import JourneyActivities
from journeys.contracts import (
    EVENT_SIGNAL,
    STATE_QUERY,
    EntryContext,
    JourneyEvent,
    JourneyOutcome,
    StateView,
)
from journeys.model import Journey
from workflows.client import start_journey
from workflows.journey import JourneyWorkflow


def make_journey(start: str, nodes: dict[str, Any], **top: Any) -> Journey:
    """A valid journey around `nodes`; `top` overrides top-level fields."""
    document: dict[str, Any] = {
        "id": "test-journey",
        "name": "Test journey",
        "entry": {"event": "Added to Cart"},
        "start": start,
        "nodes": nodes,
        **top,
    }
    return Journey.model_validate(document)


def event(name: str, message_id: str | None = None, **properties: Any) -> JourneyEvent:
    """A track event happening now."""
    return JourneyEvent(
        message_id=message_id or uuid.uuid4().hex,
        name=name,
        properties=properties,
        timestamp=datetime.now(UTC),
    )


async def start(
    env: WorkflowEnvironment,
    task_queue: str,
    journey: Journey,
    user_id: str = "u1",
    *,
    version: int = 1,
    entry: dict[str, Any] | None = None,
    continue_as_new_after: int | None = None,
) -> WorkflowHandle[object, JourneyOutcome]:
    """Start a user's run with an entry event at the server's current time."""
    now = await env.get_current_time()
    return await start_journey(
        env.client,
        journey=journey,
        version=version,
        user_id=user_id,
        entry=EntryContext(
            message_id=f"entry-{user_id}",
            event="Added to Cart",
            properties=entry or {},
            timestamp=now,
        ),
        task_queue=task_queue,
        continue_as_new_after=continue_as_new_after,
    )


async def send(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], name: str, **kwargs: Any
) -> JourneyEvent:
    """Signal an event stamped with the server's current time."""
    message_id = kwargs.pop("message_id", None)
    sent = event(name, message_id, **kwargs).model_copy(
        update={"timestamp": await env.get_current_time()}
    )
    await handle.signal(EVENT_SIGNAL, sent)
    return sent


async def workflow_task_failures(client: Client, workflow_id: str) -> list[str]:
    """The failures of the latest run's workflow tasks (a crash or non-determinism).

    `UNHANDLED_COMMAND` is left out: it is the server refusing to close a run while a signal
    is pending, and the SDK retries the task with the signal, which is the point.
    """
    handle = client.get_workflow_handle(workflow_id)
    return [
        attributes.failure.message
        async for history_event in handle.fetch_history_events()
        if history_event.HasField("workflow_task_failed_event_attributes")
        and (attributes := history_event.workflow_task_failed_event_attributes).cause
        != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    ]


async def reached(handle: WorkflowHandle[Any, Any], node_id: str, timeout: float = 10.0) -> None:
    """Wait (in real time) until the run waits at `node_id`. The server answers a query once
    the workflow task in flight has completed, so what the run published before it started
    waiting (`JourneyNode`, the store's records) is in place too."""
    async with asyncio.timeout(timeout):
        while True:
            state = await handle.query(STATE_QUERY, result_type=StateView)
            if state.current_node == node_id and state.waiting_for is not None:
                return
            await asyncio.sleep(0.02)


async def run_delivering_with(
    env: WorkflowEnvironment,
    task_queue: str,
    executor: ThreadPoolExecutor,
    journey: Journey,
    *,
    activities: JourneyActivities,
    deliver: Callable[..., Any],
) -> JourneyOutcome:
    """Run `journey` for u1 to its end on a worker of `activities` whose `deliver` activity is
    `deliver` instead."""
    others = [a for a in activities.all() if a.__name__ != "deliver"]
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow],
        activities=[*others, deliver],
        activity_executor=executor,
    ):
        return await (await start(env, task_queue, journey)).result()


HISTORIES = Path(__file__).with_name("histories")


async def replay_stored_histories(
    folder: str,
    name: str,
    workflow: type,
    record: Callable[[], Awaitable[WorkflowHandle[Any, Any]]],
) -> None:
    """Replay every history stored in `histories/{folder}` on today's `workflow`; with
    `JOURNEYS_REFRESH_HISTORIES=1`, first store the one of the run `record` makes, as
    `{name}.json` (keep an older one beside it, renamed `{name}.v1.json`, after an intended
    change behind `workflow.patched`)."""
    stored = HISTORIES / folder
    if os.environ.get("JOURNEYS_REFRESH_HISTORIES") == "1":
        handle = await record()
        await handle.result()
        history = await handle.fetch_history()
        stored.mkdir(exist_ok=True)
        text = json.dumps(json.loads(history.to_json()), indent=1)
        (stored / f"{name}.json").write_text(text)
    files = sorted(stored.glob("*.json"))
    assert files, f"no stored {folder} history: run with JOURNEYS_REFRESH_HISTORIES=1"
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    for stored_file in files:
        await replayer.replay_workflow(WorkflowHistory.from_json(name, stored_file.read_text()))

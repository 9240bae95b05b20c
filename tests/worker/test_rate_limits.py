"""A channel's rate limit holds across worker processes: 300 text messages at 20/s through two
`journeys worker` processes reach the SMS provider at most 20 in any second, every one of them
once, and the messages waiting for their turn say so in their runs and their deliveries."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import text
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import JourneyOutcome
from journeys.model import Journey
from journeys.store import Store
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.receivers import HttpReceiver, Reply
from tests.reliability.helpers import WorkerProcess
from tests.worker.test_scale_out import stopped_cleanly
from tests.workflows.helpers import make_journey, reached, send, start

USERS = 300
RATE = 20
WAITING = "waiting for a slot"

log = logging.getLogger(__name__)


def most_in_one_second(moments: list[float]) -> int:
    """The most of these moments (seconds, sorted) in any window of one second."""
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def first_waiting(store: Store) -> str:
    """The reason of the first delivery seen waiting for its turn (polled from before the runs
    start, so however fast they go, one is seen)."""
    query = text("SELECT reason FROM deliveries WHERE waits_until IS NOT NULL LIMIT 1")

    def look() -> object:
        with store.engine.connect() as connection:
            return connection.execute(query).scalar()

    while (reason := await asyncio.to_thread(look)) is None:
        await asyncio.sleep(0.05)
    return str(reason)


async def all_at_once(
    env: WorkflowEnvironment, task_queue: str, journey: Journey, users: list[str]
) -> list[WorkflowHandle[object, JourneyOutcome]]:
    """Start every user's run, then let them all go at once: the runs wait for a "Go" event
    first, so however slowly a busy machine starts them, their messages come in a burst.
    Starts and signals go a few at a time (300 at once overwhelm a dev server on a busy
    machine)."""
    few = asyncio.Semaphore(20)

    async def started(user: str) -> WorkflowHandle[object, JourneyOutcome]:
        async with few:
            return await start(env, task_queue, journey, user)

    async def go(handle: WorkflowHandle[object, JourneyOutcome]) -> None:
        async with few:
            await send(env, handle, "Go")

    handles = await asyncio.gather(*(started(user) for user in users))
    for handle in handles:
        await reached(handle, "ready", timeout=60)
    await asyncio.gather(*(go(handle) for handle in handles))
    return handles


async def test_two_workers_send_300_sms_at_20_a_second_each_once(
    dev_server: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 420
    task_queue = f"rate-{uuid.uuid4().hex[:8]}"
    store = Store(database_url)
    save_workspace_settings(store, WorkspaceSettings(rate_limits={"sms": f"{RATE}/s"}))
    users = [f"user-{n:03d}" for n in range(USERS)]
    for n, user in enumerate(users):
        store.update_traits(user, {"phone": f"+1555{n:07d}"}, [])
    journey = make_journey(
        "ready",
        {
            "ready": {
                "type": "wait_for_event",
                "paths": [{"event": "Go", "next": "text"}],
                "timeout": "1h",
            },
            "text": {"type": "message", "channel": "sms", "content": {"body": "Hi {{ user.id }}"}},
        },
        id="rate-limited",
    )
    with HttpReceiver(Reply.json({"sid": "SM1"}), idempotent=True) as sms:
        environment = {
            **os.environ,
            "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_DATABASE_URL": database_url,
            "JOURNEYS_UNSUBSCRIBE_SECRET": "rate-limit-test",
            "JOURNEYS_SMS_URL": f"{sms.url}/Messages.json",
        }
        async with AsyncExitStack() as stack:
            workers = []
            for name in ("worker-1", "worker-2"):
                worker = WorkerProcess(name, environment, tmp_path)
                stack.push_async_callback(stopped_cleanly, worker)
                await worker.run(timeout=deadline - time.monotonic())
                workers.append(worker)
            watching = asyncio.create_task(first_waiting(store))
            handles = await all_at_once(dev_server, task_queue, journey, users)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)),
                timeout=deadline - time.monotonic(),
            )
            assert [outcome.path for outcome in outcomes] == [["ready", "text"]] * USERS
            # Messages held back said so in their deliveries while they waited.
            assert watching.done(), "no message was seen waiting for its turn"
            assert watching.result() == f"sms rate limit {RATE}/s: {WAITING}"
            # Both processes ran the runs (histories name the worker, pid@host, of each task);
            # the runs held back waited on timers named for the Temporal UI.
            identities: set[str] = set()
            summaries: set[str] = set()
            converter = pydantic_data_converter.payload_converter
            for handle in handles:
                async for event in handle.fetch_history_events():
                    if event.HasField("workflow_task_started_event_attributes"):
                        identities.add(event.workflow_task_started_event_attributes.identity)
                    if event.HasField("timer_started_event_attributes"):
                        summaries.add(converter.from_payload(event.user_metadata.summary, str))
            assert {int(identity.split("@")[0]) for identity in identities} == {
                worker.pid for worker in workers
            }
            assert f"sms rate limit: {WAITING}" in summaries

        # All 300 arrived, each acted on once (a provider honouring `Idempotency-Key` takes a
        # resent request as the first), and what the provider saw, resends too, never held
        # more than 20 in any second by the receiver's clock.
        requests = sms.requests
        acted = sms.deliveries()
        assert len(acted) == USERS
        assert sorted(r.form()["Body"] for r in acted) == sorted(f"Hi {u}" for u in users)
        moments = sorted(r.received_at for r in requests)
        most = most_in_one_second(moments)
        gaps = [b - a for a, b in itertools.pairwise(moments)]
        log.info(
            "%d SMS at %d/s through two workers: %d requests, at most %d in any second, "
            "smallest gap %.1f ms, %.2f s from first to last",
            USERS,
            RATE,
            len(requests),
            most,
            min(gaps) * 1000,
            moments[-1] - moments[0],
        )
        assert most <= RATE
    assert all([d.status for d in store.deliveries_for_user(u)] == ["sent"] for u in users)
    store.close()

"""Admission: a router starts at most `window` runs that are not running yet; a burst waits in
the outbox, and enters as the worker takes the runs."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from journeys.settings import Settings
from journeys.store import Store
from relay import admission
from relay.admission import Admission
from relay.router import EventRouter
from tests.factories import append_event, enroll, finish
from tests.relay.test_router import publish, unique
from worker.main import build_worker


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entered(store: Store, workflow_id: str, at: datetime) -> None:
    """The run of `workflow_id` ran its first task: its enrollment is recorded."""
    enroll(
        store, enrollment_id=f"{workflow_id}:run", user_id=workflow_id, journey_id="j",
        version=1, workflow_id=workflow_id, entered_at=at,
    )  # fmt: skip


async def start(gate: Admission, run: str) -> None:
    """Start a run through the gate (the start itself is instant here)."""
    async with gate.slot(run):
        pass


async def test_a_start_that_fails_gives_its_place_back(store: Store) -> None:
    gate = Admission(store)
    gate.window = 1
    with pytest.raises(RuntimeError):
        async with gate.slot("a"):
            raise RuntimeError("Temporal refused")
    assert gate.starting == 0
    await start(gate, "b")


async def test_a_full_window_holds_starts_until_a_run_is_running(store: Store) -> None:
    clock = Clock()
    gate = Admission(store, clock=clock)
    gate.window = 2
    for run in ("a", "b"):
        await start(gate, run)
    waiting = asyncio.create_task(start(gate, "c"))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    clock.now += 0.1  # a quick start
    entered(store, "a", datetime.now(UTC))
    async with asyncio.timeout(2):
        await waiting
    assert gate.starting == 2  # b, and c now


async def test_an_earlier_enrollment_of_the_same_workflow_id_is_not_this_run(
    store: Store,
) -> None:
    gate = Admission(store)
    gate.window = 1
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    entered(store, "a", long_ago)  # a run that ended long ago
    finish(store, "a:run", "completed", long_ago + timedelta(minutes=1))
    await start(gate, "a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await start(gate, "b")


async def test_a_run_that_ended_at_once_counts_whenever_its_entry_event_happened(
    store: Store,
) -> None:
    gate = Admission(store)
    gate.window = 1
    await start(gate, "a")
    # Its entry event waited in the outbox for ten minutes; the run went straight to its end.
    entered(store, "a", datetime.now(UTC) - timedelta(minutes=10))
    finish(store, "a:run", "completed", datetime.now(UTC))
    async with asyncio.timeout(2):
        await start(gate, "b")


BETWEEN = (admission.QUICK + admission.SLOW) / 2


@pytest.mark.parametrize(
    ("took", "window"), [(admission.SLOW + 1, 140), (BETWEEN, 200), (0.1, 240)]
)
async def test_slow_starts_shrink_the_window_and_between_hold_it_and_quick_ones_grow_it(
    store: Store, took: float, window: int
) -> None:
    clock = Clock()
    gate = Admission(store, clock=clock)
    gate.window = 200
    for n in range(200):
        await start(gate, f"run-{n}")
    clock.now += took
    for n in range(200):
        entered(store, f"run-{n}", datetime.now(UTC))
    await start(gate, "next")  # the window was full: it waited
    assert (gate.starting, gate.window) == (1, window)


async def test_runs_never_seen_running_leave_the_window(store: Store) -> None:
    clock = Clock()
    gate = Admission(store, clock=clock)
    gate.window = admission.SMALLEST
    for n in range(admission.SMALLEST):
        await start(gate, f"lost-{n}")
    clock.now += admission.STALE + 1
    async with asyncio.timeout(2):
        await start(gate, "next")
    assert gate.starting == 1
    assert gate.window == admission.SMALLEST  # never below the floor


async def test_a_burst_waits_in_the_outbox_and_enters_as_the_worker_takes_it(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    settings = Settings(task_queue=f"admission-{uuid.uuid4().hex[:8]}")

    async def connect() -> Client:
        return dev_server.client

    router = EventRouter(store, settings, connect_temporal=connect)
    router._admission.window = 5
    journey = unique("burst")
    publish(store, journey)
    users = [f"shopper-{n}" for n in range(30)]
    for user in users:
        append_event(
            store, message_id=uuid.uuid4().hex, user_id=user, type="track",
            name="Added to Cart", properties={}, timestamp=datetime.now(UTC),
        )  # fmt: skip

    # No worker yet: five runs start, then the router holds the rest back.
    routing = asyncio.create_task(router.route_pending())
    await asyncio.sleep(1.5)
    assert router._admission.starting == 5
    assert not routing.done()
    running = [
        w async for w in dev_server.client.list_workflows(f"JourneyId = '{journey}'")
    ]  # fmt: skip
    assert len(running) <= 5

    async with build_worker(dev_server.client, store, settings.task_queue, executor):
        async with asyncio.timeout(30):
            while await routing:
                routing = asyncio.create_task(router.route_pending())
        assert store.unrouted_events() == []
        async with asyncio.timeout(30):
            while store.journey_counts(journey)["entered"] < len(users):
                await asyncio.sleep(0.1)
    await router.release()

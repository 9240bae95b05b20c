"""`journeys worker`: runs the interpreter workflow and its activities until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.worker import Worker

from activities.journey import JourneyActivities
from activities.sweep import SweepActivities
from journeys.contracts import SWEEP_SCHEDULE_ID, SWEEP_WORKFLOW_TYPE, SweepInput
from journeys.errors import ConfigurationError
from journeys.settings import Settings
from journeys.store import Store
from worker.client import connect
from workflows.journey import JourneyWorkflow
from workflows.segment_sweep import SegmentSweepWorkflow

ACTIVITY_THREADS = 32
SWEEP_EVERY = timedelta(minutes=15)
logger = logging.getLogger("journeys.worker")


def build_worker(
    client: Client, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    """A worker for the journey workflows and activities (store activities run on `executor`)."""
    sweep = SweepActivities(store, client, task_queue)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow, SegmentSweepWorkflow],
        activities=[*JourneyActivities(store).all(), sweep.sweep_segment_entries],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight tasks and stop."""
    store = Store.from_settings(settings)
    try:
        client = await connect(settings)
    except RuntimeError as error:  # the SDK's "Failed client connect"
        raise ConfigurationError(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(TEMPORAL_ADDRESS, namespace {settings.temporal_namespace!r}): {error}"
        ) from None
    await ensure_sweep_schedule(client, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        async with build_worker(client, store, settings.task_queue, executor):
            logger.info(
                "worker polling task queue %r on %s", settings.task_queue, settings.temporal_address
            )
            await stop.wait()
            logger.info("stopping: finishing in-flight tasks")


async def ensure_sweep_schedule(client: Client, task_queue: str) -> None:
    """The Temporal Schedule that re-checks segment-entry journeys (created once)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SWEEP_WORKFLOW_TYPE, SweepInput(), id=SWEEP_SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):  # another worker made it first
        await client.create_schedule(SWEEP_SCHEDULE_ID, schedule)

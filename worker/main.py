"""`journeys worker`: runs the interpreter workflow and its activities until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.journey import JourneyActivities
from journeys.errors import ConfigurationError
from journeys.settings import Settings
from journeys.store import Store
from worker.client import connect
from workflows.journey import JourneyWorkflow

ACTIVITY_THREADS = 32
logger = logging.getLogger("journeys.worker")


def build_worker(
    client: Client, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    """A worker for the journey workflow and activities (activities run on `executor`)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow],
        activities=JourneyActivities(store).all(),
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

"""`journeys worker`: runs the interpreter workflow and its activities until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
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

from activities.channels import Provider, build_channels, closing_channels, embedded_channels
from activities.journey import JourneyActivities
from activities.sweep import SweepActivities
from journeys.contracts import SWEEP_SCHEDULE_ID, SWEEP_WORKFLOW_TYPE, SweepInput
from journeys.errors import ConfigurationError
from journeys.model import Channel
from journeys.settings import Settings
from journeys.store import Store
from journeys.unsubscribe import Links
from worker.client import connect
from workflows.journey import JourneyWorkflow
from workflows.segment_sweep import SegmentSweepWorkflow

ACTIVITY_THREADS = 32
SWEEP_EVERY = timedelta(minutes=15)
logger = logging.getLogger("journeys.worker")


def build_worker(
    client: Client,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    *,
    channels: Mapping[Channel, Provider] | None = None,
    links: Links | None = None,
) -> Worker:
    """A worker for the journey workflows and activities (synchronous activities run on
    `executor`), delivering through `channels` (default: the embedded outbox and inbox, and
    webhooks to public addresses) with unsubscribe links from `links`."""
    sweep = SweepActivities(store, client, task_queue)
    journeys = JourneyActivities(
        store, channels if channels is not None else embedded_channels(), links
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow, SegmentSweepWorkflow],
        activities=[*journeys.all(), sweep.sweep_segment_entries],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight tasks and stop.

    Raises `ConfigurationError` before connecting when a provider's settings are invalid or
    the unsubscribe secret is missing.
    """
    if not settings.unsubscribe_secret:
        raise ConfigurationError(
            "the worker needs JOURNEYS_UNSUBSCRIBE_SECRET (it signs the unsubscribe link of "
            "every email; the API verifies them with the same secret)"
        )
    links = Links(settings.links_base_url, settings.unsubscribe_secret)
    channels = build_channels(settings)
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
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor, closing_channels(channels):
        worker = build_worker(
            client, store, settings.task_queue, executor, channels=channels, links=links
        )
        async with worker:
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

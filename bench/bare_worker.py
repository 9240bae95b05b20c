"""`python -m bench.bare_worker`: a worker for the bare-SDK baselines (`bench.bare`) on
`BENCH_BARE_QUEUE`, configured like `journeys worker` (the same settings, providers, tuning and
activities), until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker

from activities.channels import build_channels, closing_channels
from activities.journey import JourneyActivities
from bench.bare import BareEntry, BareFiveStep, BareSignals
from journeys.settings import load_settings
from journeys.store import Store
from journeys.unsubscribe import Links
from worker.main import Tuning, compile_workflow_modules
from workflows.client import connect

BARE_WORKFLOWS = (BareSignals, BareFiveStep, BareEntry)


async def _serve() -> None:
    settings = load_settings()
    assert settings.unsubscribe_secret is not None
    tuning = Tuning.from_settings(settings)
    channels = build_channels(settings)
    store = Store.from_settings(settings, connections=tuning.max_concurrent_activities)
    client = await connect(settings)
    activities = JourneyActivities(
        store, channels, Links(settings.links_base_url, settings.unsubscribe_secret)
    )
    compile_workflow_modules(BARE_WORKFLOWS)  # as run_worker does
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with (
        ThreadPoolExecutor(max_workers=tuning.max_concurrent_activities) as executor,
        closing_channels(channels),
    ):
        worker = Worker(
            client,
            task_queue=os.environ["BENCH_BARE_QUEUE"],
            workflows=list(BARE_WORKFLOWS),
            activities=activities.all(),
            activity_executor=executor,
            max_concurrent_activities=tuning.max_concurrent_activities,
            max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
            max_cached_workflows=tuning.max_cached_workflows,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        async with worker:
            await stop.wait()
    store.close()


if __name__ == "__main__":
    asyncio.run(_serve())

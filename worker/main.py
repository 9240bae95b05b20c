"""`journeys worker`: runs the interpreter workflow and its activities until SIGTERM.

Any number of workers may poll one task queue: Temporal hands each task to one of them, and a
run's state lives in its history, so workers can be added, drained and replaced at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import py_compile
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.broadcasts import BroadcastActivities
from activities.channels import Provider, build_channels, closing_channels, embedded_channels
from activities.journey import JourneyActivities
from activities.predictions import PredictionActivities
from activities.retention import RetentionActivities
from activities.sweep import SweepActivities
from journeys.contracts import (
    PREDICTION_HOUR_UTC,
    PREDICTION_SCHEDULE_ID,
    PREDICTION_WORKFLOW_TYPE,
    RETENTION_HOUR_UTC,
    RETENTION_SCHEDULE_ID,
    RETENTION_WORKFLOW_TYPE,
    SWEEP_SCHEDULE_ID,
    SWEEP_WORKFLOW_TYPE,
    PredictInput,
    RetentionInput,
    SweepInput,
)
from journeys.errors import ConfigurationError
from journeys.model import Channel
from journeys.settings import (
    WORKER_ACTIVITIES,
    WORKER_CACHE_SIZE,
    WORKER_WORKFLOW_TASKS,
    Component,
    Settings,
)
from journeys.store import Store
from journeys.unsubscribe import Links
from workflows.broadcast import BroadcastWorkflow
from workflows.client import connect
from workflows.journey import JourneyWorkflow
from workflows.predictions import PredictionWorkflow
from workflows.retention import EventRetentionWorkflow
from workflows.segment_sweep import SegmentSweepWorkflow

SWEEP_EVERY = timedelta(minutes=15)
PREDICT_AT = ScheduleCalendarSpec(hour=[ScheduleRange(PREDICTION_HOUR_UTC)])
"""Every night: the conversion model is refitted and every user rescored."""
RETAIN_AT = ScheduleCalendarSpec(hour=[ScheduleRange(RETENTION_HOUR_UTC)])
"""Every night: routed events past retention are deleted."""
WORKFLOWS = (
    JourneyWorkflow,
    SegmentSweepWorkflow,
    PredictionWorkflow,
    BroadcastWorkflow,
    EventRetentionWorkflow,
)
logger = logging.getLogger("journeys.worker")


@dataclass(frozen=True)
class Tuning:
    """How much one worker process takes on at once (the SDK's defaults, but for activities,
    which are mostly synchronous store calls on their own threads)."""

    max_concurrent_activities: int = WORKER_ACTIVITIES
    """Also the number of activity threads."""
    max_concurrent_workflow_tasks: int = WORKER_WORKFLOW_TASKS
    max_cached_workflows: int = WORKER_CACHE_SIZE
    """Runs kept in memory between tasks; a run evicted from the cache replays its history
    on its next task."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Tuning:
        """The tuning given by `JOURNEYS_WORKER_*`."""
        return cls(
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            max_cached_workflows=settings.worker_cache_size,
        )


def compile_workflow_modules(workflows: Iterable[type]) -> None:
    """Compile the modules of the packages defining `workflows` once, and import them from that
    code from now on in this process; write their bytecode too (atomically), for other
    processes.

    The sandbox imports a workflow's module, and the modules of its package that it imports
    without passing them through, afresh for every run it starts, to isolate module state. Without a
    bytecode cache (a source checkout under PYTHONDONTWRITEBYTECODE=1, as the Dockerfile's
    `compileall` step covers for the image) each of those imports compiled the source again: a
    third of the worker's CPU when many runs start. With one, each still found the file, read it
    and unmarshalled its code: a tenth of a busy worker's CPU. Now each run's sandbox executes
    the module anew from the code compiled here (code objects are immutable: the module's state
    is still its own, and the sandbox still checks what it calls), and a run never meets a
    source file changed on disk since the worker started. A tree that cannot be written keeps
    its old bytecode, or none.
    """
    modules: dict[str, Path] = {}
    for module in {workflow.__module__ for workflow in workflows}:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        package = module.rpartition(".")[0]
        if not package:
            modules[module] = Path(spec.origin)
            continue
        for source in Path(spec.origin).parent.glob("*.py"):
            modules[package if source.stem == "__init__" else f"{package}.{source.stem}"] = source
    for source in sorted(set(modules.values())):
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(
                str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True
            )
    _COMPILED.add({name: _CompiledOnce(name, str(source)) for name, source in modules.items()})


class _CompiledOnce(importlib.machinery.SourceFileLoader):
    """Loads a module from the code compiled when it was made (`compile_workflow_modules`)."""

    def __init__(self, fullname: str, path: str) -> None:
        super().__init__(fullname, path)
        self._code = super().get_code(fullname)

    def get_code(self, fullname: str) -> CodeType | None:
        """The module's code, compiled once."""
        return self._code


class _CompiledModules(importlib.abc.MetaPathFinder):
    """Finds the modules compiled once (`_CompiledOnce`), before any other finder looks."""

    def __init__(self) -> None:
        self._loaders: dict[str, _CompiledOnce] = {}

    def add(self, loaders: Mapping[str, _CompiledOnce]) -> None:
        """Find these modules from now on (and the ones added before)."""
        self._loaders.update(loaders)
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """A spec loading the module from its compiled code; None for any other module."""
        loader = self._loaders.get(fullname)
        if loader is None:
            return None
        return importlib.util.spec_from_file_location(fullname, loader.path, loader=loader)


_COMPILED = _CompiledModules()


def build_worker(
    client: Client,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    *,
    channels: Mapping[Channel, Provider] | None = None,
    links: Links | None = None,
    tuning: Tuning = Tuning(),
) -> Worker:
    """A worker for the journey and broadcast workflows and activities (synchronous activities
    run on `executor`, which needs `tuning.max_concurrent_activities` threads), delivering through
    `channels` (default: the embedded outbox and inbox, and webhooks to public addresses) with
    unsubscribe and tracked links signed by `links`."""
    sweep = SweepActivities(store, client, task_queue)
    journeys = JourneyActivities(
        store, channels if channels is not None else embedded_channels(), links
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            *journeys.all(),
            *BroadcastActivities(store, journeys).all(),
            sweep.sweep_segment_entries,
            PredictionActivities(store).predict_conversions,
            RetentionActivities(store).delete_expired_events,
        ],
        activity_executor=executor,
        max_concurrent_activities=tuning.max_concurrent_activities,
        # Local activities share the activity threads: no more of them started than there
        # are threads, so a local delivery that waits for one is seen waiting (and goes
        # through the task queue instead, `workflows.patches.LOCAL_START_TIMEOUT`).
        max_concurrent_local_activities=tuning.max_concurrent_activities,
        max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
        max_cached_workflows=tuning.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight tasks and stop.

    Raises `ConfigurationError` before connecting when a provider's settings are invalid,
    the unsubscribe secret is missing or the metrics address cannot be served.
    """
    settings.require(Component.WORKER)
    assert settings.unsubscribe_secret is not None
    links = Links(settings.links_base_url, settings.unsubscribe_secret)
    channels = build_channels(settings)
    # A connection for each activity thread, kept for the next activity.
    store = Store.from_settings(settings, connections=settings.worker_max_concurrent_activities)
    if settings.worker_metrics:
        serve_metrics(settings.worker_metrics)
    try:
        client = await connect(settings)
    except RuntimeError as error:  # the SDK's "Failed client connect"
        raise ConfigurationError(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(TEMPORAL_ADDRESS, namespace {settings.temporal_namespace!r}): {error}"
        ) from None
    await ensure_schedules(client, settings.task_queue)
    compile_workflow_modules(WORKFLOWS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tuning = Tuning.from_settings(settings)
    with (
        ThreadPoolExecutor(max_workers=tuning.max_concurrent_activities) as executor,
        closing_channels(channels),
    ):
        worker = build_worker(
            client,
            store,
            settings.task_queue,
            executor,
            channels=channels,
            links=links,
            tuning=tuning,
        )
        async with worker:
            logger.info(
                "worker %s polling task queue %r on %s (%s)",
                client.identity,
                settings.task_queue,
                settings.temporal_address,
                tuning,
            )
            await stop.wait()
            logger.info("stopping: finishing in-flight tasks")


def serve_metrics(address: str) -> None:
    """Serve the Temporal SDK's metrics (workflow and activity task rates, latencies,
    schedule-to-start, cache use, pollers) for Prometheus at `http://{address}/metrics`.

    Must run before the first client connects: clients use the default runtime of their
    process. Raises `ConfigurationError` when the address cannot be served.
    """
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as error:  # a taken port, or an address that does not parse
        raise ConfigurationError(
            f"cannot serve worker metrics on {address} (JOURNEYS_WORKER_METRICS; empty turns "
            f"them off): {error}"
        ) from None
    Runtime.set_default(runtime)


async def ensure_schedules(client: Client, task_queue: str) -> None:
    """The Temporal Schedules the worker's workflows run on (each created once): the segment
    sweep every 15 minutes, and the conversion predictions and the deletion of expired events
    every night. A run still going when its next is due makes the schedule skip that one."""
    every_quarter = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)])
    schedules: list[tuple[str, str, BaseModel, ScheduleSpec]] = [
        (SWEEP_SCHEDULE_ID, SWEEP_WORKFLOW_TYPE, SweepInput(), every_quarter),
        (
            PREDICTION_SCHEDULE_ID,
            PREDICTION_WORKFLOW_TYPE,
            PredictInput(),
            ScheduleSpec(calendars=[PREDICT_AT]),
        ),
        (
            RETENTION_SCHEDULE_ID,
            RETENTION_WORKFLOW_TYPE,
            RetentionInput(),
            ScheduleSpec(calendars=[RETAIN_AT]),
        ),
    ]
    for schedule_id, workflow_type, request, spec in schedules:
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                workflow_type, request, id=schedule_id, task_queue=task_queue
            ),
            spec=spec,
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        with contextlib.suppress(ScheduleAlreadyRunningError):  # another worker made it first
            await client.create_schedule(schedule_id, schedule)

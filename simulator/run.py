"""One simulation: the real interpreter and activities, an isolated store, a time-skipping
engine of its own, and channels that send nothing.

The run starts the way the router starts it (the entry event, stored then signalled with the
start); each scripted event is stored when its offset comes, by skipping the engine's clock to
it, and signalled to the run if the journey cares about it, as the router would. The engine's
clock then skips to the horizon. What the run recorded in its store (its steps, its deliveries)
becomes the answer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels import OutboxProvider, PermanentDeliveryError, Provider
from activities.journey import JourneyActivities
from journeys.contracts import (
    ENTRY_LIMIT,
    Activity,
    DeliverInput,
    DeliveryOutcome,
    EntryContext,
    EventType,
    JourneyEvent,
    JourneyOutcome,
)
from journeys.errors import JourneysError
from journeys.facts import entry_allowed, user_traits
from journeys.model import CHANNELS, Channel, Journey, node_edges, to_timedelta
from journeys.reactions import entry_context, interest, journey_event
from journeys.simulation import (
    PathStep,
    ScriptedEvent,
    SimulatedMessage,
    SimulationRequest,
    SimulationResult,
)
from journeys.store import DeliveryRecord, EventRecord, NewEvent
from simulator.engine import time_skipping_engine
from simulator.scratch import ScratchStore, Workspace, scratch_store
from workflows.client import signal_event, start_journey
from workflows.journey import JourneyWorkflow

TASK_QUEUE = "simulation"
ACTIVITY_THREADS = 4
SIMULATIONS_AT_ONCE = 4
"""Simulations one process runs at once (each has an engine of its own); more wait their turn."""
TIME_LIMIT = 60.0
"""Seconds a simulation may take: far more than any journey needs, so only a run that cannot
make progress (its tasks failing) reaches it."""
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
NOT_ENTERED = "the entry's conditions do not hold for this user"
Progress = Callable[[str], None]


class SimulationFailed(JourneysError):
    """The simulated run could not be followed to its end or its horizon."""


def _silent(_: str) -> None:
    """No progress to show."""


@dataclass
class _Attempt:
    """A delivery as the run asked for it, when (simulated), and the content shown for it
    when the activity rendered none (a skipped or failed message)."""

    request: DeliverInput
    at: datetime
    content: dict[str, Any] | None = None
    locale: str | None = None


def _engine_clock(
    env: WorkflowEnvironment, loop: asyncio.AbstractEventLoop
) -> Callable[[], datetime]:
    """The engine's time, for activities and the store on their threads: caps, windows and
    looks go by the simulated clock, not this machine's."""

    def now() -> datetime:
        return asyncio.run_coroutine_threadsafe(env.get_current_time(), loop).result(timeout=30)

    return now


def recording_channels() -> dict[Channel, Provider]:
    """Every channel takes its message without sending it anywhere (webhooks included): the
    delivery record holds what would have gone."""
    return {channel: OutboxProvider("simulation") for channel in CHANNELS}


class _Deliveries:
    """The `deliver` activity of a simulation: the real one, noting when each delivery was
    asked for by the engine's clock and rendering what a skipped message would have said."""

    def __init__(
        self, env: WorkflowEnvironment, store: ScratchStore, activities: JourneyActivities
    ) -> None:
        self._env = env
        self._store = store
        self._activities = activities
        self.attempts: dict[str, _Attempt] = {}

    @activity.defn(name=Activity.DELIVER)
    async def deliver(self, request: DeliverInput) -> DeliveryOutcome:
        """Deliver through the real activity, on a thread as the worker would."""
        # The engine's clock stands still while the run's task is in flight: this is when the
        # message goes.
        at = await self._env.get_current_time()
        attempt = self.attempts.setdefault(request.idempotency_key, _Attempt(request, at))
        sent = False
        try:
            outcome = await asyncio.to_thread(self._activities.deliver, request)
            sent = outcome.status == "sent"
        finally:
            if not sent and attempt.content is None:
                attempt.content, attempt.locale = await asyncio.to_thread(self._render, request)
        return outcome

    def _render(self, request: DeliverInput) -> tuple[dict[str, Any], str | None]:
        """The message as it would have read, and in which locale (the content as written
        when it cannot render)."""
        traits = user_traits(self._store, request.user_id)
        unsubscribe = "" if request.channel == "email" else None
        try:
            return self._activities.render(request, traits, unsubscribe)
        except PermanentDeliveryError:
            return dict(request.content or {}), None


async def simulate(
    journey: Journey,
    version: int,
    request: SimulationRequest,
    workspace: Workspace | None = None,
    *,
    progress: Progress = _silent,
) -> SimulationResult:
    """Run `journey` (as version `version`) for the request's user and script on an engine of
    its own; `progress` hears what the simulation is doing."""
    began = time.perf_counter()
    gate = _gates.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(SIMULATIONS_AT_ONCE))
    async with gate:
        try:
            async with asyncio.timeout(TIME_LIMIT):
                result = await _simulate(journey, version, request, workspace, progress)
        except TimeoutError:
            raise SimulationFailed(
                f"the simulation did not finish in {TIME_LIMIT:.0f} s (the run made no progress)"
            ) from None
    result.duration = round(time.perf_counter() - began, 3)
    return result


async def _simulate(
    journey: Journey,
    version: int,
    request: SimulationRequest,
    workspace: Workspace | None,
    progress: Progress,
) -> SimulationResult:
    seeds = (journey, request.user_id, request.traits, workspace or Workspace())
    store = await asyncio.to_thread(scratch_store, *seeds)
    try:
        progress("starting the time-skipping engine")
        async with time_skipping_engine() as env:
            simulation = _Simulation(
                env=env,
                store=store,
                journey=journey,
                version=version,
                request=request,
                progress=progress,
            )
            return await simulation.run()
    finally:
        await asyncio.to_thread(store.close)


class _Simulation:
    """One simulation under way: its engine, store, journey and script."""

    def __init__(
        self,
        *,
        env: WorkflowEnvironment,
        store: ScratchStore,
        journey: Journey,
        version: int,
        request: SimulationRequest,
        progress: Progress,
    ) -> None:
        self._env = env
        self._store = store
        self._journey = journey
        self._version = version
        self._request = request
        self._progress = progress
        self._user_id = request.user_id

    async def run(self) -> SimulationResult:
        """Enter the user, play the script, skip to the horizon, answer."""
        request = self._request
        arrived = await self._env.get_current_time()
        allowed = await asyncio.to_thread(
            entry_allowed, self._store, self._journey, self._user_id, request.entry, arrived
        )
        if not allowed:
            return self._blank(arrived)
        clock = _engine_clock(self._env, asyncio.get_running_loop())
        self._store.clock = clock
        activities = JourneyActivities(self._store, recording_channels(), clock=clock)
        deliveries = _Deliveries(self._env, self._store, activities)
        others = [a for a in activities.all() if a.__name__ != "deliver"]
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
            async with Worker(
                self._env.client,
                task_queue=TASK_QUEUE,
                workflows=[JourneyWorkflow],
                activities=[*others, deliveries.deliver],
                activity_executor=executor,
            ):
                self._progress("running the journey")
                # Entered once the worker is up: the engine's clock runs in real time until it
                # skips, so the path's first times stay within milliseconds of the entry.
                entered_at = await self._env.get_current_time()
                handle = await self._start(entered_at)
                for scripted in request.within_horizon()[0]:
                    await self._skip_to(entered_at + to_timedelta(scripted.at))
                    self._progress(f"{scripted.at} after entry: {scripted.what}")
                    await self._perform(scripted, entered_at)
                await self._skip_to(entered_at + to_timedelta(request.horizon))
                outcome = await self._outcome(handle)
        return self._answer(self._blank(entered_at), outcome, deliveries.attempts)

    def _blank(self, entered_at: datetime) -> SimulationResult:
        """The answer for a user who did not enter at `entered_at`; the base of every other."""
        return SimulationResult(
            status="not_entered",
            ended=NOT_ENTERED,
            entered_at=entered_at,
            horizon_at=entered_at + to_timedelta(self._request.horizon),
            path=[],
            messages=[],
            ignored_events=self._request.within_horizon()[1],
            duration=0.0,
        )

    async def _start(self, at: datetime) -> WorkflowHandle[object, JourneyOutcome]:
        """Start the run as the router does: an entry event is stored, then the run is started
        with it (signal-with-start); other entries start with their context alone."""
        entry = self._journey.entry
        name = entry.event or entry.page
        kind: EventType = "track" if entry.event is not None else "page"
        event = None
        context = EntryContext(properties=self._request.entry, timestamp=at)
        if name is not None:
            event = await self._store_event(kind, name, self._request.entry, at)
            context = entry_context(event)
        return await start_journey(
            self._env.client,
            journey=self._journey,
            version=self._version,
            user_id=self._user_id,
            entry=context,
            task_queue=TASK_QUEUE,
            event=event,
        )

    async def _store_event(
        self,
        kind: EventType,
        name: str | None,
        properties: dict[str, Any],
        at: datetime,
    ) -> JourneyEvent:
        """Store an event of the user (conditions count them; an identify changes the
        profile), and its signal payload."""
        new = NewEvent(
            message_id=f"simulated-{uuid.uuid4().hex}",
            user_id=self._user_id,
            type=kind,
            name=name,
            properties=properties,
            timestamp=at,
            traits=properties if kind == "identify" else {},
        )
        await asyncio.to_thread(self._store.append_events, [new])
        record = EventRecord(
            message_id=new.message_id,
            user_id=new.user_id,
            type=new.type,
            name=new.name,
            properties=new.properties,
            timestamp=new.timestamp,
        )
        return journey_event(record)

    async def _perform(self, scripted: ScriptedEvent, entered_at: datetime) -> None:
        """The user performs a scripted event (or their traits change): stored, and signalled
        to the run if the journey cares about it (a run that has ended hears nothing)."""
        at = entered_at + to_timedelta(scripted.at)
        if scripted.traits is not None:
            event = await self._store_event("identify", None, scripted.traits, at)
        else:
            event = await self._store_event("track", scripted.event, scripted.properties, at)
        if not interest(self._journey).covers(event):
            return
        try:
            await signal_event(self._env.client, self._journey.id, self._user_id, event)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise

    async def _skip_to(self, moment: datetime) -> None:
        """Skip the engine's clock to `moment`, the run living through every timer on the way."""
        remaining = moment - await self._env.get_current_time()
        if remaining.total_seconds() > 0:
            await self._env.sleep(remaining)

    async def _outcome(
        self, handle: WorkflowHandle[object, JourneyOutcome]
    ) -> JourneyOutcome | None:
        """How the run ended, or None while it is still inside at the horizon."""
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.RUNNING:
            return None
        with self._env.auto_time_skipping_disabled():
            return await handle.result()

    def _answer(
        self,
        blank: SimulationResult,
        outcome: JourneyOutcome | None,
        attempts: dict[str, _Attempt],
    ) -> SimulationResult:
        """The answer from what the run recorded in its store: the nodes it reached (those
        reached at one moment in the graph's order), its enrollment and its deliveries."""
        order = _graph_order(self._journey)
        visits = sorted(
            self._store.visits_for_user(self._user_id),
            key=lambda visit: (visit.reached_at, order.get(visit.node_id, len(order))),
        )
        enrolled = self._store.enrollments_for_user(self._user_id)
        run = enrolled[0] if enrolled else None
        messages = [
            _message(record, attempts[record.idempotency_key])
            for record in reversed(self._store.deliveries_for_user(self._user_id))
            if record.finished and record.idempotency_key in attempts
        ]
        messages.sort(key=lambda message: message.at)
        if outcome is None:
            status, ended = "active", None
        elif outcome.status == "exited" and outcome.reason == ENTRY_LIMIT:
            status, ended = "not_entered", ENTRY_LIMIT
        else:
            status, ended = outcome.status, outcome.reason
        return blank.model_copy(
            update={
                "status": status,
                "ended": ended,
                "path": [PathStep(node=v.node_id, at=v.reached_at) for v in visits],
                "messages": messages,
                "ended_at": None if run is None else run.ended_at,
                "converted_at": None if run is None else run.converted_at,
                "variant": None if run is None else run.variant,
            }
        )


def _graph_order(journey: Journey) -> dict[str, int]:
    """Each node's place in a topological order of the (acyclic) graph from the start: of two
    nodes reached at one moment, the one upstream was reached first."""
    finished: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        seen.add(node_id)
        for _, target in node_edges(journey.nodes[node_id]):
            if target is not None and target not in seen and target in journey.nodes:
                visit(target)
        finished.append(node_id)

    visit(journey.start)
    return {node_id: place for place, node_id in enumerate(reversed(finished))}


def _message(record: DeliveryRecord, attempt: _Attempt) -> SimulatedMessage:
    sent = record.status == "sent"
    content = record.content if sent else attempt.content
    return SimulatedMessage(
        node=record.node_id,
        channel=attempt.request.channel,
        at=attempt.at,
        status=record.status if record.status in ("sent", "skipped") else "failed",
        content=content or {},
        skipped=record.reason if record.status == "skipped" else None,
        failed=record.reason if record.status == "failed" else None,
        variant=record.variant,
        locale=record.locale if sent else attempt.locale,
    )

"""The event router: the relay from the events table (the outbox) to Temporal.

Ingest stores an event and wakes the router; the router reads unrouted events in order, applies
`journeys.reactions` to each, signals or signal-with-starts the users' runs, and only then marks
the events routed. When Temporal is unreachable the events stay in the outbox and the router
retries with backoff, so nothing accepted is lost; an event routed twice (a crash between
signalling and marking) is dropped by the run, which deduplicates by messageId.

Every API replica runs a router, and each event is routed by one of them: routers share the
outbox's partitions (`journeys.store.claims`), rebalancing every `REBALANCE` seconds, between
batches, so a partition changes hands only when its router has no batch in flight. On
PostgreSQL, any replica's stored events ring every router (`OutboxBell`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from journeys.broadcasts import Broadcast
from journeys.contracts import (
    EntryContext,
    JourneyEvent,
    LeaveRequest,
    workflow_id,
)
from journeys.facts import entry_allowed
from journeys.model import Journey
from journeys.reactions import Interest, enters_on, entry_context, interest, journey_event
from journeys.routing import NoLiveJourney, RoutingUnavailable, TriggerResult
from journeys.settings import Settings
from journeys.store import EventRecord, Store
from journeys.store.claims import ALL, Claim
from relay.admission import Admission
from workflows.client import (
    cancel_broadcast,
    connect,
    signal_event,
    signal_leave,
    start_broadcast,
    start_journey,
)

logger = logging.getLogger("journeys.router")

ERASED = "erased"
"""The reason a run ends with when its user is erased."""

BATCH = 500
USERS_AT_ONCE = 64
IDLE_POLL = 1.0
"""Seconds between outbox checks when nobody wakes the router."""
REBALANCE = 2.0
"""Seconds between two rebalances of the outbox's partitions among routers: how soon a router
that joins gets work, and how soon the partitions of one that died are routed again."""
ERASE_WAIT = 30.0
"""Seconds an erasure waits for the user's runs to end before it erases the store."""
MAX_BACKOFF = 5.0
"""Seconds between attempts at most while Temporal is away: a retry is one cheap RPC."""
UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.CANCELLED,  # the client's own timeout ("Timeout expired"): a busy server
    RPCStatusCode.RESOURCE_EXHAUSTED,  # the server sheds load
}
"""Answers that say Temporal cannot take the call now: the events stay in the outbox."""


@dataclass(frozen=True)
class Published:
    """A journey's latest published version, as routing needs it."""

    journey: Journey
    version: int
    live: bool
    """Accepts new entries (status live); paused journeys only serve users already inside."""
    interest: Interest
    """What running instances of any of its versions react to."""


class EventRouter:
    """Routes stored events to journeys; starts runs for `/trigger`; ends them on archive."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        connect_temporal: Callable[[], Awaitable[Client]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._store = store
        self._claims = store.outbox_claims()
        self._claim: Claim = frozenset()
        self._claimed_at: float | None = None
        self._partitions = settings.router_partitions
        self._task_queue = settings.task_queue
        self._connect = connect_temporal
        self._client: Client | None = None
        self._wakeup = asyncio.Event()
        self._versions: dict[tuple[str, int], Journey] = {}
        registry = registry or CollectorRegistry()
        self._admission = Admission(store, registry=registry)
        self._routed = Counter(
            "journeys_events_routed", "Events routed to their journeys", registry=registry
        )
        self._lag = Histogram(
            "journeys_routing_lag_seconds",
            "From an event's receipt to its routing",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )

    # --- the relay loop ---------------------------------------------------------------------

    def wake(self) -> None:
        """New events are stored: route them soon."""
        self._wakeup.set()

    async def run(self) -> None:
        """Route the outbox until cancelled, retrying with backoff while Temporal is away;
        give up the claims on the outbox when cancelled."""
        loop = asyncio.get_running_loop()

        def ring() -> None:  # from the bell's thread
            loop.call_soon_threadsafe(self.wake)

        bell = self._store.outbox_bell(ring)
        try:
            await self._relay()
        finally:
            if bell is not None:
                await asyncio.to_thread(bell.close)
            await self.release()

    async def release(self) -> None:
        """Give up this router's claims on the outbox, for other routers to take."""
        await asyncio.to_thread(self._claims.close)
        self._claim, self._claimed_at = frozenset(), None

    async def _relay(self) -> None:
        backoff = 1.0
        while True:
            self._wakeup.clear()  # before reading the outbox, so no wake-up is lost
            try:
                while await self.route_pending():
                    pass
                backoff = 1.0
                delay = IDLE_POLL
            except RoutingUnavailable as error:
                logger.warning("routing paused, retrying in %.0f s: %s", backoff, error)
                delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
            except Exception:
                # The store or a bug: the events stay in the outbox; the relay must not die.
                logger.exception("routing failed, retrying in %.0f s", backoff)
                delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    async def route_pending(self) -> int:
        """Route one batch of the unrouted events this router has claimed; how many were
        routed."""
        claim = await self._claimed()
        if not claim:
            return 0  # another router routes the outbox (or all of it, for now)
        partitions = None if claim == ALL else (self._partitions, claim)
        events = await asyncio.to_thread(self._store.unrouted_events, BATCH, partitions)
        if not events:
            return 0
        client = await self._temporal()
        catalog = await asyncio.to_thread(self._catalog)
        # An erased user's events still in the outbox are dropped (marked routed): the erasure
        # deletes them, but this batch may have been read first.
        erased = await asyncio.to_thread(self._store.suppressed, {e.user_id for e in events})
        by_user: dict[str, list[EventRecord]] = defaultdict(list)
        for record in events:
            by_user[record.user_id].append(record)
        gate = asyncio.Semaphore(USERS_AT_ONCE)

        async def route_user(records: list[EventRecord]) -> list[int]:
            # One user's events in order: an entry must start the run before what follows.
            done: list[int] = []
            async with gate:
                for record in records:
                    try:
                        if record.user_id not in erased:
                            await self._route(client, catalog, record)
                    except RoutingUnavailable:
                        break
                    except (ValidationError, PydanticSerializationError) as error:
                        # Stored, but no journey can take it (nor can Temporal carry it, as an
                        # event nested too deep stored before the API refused those): it must
                        # not hold the outbox up.
                        logger.error(
                            "event %s cannot be routed: %s", record.message_id, _where(error)
                        )
                    assert record.id is not None
                    done.append(record.id)
            return done

        routed = [
            i for ids in await asyncio.gather(*map(route_user, by_user.values())) for i in ids
        ]
        await asyncio.to_thread(self._store.mark_routed, routed)
        now, done = datetime.now(UTC), set(routed)
        for record in events:
            if record.id in done:
                self._lag.observe((now - record.received_at).total_seconds())
        self._routed.inc(len(routed))
        if len(routed) < len(events):
            raise RoutingUnavailable("Temporal stopped answering mid-batch")
        return len(routed)

    async def _claimed(self) -> Claim:
        """The claim, rebalanced when the last rebalance is `REBALANCE` seconds old."""
        now = time.monotonic()
        if self._claimed_at is None or now - self._claimed_at >= REBALANCE:
            self._claim = await asyncio.to_thread(self._claims.claim, self._partitions)
            self._claimed_at = now
        return self._claim

    async def _route(self, client: Client, catalog: list[Published], record: EventRecord) -> None:
        event = journey_event(record)
        for published in catalog:
            journey = published.journey
            if published.live and enters_on(journey, event):
                entering = await asyncio.to_thread(
                    entry_allowed,
                    self._store,
                    journey,
                    record.user_id,
                    event.properties,
                    event.timestamp,
                )
                if entering:
                    await self._start(
                        workflow_id(journey.id, record.user_id),
                        partial(
                            start_journey,
                            client,
                            journey=journey,
                            version=published.version,
                            user_id=record.user_id,
                            entry=entry_context(event),
                            task_queue=self._task_queue,
                            event=event,
                        ),
                    )
                    continue
            if published.live and journey.entry.segment is not None:
                # Any event may have put the user into the segment (traits, event counts).
                await self._enter_segment_journey(client, published, record.user_id, event)
            if published.interest.covers(event):
                await self._call(signal_event(client, journey.id, record.user_id, event))

    async def _enter_segment_journey(
        self, client: Client, published: Published, user_id: str, event: JourneyEvent
    ) -> None:
        journey = published.journey
        entry = event.properties or event.traits
        allowed = await asyncio.to_thread(
            entry_allowed, self._store, journey, user_id, entry, event.timestamp
        )
        if allowed:
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await self._start(
                    workflow_id(journey.id, user_id),
                    partial(
                        start_journey,
                        client,
                        journey=journey,
                        version=published.version,
                        user_id=user_id,
                        entry=EntryContext(properties=entry, timestamp=event.timestamp),
                        task_queue=self._task_queue,
                    ),
                )

    # --- requests from the API --------------------------------------------------------------

    async def trigger(
        self, user_id: str, trigger_type: str, content: dict[str, Any]
    ) -> list[TriggerResult]:
        """Start the user in every live journey entered by `trigger_type`."""
        catalog = await asyncio.to_thread(self._catalog)
        targets = [p for p in catalog if p.live and p.journey.entry.api == trigger_type]
        if not targets:
            raise NoLiveJourney(f"no live journey is entered by trigger '{trigger_type}'")
        client = await self._temporal()
        now = datetime.now(UTC)
        results = []
        erased = await asyncio.to_thread(self._store.suppressed, {user_id})
        for published in targets:
            journey = published.journey
            started = not erased and await asyncio.to_thread(
                entry_allowed, self._store, journey, user_id, content, now
            )
            if started:
                try:
                    await self._start(
                        workflow_id(journey.id, user_id),
                        partial(
                            start_journey,
                            client,
                            journey=journey,
                            version=published.version,
                            user_id=user_id,
                            entry=EntryContext(properties=content, timestamp=now),
                            task_queue=self._task_queue,
                        ),
                    )
                except WorkflowAlreadyStartedError:
                    started = False
            results.append(
                TriggerResult(
                    journey_id=journey.id,
                    workflow_id=workflow_id(journey.id, user_id),
                    started=started,
                )
            )
        return results

    async def archive(self, journey_id: str) -> int:
        """Make every user inside the journey leave at once; how many were told.

        Who is inside comes from Temporal's visibility and from the store's enrolments, so a
        run that one of them has not seen yet is still reached.
        """
        client = await self._temporal()
        query = f"JourneyId = '{journey_id}' AND ExecutionStatus = 'Running'"
        try:
            visible = {execution.id async for execution in client.list_workflows(query)}
        except RPCError as error:
            raise RoutingUnavailable(str(error)) from error
        enrolled = await asyncio.to_thread(self._store.active_workflow_ids, journey_id)
        inside = sorted(visible | set(enrolled))
        leave = LeaveRequest(reason="archived")
        for run in inside:
            await self._call(signal_leave(client, run, leave))
        return len(inside)

    async def start_broadcast(self, broadcast: Broadcast) -> bool:
        """Start the broadcast's workflow; False when its id was used before."""
        client = await self._temporal()
        try:
            await start_broadcast(client, broadcast, task_queue=self._task_queue)
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as error:
            raise RoutingUnavailable(str(error)) from error
        return True

    async def cancel_broadcast(self, broadcast_id: str) -> None:
        """Signal the broadcast's workflow to stop sending."""
        await self._call(cancel_broadcast(await self._temporal(), broadcast_id))

    async def erase(self, user_id: str) -> int:
        """Make every run of the user leave, reason `erased`, and wait up to `ERASE_WAIT`
        seconds for them to end (so what they record as they end is in the store before the
        erasure); how many runs were told.

        The runs are found by their ids (one per journey and user), which Temporal knows at
        once, rather than through visibility, which may lag and cannot quote every user id.
        """
        client = await self._temporal()
        journeys = await asyncio.to_thread(self._store.list_journeys)
        leave = LeaveRequest(reason=ERASED)
        told = []
        for journey in journeys:
            run = workflow_id(journey.id, user_id)
            try:
                await signal_leave(client, run, leave)
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    continue  # not in that journey (or no longer)
                raise RoutingUnavailable(str(error)) from error
            told.append(client.get_workflow_handle(run))
        if told:
            ends = asyncio.gather(*(h.result() for h in told), return_exceptions=True)
            try:
                await asyncio.wait_for(ends, timeout=ERASE_WAIT)
            except TimeoutError:
                # The runs still end (their record of it finds nothing of the user); the
                # erasure goes on rather than keep the user's data waiting for a worker.
                logger.warning(
                    "%d runs had not ended %.0f s after an erasure", len(told), ERASE_WAIT
                )
        return len(told)

    # --- Temporal -------------------------------------------------------------------------

    async def _temporal(self) -> Client:
        if self._client is None:
            try:
                self._client = await self._connect()
            except RuntimeError as error:
                raise RoutingUnavailable(f"cannot reach Temporal: {error}") from error
        return self._client

    async def _start(self, run: str, start: Callable[[], Awaitable[Any]]) -> None:
        """Start (or signal-with-start) the run of workflow id `run` once the admission window
        has room."""
        async with self._admission.slot(run):
            await self._call(start())

    async def _call(self, call: Awaitable[Any]) -> None:
        """Await a Temporal call; a run that is gone is no error, an outage is."""
        try:
            await call
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return  # the user is not (or no longer) in that journey
            if error.status in UNAVAILABLE:
                raise RoutingUnavailable(str(error)) from error
            # A request Temporal refuses for good must not block the outbox behind it.
            logger.error("event dropped for one journey: %s", error)

    def _catalog(self) -> list[Published]:
        """Every journey that takes entries or has users inside (status live or paused)."""
        catalog = []
        for record in self._store.list_journeys():
            if record.status not in ("live", "paused") or record.version is None:
                continue
            versions = [self._journey(record.id, n) for n in range(1, record.version + 1)]
            combined = interest(versions[0])
            for journey in versions[1:]:
                combined |= interest(journey)
            catalog.append(
                Published(versions[-1], record.version, record.status == "live", combined)
            )
        return catalog

    def _journey(self, journey_id: str, version: int) -> Journey:
        key = (journey_id, version)
        if key not in self._versions:  # published versions never change: parse each once
            stored = self._store.get_version(journey_id, version)
            assert stored is not None, f"published version {key} is missing"
            self._versions[key] = Journey.model_validate(stored.definition)
        return self._versions[key]


def _where(error: ValidationError | PydanticSerializationError) -> str:
    """What is wrong with an event, by field: never the values (logs carry no personal data,
    and pydantic's own message quotes the input)."""
    if isinstance(error, ValidationError):
        fields = sorted({".".join(map(str, e["loc"])) or "event" for e in error.errors()})
        return "invalid " + ", ".join(fields)
    return "cannot be serialised"


def build_router(
    settings: Settings, store: Store, registry: CollectorRegistry | None = None
) -> EventRouter:
    """The router for the configured Temporal server."""
    return EventRouter(
        store, settings, connect_temporal=lambda: connect(settings), registry=registry
    )

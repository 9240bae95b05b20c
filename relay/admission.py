"""Admission: how many runs a router has started that are not running yet.

A burst of entries (20,000 users at once) must not become 20,000 first workflow tasks queued at
Temporal at once: the server then spends its CPU on the backlog and users enter more slowly
than if they had come in an orderly line. So a router keeps a window of runs it has started
but not yet seen running (a run records its enrollment once its first workflow task has run);
a new start waits while the window is full, and the burst waits in the outbox instead, where
it costs nothing (`journeys_events_unrouted` shows it).

The window adapts to how long runs take to start, judged by the slowest tenth of the starts
since the last change: it shrinks when those took over `SLOW` (the starts queue somewhere: at
Temporal, or in a worker that has taken more tasks than it can finish before their 10-second
timeout) and grows while they took under `QUICK` and the window is what holds entries back.
Between the two it holds, so a machine whose starts are slow even without a queue keeps the
window it has rather than throttling entries the server could take. Runs that never show up
(a run that failed at once, an enrollment this router cannot see) leave the window after
`STALE` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge

from journeys.store import Store

START = 100
"""Runs that may be starting at once when a router starts: a few seconds of work for one
worker, where 20,000 at once collapsed the server, and 500 left a saturated worker holding
tasks past their timeout."""
SMALLEST = 20
LARGEST = 2_000
SLOW = 4.0
"""Seconds from a start to the run's first task, for the slowest tenth, that mean the starts
queue: the window shrinks (a workflow task times out after 10)."""
QUICK = 2.0
"""Seconds under which the slowest tenth of the starts leave room: the window may grow."""
STALE = 60.0
"""Seconds after which a run not seen running leaves the window anyway."""
LOOK_EVERY = 0.05
"""Seconds between two looks at the store while starts wait."""
ADAPT_EVERY = 1.0
"""Seconds between two changes of the window, so that it follows a trend, not each look."""


@dataclass(frozen=True)
class _Start:
    at: float
    """When it was started (monotonic clock)."""
    wall: datetime
    """The same, in UTC, to compare with the enrollment's entry time."""


class Admission:
    """The window of runs started and not yet running, for one router."""

    def __init__(
        self,
        store: Store,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._starting: dict[str, _Start] = {}
        self._reserved = 0
        self._looked_at = -LOOK_EVERY
        self._adapted_at = -ADAPT_EVERY
        self._looking = asyncio.Lock()
        self._held_back = False
        self._waits: list[float] = []
        self.window = START
        registry = registry or CollectorRegistry()
        Gauge(
            "journeys_runs_starting",
            "Runs this router has started that have not run their first task yet",
            registry=registry,
        ).set_function(lambda: self.starting)
        Gauge(
            "journeys_runs_starting_window",
            "How many runs this router lets start at once (adapts to Temporal's pace)",
            registry=registry,
        ).set_function(lambda: self.window)

    @property
    def starting(self) -> int:
        """Runs started and not yet seen running, and starts under way."""
        return len(self._starting) + self._reserved

    @asynccontextmanager
    async def slot(self, workflow_id: str) -> AsyncIterator[None]:
        """Wait until the window has room, then hold a place in it while the block starts (or
        signal-with-starts) the run of `workflow_id`; the run keeps it until it is running. A
        block that raises gives the place back."""
        while self.starting >= self.window:
            self._held_back = True
            await self._look()
            if self.starting >= self.window:
                await asyncio.sleep(LOOK_EVERY)
        self._reserved += 1
        try:
            yield
        finally:
            self._reserved -= 1
        self._starting[workflow_id] = _Start(self._clock(), datetime.now(UTC))

    async def _look(self) -> None:
        """Drop the runs now running (and the stale ones), and adapt the window."""
        async with self._looking:  # one look at a time for every waiting start
            if self._clock() - self._looked_at < LOOK_EVERY:
                return
            started = {workflow_id: start.wall for workflow_id, start in self._starting.items()}
            running = await asyncio.to_thread(self._store.started_runs, started)
            now = self._looked_at = self._clock()
            waited = [now - self._starting.pop(workflow_id).at for workflow_id in running]
            stale = [w for w, start in self._starting.items() if now - start.at > STALE]
            for workflow_id in stale:
                del self._starting[workflow_id]
            self._waits += [*waited, *(STALE for _ in stale)]
            if self._waits and now - self._adapted_at >= ADAPT_EVERY:
                self._adapt()
                self._adapted_at = now

    def _adapt(self) -> None:
        """Shrink by 30 % when the slowest tenth of the starts since the last change took over
        `SLOW`; grow by 20 % when they took under `QUICK` and the window held entries back."""
        waits = sorted(self._waits)
        ninth = waits[(len(waits) * 9) // 10]
        if ninth > SLOW:
            self.window = max(SMALLEST, int(self.window * 0.7))
        elif self._held_back and ninth < QUICK:
            self.window = min(LARGEST, self.window + max(1, self.window // 5))
        self._held_back, self._waits = False, []

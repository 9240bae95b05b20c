"""What the benchmarks share: sizes, progress lines, waiting for a count, sending batches,
sampling in the background."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

BATCH_SIZE = 100
"""Events per `POST /v1/batch`, as the issue asks."""
BATCHES_IN_FLIGHT = 4
"""Concurrent batch requests: a few SDK processes flushing at once."""
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does."""

    ingest_users: int
    ingest_events: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    """How long each steady rate is held."""
    interpreter_journeys: int
    """Runs per side per round."""
    interpreter_rounds: int
    """Rounds, each bare then journeys, so background load hits both sides alike."""
    capacity: tuple[int, ...]
    """Users waiting at once, one size after another."""
    inapp_runs: int
    """Events tracked from a browser page, each until its tooltip is on screen."""
    replicas: tuple[int, ...]
    """API processes sharing one PostgreSQL store, one count after another."""
    replicas_users: int
    replicas_events: int
    """Events sent through the replicas (beside one entry per user)."""
    burst_users: int
    """Users entering at once (unpaced), and as many paced."""
    timeout: float = 900.0
    """Seconds any one wait may take before the benchmark gives up."""


FULL = Sizes(
    ingest_users=500,
    ingest_events=20_000,
    latency_rates=(20, 100),
    latency_seconds=30,
    interpreter_journeys=300,
    interpreter_rounds=2,
    capacity=(1_000, 5_000, 20_000),
    inapp_runs=50,
    replicas=(1, 2, 3),
    replicas_users=500,
    replicas_events=10_000,
    burst_users=20_000,
    timeout=3600,
)
QUICK = Sizes(
    ingest_users=100,
    ingest_events=2_000,
    latency_rates=(20, 100),
    latency_seconds=5,
    interpreter_journeys=100,
    interpreter_rounds=1,
    capacity=(100, 250, 500),
    inapp_runs=20,
    replicas=(1, 2, 3),
    replicas_users=100,
    replicas_events=2_000,
    burst_users=2_000,
    timeout=300,
)
TINY = Sizes(
    ingest_users=5,
    ingest_events=200,
    latency_rates=(10,),
    latency_seconds=1,
    interpreter_journeys=5,
    interpreter_rounds=1,
    capacity=(10, 20),
    inapp_runs=3,
    replicas=(1, 3),
    replicas_users=6,
    replicas_events=60,
    burst_users=20,
    timeout=30,
)
SCALES = {"full": FULL, "quick": QUICK, "tiny": TINY}


class Sampler(ABC):
    """Calls `sample` every `every` seconds in the background while its block runs."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def sample(self) -> None:
        """Take one sample."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._every)


def say(text: str) -> None:
    """A line of progress on stdout, at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Progress:
    """Prints `label: done/total (rate/s)` about once a second, and once at the end."""

    def __init__(self, label: str, total: int, every: float = 1.0) -> None:
        self.label = label
        self.total = total
        self._every = every
        self.done = 0
        """The latest count reported."""
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        """Report `done` of the total, if a line is due."""
        self.done = done
        now = time.perf_counter()
        if not force and now - self._last < self._every:
            return
        self._last = now
        elapsed = now - self._start
        rate = f", {done / elapsed:.0f}/s" if elapsed >= 0.5 else ""
        say(
            f"  {self.label}: {done}/{self.total} "
            f"({100 * done / max(self.total, 1):.0f}%{rate}, {elapsed:.1f} s)"
        )


async def until(
    count: Callable[[], Awaitable[int]] | Callable[[], int],
    target: int,
    progress: Progress,
    *,
    timeout: float,
    check: Callable[[], None] = lambda: None,
    interval: float = 0.1,
) -> float:
    """Poll `count` until it reaches `target`; the `time.perf_counter()` when it did.

    `check` raises when the system under test has died. Raises TimeoutError after `timeout`.
    """
    deadline = time.perf_counter() + timeout
    while True:
        value = count()
        done = await value if not isinstance(value, int) else value
        if done >= target:
            reached = time.perf_counter()
            progress.update(done, force=True)
            return reached
        progress.update(done)
        check()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{progress.label}: {done}/{target} after {timeout:.0f} s")
        await asyncio.sleep(interval)


def track(user_id: str, event: str, **properties: Any) -> dict[str, Any]:
    """A Segment track call for a batch."""
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "properties": properties,
        "messageId": uuid.uuid4().hex,
    }


async def post_batches(
    http: httpx.AsyncClient | Sequence[httpx.AsyncClient],
    calls: Sequence[dict[str, Any]],
    progress: Progress | None = None,
    *,
    in_flight: int = BATCHES_IN_FLIGHT,
    batch_size: int = BATCH_SIZE,
) -> float:
    """Send the calls as `POST /v1/batch` of `batch_size`, `in_flight` at once (given several
    API clients, each batch to the next, in turn); the `time.perf_counter()` when the last was
    accepted."""
    clients = [http] if isinstance(http, httpx.AsyncClient) else list(http)
    batches = [calls[i : i + batch_size] for i in range(0, len(calls), batch_size)]
    sent = 0
    gate = asyncio.Semaphore(in_flight)

    async def post(index: int, batch: Sequence[dict[str, Any]]) -> None:
        nonlocal sent
        client = clients[index % len(clients)]
        async with gate:
            for attempt in range(1, SEND_ATTEMPTS + 1):
                try:
                    response = await client.post("/v1/batch", json={"batch": list(batch)})
                    break
                except httpx.TransportError:
                    # As Segment's SDKs do: send again (the messageIds make it harmless).
                    if attempt == SEND_ATTEMPTS:
                        raise
            response.raise_for_status()
            sent += len(batch)
            if progress is not None:
                progress.update(sent)

    await asyncio.gather(*map(post, range(len(batches)), batches))
    if progress is not None:
        progress.update(sent, force=True)
    return time.perf_counter()


def batch_size(calls: int, clients: int) -> int:
    """Batches of `BATCH_SIZE`, or smaller when there are too few calls for each of the
    clients to get one."""
    return max(1, min(BATCH_SIZE, math.ceil(calls / clients)))


async def bounded(calls: Sequence[Coroutine[Any, Any, Any]], at_once: int) -> list[Any]:
    """Await the calls, at most `at_once` at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one(call: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with gate:
                return await call
        finally:
            if inspect.getcoroutinestate(call) == inspect.CORO_CREATED:
                call.close()  # cancelled before its turn: never started, so never awaited

    return await asyncio.gather(*map(one, calls))


def cpu_ms_per(
    before: dict[str, float], after: dict[str, float], count: int, names: Sequence[str]
) -> dict[str, float]:
    """CPU milliseconds per item (`count` items) each of `names` spent between two readings
    of `Stack.cpu`, and their "total"."""
    spent = {name: (after[name] - before[name]) * 1000 / count for name in names}
    return {**spent, "total": sum(spent.values())}


def other_load(before: dict[str, float], after: dict[str, float], seconds: float) -> float:
    """Cores busy with anything but the stack and the benchmark between two readings of
    `Stack.cpu` (other work on a shared machine), on average over `seconds`."""
    ours = sum(after[name] - before[name] for name in after if name != "machine")
    return max(0.0, (after["machine"] - before["machine"] - ours) / seconds)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of non-empty `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]

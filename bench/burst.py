"""Burst: N users entering at once, unpaced, against as many entering paced, in the same run.

Each side on a stack of its own (a SQLite store, as the capacity benchmark): the users enter
the capacity benchmark's journey (a 24 h wait). *Paced* sends them as the capacity benchmark
does (400 at a time, the next 400 only while fewer than 1,000 are on the way); *unpaced*
posts every entry as fast as the API takes it (`POST /v1/batch` of 100, 4 in flight), as
clients that do not pace themselves would. The clock runs from the first entry sent until the
store shows every user waiting at the node; the figure is the ratio of the entry rates,
unpaced ÷ paced (floor `FLOOR`: the router's admission window, not the client, protects
Temporal from the burst).

Every second a sample is taken: entries the API has accepted, the outbox backlog (unrouted
events: what `journeys_events_unrouted` reports, counted in the store at once rather than
through that gauge's 15-second cache), users waiting, the API's `journeys_runs_starting` and
`journeys_runs_starting_window` (its `/metrics`), and the cores each process of the stack
used since the sample before.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from bench import capacity
from bench.common import (
    Progress,
    Sampler,
    Sizes,
    cpu_ms_per,
    other_load,
    post_batches,
    say,
    track,
    until,
)
from bench.stack import Stack, scrape

FLOOR = 0.9
SIDES = ("paced", "unpaced")
EVERY = 1.0
"""Seconds between two samples of the timeline."""
KEPT = 120
"""Samples of each timeline kept in the results (evenly spread; peaks use them all)."""
STARTING = "journeys_runs_starting"
WINDOW = "journeys_runs_starting_window"


class Timeline(Sampler):
    """Samples the stack every `EVERY` seconds while a side runs, and once at its end; the
    times are seconds since `start`."""

    def __init__(
        self, stack: Stack, start: float, accepted: Progress, waiting: Callable[[], int]
    ) -> None:
        super().__init__(EVERY)
        self._stack = stack
        self._start = start
        self._accepted = accepted
        self._waiting = waiting
        self.samples: list[dict[str, Any]] = []
        self._last: tuple[float, dict[str, float]] | None = None

    async def __aexit__(self, *_: object) -> None:
        await super().__aexit__()
        await self.sample()  # the end, however short the side was

    async def sample(self) -> None:
        """One sample; the cores are those used since the sample before (none for the first)."""
        try:
            metrics = await scrape(self._stack.http)
        except httpx.HTTPError:
            metrics = {}  # a swamped API may not answer in time: the gap is the finding
        now, cpu = time.perf_counter(), self._stack.cpu()
        cores: dict[str, float] = {}
        if self._last is not None:
            at, before = self._last
            names = [process.name for process in self._stack.processes()]
            cores = {name: round((cpu[name] - before[name]) / (now - at), 2) for name in names}
            cores["other"] = round(other_load(before, cpu, now - at), 2)
        self._last = (now, cpu)
        self.samples.append(
            {
                "seconds": round(now - self._start, 2),
                "accepted": self._accepted.done,
                "unrouted": self._stack.store.unrouted_count(),
                "waiting": self._waiting(),
                "starting": metrics.get(STARTING),
                "window": metrics.get(WINDOW),
                "cores": cores,
            }
        )

    def summary(self) -> dict[str, Any]:
        """Peaks and ranges over every sample, and at most `KEPT` samples spread evenly."""
        windows = [s["window"] for s in self.samples if s["window"] is not None]
        step = max(1, math.ceil(len(self.samples) / KEPT))
        kept = self.samples[::step]
        if kept[-1] is not self.samples[-1]:
            kept.append(self.samples[-1])
        return {
            "backlog_peak": max((s["unrouted"] for s in self.samples), default=0),
            "starting_peak": max((s["starting"] or 0 for s in self.samples), default=0),
            "window_min": min(windows, default=None),
            "window_max": max(windows, default=None),
            "window_last": windows[-1] if windows else None,
            "metrics_missed": sum(1 for s in self.samples if s["window"] is None),
            "timeline": kept,
        }


async def run(
    fresh_stack: Callable[[str], AbstractAsyncContextManager[Stack]], sizes: Sizes
) -> AsyncIterator[dict[str, Any]]:
    """Paced, then unpaced, each on a stack of its own (`fresh_stack(label)`); after each, the
    figures so far, and the ratio once both ran."""
    sides: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        async with fresh_stack(f"burst-{side}") as stack:
            say(f"burst: {sizes.burst_users} users entering, {side}")
            sides[side] = await _side(stack, sizes, unpaced=side == "unpaced")
        figures: dict[str, Any] = {"users": sizes.burst_users, **sides, "floor": FLOOR}
        if len(sides) == len(SIDES):
            ratio = sides["unpaced"]["entered_per_s"] / sides["paced"]["entered_per_s"]
            figures |= {"ratio": ratio, "met": ratio >= FLOOR}
        yield figures


async def _side(stack: Stack, sizes: Sizes, *, unpaced: bool) -> dict[str, Any]:
    journey_id = f"bench-burst-{uuid.uuid4().hex[:6]}"
    await stack.publish(capacity.journey(journey_id))
    users = sizes.burst_users
    calls = [track(f"{journey_id}-u{i}", "Capacity Enter") for i in range(users)]

    def waiting() -> int:
        return stack.store.node_counts(journey_id).get(capacity.NODE, {}).get("waiting", 0)

    await stack.settle()
    accepted = Progress("entries accepted", users)
    cpu = stack.cpu()
    start = time.perf_counter()
    async with Timeline(stack, start, accepted, waiting) as timeline:
        reached = asyncio.create_task(
            until(
                waiting, users, Progress("users waiting", users), timeout=sizes.timeout,
                check=stack.check, interval=0.5,
            )
        )  # fmt: skip
        if unpaced:
            sent = await post_batches(stack.http, calls, accepted)
        else:
            await capacity.paced(stack, calls, waiting, accepted)
            sent = time.perf_counter()
        done = await reached
    after = stack.cpu()
    names = [process.name for process in stack.processes()]
    return {
        "seconds": done - start,
        "entered_per_s": users / (done - start),
        "accepted_per_s": users / (sent - start),
        "cpu_ms_per_user": cpu_ms_per(cpu, after, users, names),
        "other_load_cores": other_load(cpu, after, done - start),
        **timeline.summary(),
    }

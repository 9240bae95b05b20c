"""Capacity: N users waiting at once in a 24 h wait node, for growing N.

For each size: the users enter through `POST /v1/batch`, 400 at a time, the next 400 sent only
while fewer than `IN_FLIGHT` (1,000) are on the way, so up to 1,399 at once (the clock stops
when the store shows all of them waiting at the node); the resident memory of the worker, the
Temporal server and the API is taken while they all wait; then one event each releases them,
paced alike (the clock stops when every enrollment has completed). Memory is sampled twice a
second; the peak is kept too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bench.common import (
    BATCH_SIZE,
    BATCHES_IN_FLIGHT,
    Progress,
    Sampler,
    Sizes,
    post_batches,
    say,
    track,
    until,
)
from bench.stack import Process, Stack

NODE = "hold"
MIB = 1024 * 1024
IN_FLIGHT = 1_000
"""The next chunk of users is sent only while fewer than this are sent but not yet through, as
a client with back-pressure would hold back (a chunk is `BATCH_SIZE * BATCHES_IN_FLIGHT`, 400,
so up to 1,399 can be on the way). A burst of 20,000 at once queued workflow tasks on the dev
server faster than the worker took them, and the server then spent its CPU on that backlog: 8
users entered/s instead of 33."""


def journey(journey_id: str) -> dict[str, Any]:
    """Enter on `Capacity Enter`, wait up to 24 h for `Capacity Release`, end."""
    return {
        "id": journey_id,
        "name": "Bench: capacity",
        "entry": {"event": "Capacity Enter"},
        "start": NODE,
        "nodes": {
            NODE: {
                "type": "wait_for_event",
                "timeout": "24h",
                "paths": [{"event": "Capacity Release", "next": None}],
            }
        },
    }


class PeakMemory(Sampler):
    """Samples the resident memory of some processes until stopped; keeps the peaks."""

    def __init__(self, processes: dict[str, Process], every: float = 0.5) -> None:
        super().__init__(every)
        self._processes = processes
        self.peak = dict.fromkeys(processes, 0)

    def now(self) -> dict[str, int]:
        """Each process's resident memory now (and the peaks updated)."""
        sizes = {name: process.rss() for name, process in self._processes.items()}
        for name, size in sizes.items():
            self.peak[name] = max(self.peak[name], size)
        return sizes

    async def sample(self) -> None:
        """Update the peaks."""
        self.now()


async def run(
    fresh_stack: Callable[[str], AbstractAsyncContextManager[Stack]], sizes: Sizes
) -> AsyncIterator[dict[str, Any]]:
    """Every size in turn, each on a stack of its own (`fresh_stack(label)`), so that one
    size's histories do not weigh on the next: after each, the figures so far and how each
    grows with the number of users."""
    results: list[dict[str, Any]] = []
    for users in sizes.capacity:
        async with fresh_stack(f"capacity-{users}") as stack:
            say(f"capacity: {users} users waiting in a 24 h wait")
            results.append(await _size(stack, sizes, users))
        yield {"sizes": results, "growth": growth(results)}


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each size against the smallest: how many times the users, the memory each process
    gained while they waited, and the times to enter and release them."""
    if not results:
        return []
    base = results[0]

    def times(key: str, result: dict[str, Any]) -> float:
        return float(result[key]) / max(float(base[key]), 1e-9)

    return [
        {
            "users": result["users"],
            "users_x": result["users"] / base["users"],
            "worker_added_x": times("worker_added_mib", result),
            "server_added_x": times("server_added_mib", result),
            "enter_seconds_x": times("enter_seconds", result),
            "release_seconds_x": times("release_seconds", result),
        }
        for result in results
    ]


async def paced(
    stack: Stack,
    calls: list[dict[str, Any]],
    through: Callable[[], int],
    progress: Progress | None = None,
) -> None:
    """Send the calls in chunks of `BATCH_SIZE * BATCHES_IN_FLIGHT`, each only while fewer than
    `IN_FLIGHT` are sent but not yet `through`: up to `IN_FLIGHT` + 399 can be on the way.
    `progress` counts the calls the API has accepted."""
    sent = 0
    for start in range(0, len(calls), BATCH_SIZE * BATCHES_IN_FLIGHT):
        chunk = calls[start : start + BATCH_SIZE * BATCHES_IN_FLIGHT]
        while sent - through() >= IN_FLIGHT:
            stack.check()
            await asyncio.sleep(0.2)
        await post_batches(stack.http, chunk)
        sent += len(chunk)
        if progress is not None:
            progress.update(sent)


async def _phase(
    stack: Stack,
    sizes: Sizes,
    ids: list[str],
    event: str,
    *,
    through: Callable[[], int],
    label: str,
) -> float:
    """Send `event` for each of `ids`, paced; the seconds until `through` counts them all."""
    users = len(ids)
    start = time.perf_counter()
    reached = asyncio.create_task(
        until(
            through, users, Progress(label, users), timeout=sizes.timeout, check=stack.check,
            interval=0.5,
        )
    )  # fmt: skip
    await paced(stack, [track(user, event) for user in ids], through)
    done = await reached
    return done - start


async def _size(stack: Stack, sizes: Sizes, users: int) -> dict[str, Any]:
    journey_id = f"bench-capacity-{users}-{uuid.uuid4().hex[:6]}"
    await stack.publish(journey(journey_id))
    ids = [f"{journey_id}-u{i}" for i in range(users)]
    processes = {"worker": stack.worker, "server": stack.server, "api": stack.api}
    await stack.settle()
    async with PeakMemory(processes) as memory:
        before = memory.now()

        def waiting() -> int:
            return stack.store.node_counts(journey_id).get(NODE, {}).get("waiting", 0)

        def completed() -> int:
            return stack.store.journey_counts(journey_id)["completed"]

        enter_seconds = await _phase(
            stack, sizes, ids, "Capacity Enter", through=waiting, label="users waiting"
        )
        await asyncio.sleep(1)  # the last workflow tasks settle before memory is read
        held = memory.now()
        release_seconds = await _phase(
            stack, sizes, ids, "Capacity Release", through=completed, label="users released"
        )
    return {
        "users": users,
        "enter_seconds": enter_seconds,
        "enter_per_s": users / enter_seconds,
        "release_seconds": release_seconds,
        "release_per_s": users / release_seconds,
        **{f"{name}_rss_mib": held[name] / MIB for name in processes},
        **{f"{name}_peak_mib": memory.peak[name] / MIB for name in processes},
        **{f"{name}_added_mib": (held[name] - before[name]) / MIB for name in processes},
    }

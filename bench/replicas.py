"""Replicas: 1, 2 and 3 API processes (`journeys api`, each with its event router) on one
PostgreSQL store and one Temporal, with events sent through all of them.

For each count of replicas, a stack of its own, with a database created for it: `users` users
enter the ingest benchmark's journey (a 1-day inactivity wait that every `Ingest Ping`
restarts) through the replicas in turn; then `events` pings go, batch after batch, to each
replica in turn. The clock runs from the first ping sent until the outbox is empty (every event
stored and routed). Then every run's history is read (each run of the chain, should one have
continued as new): *signals per event* is the event signals found there (`EVENT_SIGNAL`, one
`WorkflowExecutionSignaled` each, the entry's signal-with-start included) over the events sent
(target 1.00: each event routed by exactly one router), and *lost* the events sent that no
history holds. Each replica's `journeys_events_routed_total` shows how the routing was shared.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from temporalio.client import Client

from bench import ingest
from bench.common import (
    Progress,
    Sizes,
    batch_size,
    bounded,
    cpu_ms_per,
    other_load,
    post_batches,
    say,
    track,
)
from bench.postgres import ENV
from bench.stack import Stack, scrape
from journeys.contracts import EVENT_SIGNAL, workflow_id
from relay.router import USERS_AT_ONCE

TARGET = 1.0
ROUTED = "journeys_events_routed_total"
SKIPPED = f"no PostgreSQL: give --postgres-url or {ENV} (a role with CREATEDB)"


async def run(
    fresh_stack: Callable[..., AbstractAsyncContextManager[Stack]],
    sizes: Sizes,
    postgres_url: str | None,
) -> AsyncIterator[dict[str, Any]]:
    """Each count of replicas in turn, on a stack of its own (`fresh_stack(label,
    postgres_url=..., apis=...)`); after each, the figures so far. Without `postgres_url`,
    only the reason it was skipped."""
    if postgres_url is None:
        say(f"replicas: skipped, {SKIPPED}")
        yield {"skipped": SKIPPED}
        return
    counts: list[dict[str, Any]] = []
    for apis in sizes.replicas:
        async with fresh_stack(f"replicas-{apis}", postgres_url=postgres_url, apis=apis) as stack:
            say(f"replicas: {apis} API processes on one PostgreSQL store")
            counts.append(await _replicas(stack, sizes))
        yield {
            "users": sizes.replicas_users,
            "events": sizes.replicas_events,
            "counts": counts,
            "target": TARGET,
            "met": all(count["met"] for count in counts),
        }


async def _replicas(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    journey_id, entries = await ingest.listening(
        stack, "bench-replicas", sizes.replicas_users, sizes.timeout
    )
    users = [entry["userId"] for entry in entries]
    clients = [replica.http for replica in stack.apis]
    pings = [track(users[i % len(users)], "Ingest Ping", n=i) for i in range(sizes.replicas_events)]
    await stack.settle()
    routed_before = await _routed_by(clients)
    sending = Progress("events accepted", len(pings))
    cpu = stack.cpu()
    start = time.perf_counter()
    routed = stack.outbox_drained(sending, sizes.timeout)
    accepted = await post_batches(
        clients, pings, sending, batch_size=batch_size(len(pings), len(clients))
    )
    done = await routed
    after = stack.cpu()
    routed_after = await _routed_by(clients)
    apis = [replica.process.name for replica in stack.apis]
    say("  reading every run's history")
    sent = [call["messageId"] for call in [*entries, *pings]]
    signalled: Counter[str] = Counter()
    for found in await bounded(
        [_signalled(stack.temporal, workflow_id(journey_id, user)) for user in users],
        USERS_AT_ONCE,
    ):
        signalled.update(found)
    signals = sum(signalled.values())
    lost = sum(1 for message_id in sent if message_id not in signalled)
    per_event = signals / len(sent)
    return {
        "apis": len(apis),
        "database": stack.database.name if stack.database is not None else None,
        "events_sent": len(sent),
        "signals": signals,
        "signals_per_event": per_event,
        "lost": lost,
        "met": signals == len(sent) and lost == 0,
        "routed_per_s": len(pings) / (done - start),
        "accepted_per_s": len(pings) / (accepted - start),
        "seconds": done - start,
        "routed_by_replica": [int(b - a) for a, b in zip(routed_before, routed_after, strict=True)],
        "cpu_ms_per_event": cpu_ms_per(cpu, after, len(pings), [*apis, "postgres", "temporal"]),
        "other_load_cores": other_load(cpu, after, done - start),
    }


async def _routed_by(clients: Sequence[httpx.AsyncClient]) -> list[float]:
    """How many events each replica has routed so far."""
    return [(await scrape(client)).get(ROUTED, 0.0) for client in clients]


async def _signalled(client: Client, workflow: str) -> list[str]:
    """The message ids of the events signalled to every run of `workflow` (the latest run and
    the ones it continued from), one per signal."""
    found: list[str] = []
    run_id: str | None = None
    while True:
        previous = ""
        handle = client.get_workflow_handle(workflow, run_id=run_id)
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                started = event.workflow_execution_started_event_attributes
                previous = started.continued_execution_run_id
            elif event.HasField("workflow_execution_signaled_event_attributes"):
                signal = event.workflow_execution_signaled_event_attributes
                if signal.signal_name == EVENT_SIGNAL:
                    [payload] = signal.input.payloads
                    found.append(json.loads(payload.data)["message_id"])
        if not previous:
            return found
        run_id = previous

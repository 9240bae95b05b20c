"""Ingest: events per second accepted by `POST /v1/batch` and routed to running journeys,
against a plain temporalio client signalling as many plain workflows, in the same run.

The journeys side: `users` runs wait in a 1-day inactivity wait that watches `Ingest Ping`, so
the router signals every ping to its user's run. The clock runs from the first batch sent until
the outbox is empty (every event stored and signalled). The bare side: as many `BareSignals`
runs, signalled with the same payloads straight from the client, as many at once as the
router signals (its `USERS_AT_ONCE`); the clock runs until the last signal is acknowledged.
CPU per event is the sender's (the API with its router; the benchmark's client) and the
server's while the clock runs; the workers' handling of the signals follows later.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.bare import BARE_SIGNALS, DONE_SIGNAL
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
    until,
)
from bench.stack import BARE_QUEUE, Stack
from journeys.contracts import EVENT_SIGNAL, JourneyEvent, workflow_id
from relay.router import USERS_AT_ONCE

TARGET = 0.7
NODE = "listen"


def journey(journey_id: str) -> dict[str, Any]:
    """Users wait a day for inactivity, and every ping restarts the clock."""
    return {
        "id": journey_id,
        "name": "Bench: ingest",
        "entry": {"event": "Ingest Start"},
        "start": NODE,
        "nodes": {
            NODE: {"type": "wait_for_inactivity", "duration": "1d", "events": ["Ingest Ping"]}
        },
    }


async def run(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    """Both sides, journeys first; the rates and their ratio."""
    say("ingest: journeys through POST /v1/batch and the router")
    journeys = await _journeys(stack, sizes)
    await stack.settle()
    say("ingest: bare SDK signals")
    bare = await _bare(stack, sizes)
    await stack.settle()
    ratio = journeys["routed_per_s"] / bare["signalled_per_s"]
    return {
        "events": sizes.ingest_events,
        "users": sizes.ingest_users,
        "journeys": journeys,
        "bare": bare,
        "ratio": ratio,
        "target": TARGET,
        "met": ratio >= TARGET,
    }


async def listening(
    stack: Stack, label: str, users: int, timeout: float
) -> tuple[str, list[dict[str, Any]]]:
    """Publish the journey (its id starts with `label`) and enter `users` users, their
    entries sent through each API process of the stack in turn; once they all wait, the
    journey's id and the entries sent."""
    journey_id = f"{label}-{uuid.uuid4().hex[:6]}"
    await stack.publish(journey(journey_id))
    entries = [track(f"{journey_id}-u{i}", "Ingest Start") for i in range(users)]
    clients = [replica.http for replica in stack.apis]
    await post_batches(clients, entries, batch_size=batch_size(users, len(clients)))

    def waiting() -> int:
        return stack.store.node_counts(journey_id).get(NODE, {}).get("waiting", 0)

    await until(
        waiting, users, Progress("users entered", users), timeout=timeout, check=stack.check
    )
    return journey_id, entries


async def _journeys(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    journey_id, entries = await listening(stack, "bench-ingest", sizes.ingest_users, sizes.timeout)
    users = [entry["userId"] for entry in entries]
    pings = [track(users[i % len(users)], "Ingest Ping", n=i) for i in range(sizes.ingest_events)]
    await stack.settle()
    sending = Progress("events accepted", sizes.ingest_events)
    cpu = stack.cpu()
    start = time.perf_counter()
    routed = stack.outbox_drained(sending, sizes.timeout)
    accepted = await post_batches(stack.http, pings, sending)
    done = await routed
    after = stack.cpu()
    used = cpu_ms_per(cpu, after, sizes.ingest_events, ("api", "temporal"))
    others = other_load(cpu, after, done - start)
    await bounded(
        [
            stack.temporal.get_workflow_handle(workflow_id(journey_id, user)).terminate()
            for user in users
        ],
        USERS_AT_ONCE,
    )
    return {
        "accepted_per_s": sizes.ingest_events / (accepted - start),
        "routed_per_s": sizes.ingest_events / (done - start),
        "seconds": done - start,
        "cpu_ms_per_event": used,
        "other_load_cores": others,
    }


async def _bare(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    ids = [f"bare-ingest-{run}-{i}" for i in range(sizes.ingest_users)]
    handles = await bounded(
        [stack.temporal.start_workflow(BARE_SIGNALS, id=id, task_queue=BARE_QUEUE) for id in ids],
        USERS_AT_ONCE,
    )
    now = datetime.now(UTC)
    events = [
        JourneyEvent(
            message_id=uuid.uuid4().hex, name="Ingest Ping", properties={"n": i}, timestamp=now
        )
        for i in range(sizes.ingest_events)
    ]
    progress = Progress("signals acknowledged", len(events))
    signalled = 0

    async def signal(index: int) -> None:
        nonlocal signalled
        await handles[index % len(handles)].signal(EVENT_SIGNAL, events[index])
        signalled += 1
        progress.update(signalled)

    await stack.settle()
    cpu = stack.cpu()
    start = time.perf_counter()
    await bounded([signal(i) for i in range(len(events))], USERS_AT_ONCE)
    done = time.perf_counter()
    after = stack.cpu()
    used = cpu_ms_per(cpu, after, len(events), ("driver", "temporal"))
    progress.update(signalled, force=True)
    await bounded([handle.signal(DONE_SIGNAL) for handle in handles], USERS_AT_ONCE)
    return {
        "signalled_per_s": len(events) / (done - start),
        "seconds": done - start,
        "cpu_ms_per_event": used,
        "other_load_cores": other_load(cpu, after, done - start),
    }

"""Event-to-message latency: from `POST /v1/track` of a triggering event to the loopback webhook
receiver getting the message, at steady rates.

Every event enters a new user into a journey whose only node sends a webhook, so each sample
is the whole path: ingest, outbox, router, signal-with-start, the first workflow task, the
interpreter's progress records, the delivery activity and the HTTP request. Events are sent on
a fixed schedule (open loop): a slow system does not slow the sender down.

At the highest rate, which saturates this machine, the same schedule also drives the entry
path's bare-SDK side: the benchmark signal-with-starts a `bench.bare.BareEntry` run per event
(on the bare worker, with the same tuning), which delivers the same webhook through the same
activity and ends. Messages delivered per second on each side, from the first event to the last
message, give the entry path's ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.service import RPCError

from bench.bare import BARE_ENTRY
from bench.bare_inputs import EntryInput
from bench.common import Progress, Sizes, cpu_ms_per, other_load, percentile, say, until
from bench.receiver import Receiver
from bench.stack import BARE_QUEUE, Stack
from journeys.contracts import EVENT_SIGNAL, JourneyEvent

TARGET_P99_MS = 150.0
TARGET_RATE = 20
TARGET_ENTRY_RATIO = 0.9
"""Entry path saturated: journeys delivered per second ÷ the bare side's, at least."""
JOURNEYS_CPU = ("api", "worker", "temporal")
BARE_CPU = ("bare-worker", "temporal", "driver")
"""Whose CPU an event is charged on each side: the bare side's client is the benchmark. On a
PostgreSQL store, each side is charged the database's backends too ("postgres"): both sides'
deliveries are recorded there."""
STEP = "message"
DRAIN_SECONDS = 30.0
"""How long to wait for the last messages after the last event was sent."""


BODY = {"user": "{{ user.id }}", "step": STEP}


def ping(rate: int) -> str:
    """The entry event of the rate's journey: each rate's own, so the journeys of the rates
    before it, still live, do not take its events too."""
    return f"Latency Ping {rate}/s"


def journey(journey_id: str, url: str, event: str) -> dict[str, Any]:
    """Enter on `event`, send one webhook, end."""
    return {
        "id": journey_id,
        "name": "Bench: latency",
        "entry": {"event": event},
        "start": "notify",
        "nodes": {
            "notify": {
                "type": "message",
                "channel": "webhook",
                "content": {"url": url, "body": BODY},
            }
        },
    }


async def run(stack: Stack, sizes: Sizes, receiver: Receiver) -> dict[str, Any]:
    """One steady rate after another, percentiles per rate; at the highest, the bare side of
    the entry path too."""
    results: dict[str, Any] = {}
    for rate in sizes.latency_rates:
        await stack.settle()
        say(f"latency: {rate} events/s for {sizes.latency_seconds:g} s")
        results[str(rate)] = await _journeys_at_rate(stack, sizes, receiver, rate)
    saturated = max(sizes.latency_rates)
    await stack.settle()
    say(f"latency: bare entry path, {saturated} events/s for {sizes.latency_seconds:g} s")
    bare = await _bare_at_rate(stack, sizes, receiver, saturated)
    entry_ratio = results[str(saturated)]["delivered_per_s"] / bare["delivered_per_s"]
    say(
        f"latency: entry path at {saturated}/s delivered "
        f"{results[str(saturated)]['delivered_per_s']:.1f}/s (journeys) against "
        f"{bare['delivered_per_s']:.1f}/s (bare signal-with-start → activity): "
        f"{entry_ratio:.2f}"
    )
    twenty = results.get(str(TARGET_RATE))
    return {
        "rates": results,
        "target_p99_ms": TARGET_P99_MS,
        "target_rate": TARGET_RATE,
        "met": None if twenty is None else twenty["p99_ms"] < TARGET_P99_MS,
        "entry_path": {
            "rate": saturated,
            "journeys_per_s": results[str(saturated)]["delivered_per_s"],
            "bare_per_s": bare["delivered_per_s"],
            "bare": bare,
            "ratio": entry_ratio,
            "target": TARGET_ENTRY_RATIO,
            "met": entry_ratio >= TARGET_ENTRY_RATIO,
        },
    }


async def _journeys_at_rate(
    stack: Stack, sizes: Sizes, receiver: Receiver, rate: int
) -> dict[str, Any]:
    """Entry events through the API, each entering a new user into a one-message journey."""
    journey_id = f"bench-latency-{rate}-{uuid.uuid4().hex[:6]}"
    await stack.publish(journey(journey_id, receiver.url, ping(rate)))

    async def send(user: str) -> bool:
        body = {"userId": user, "event": ping(rate), "messageId": uuid.uuid4().hex}
        try:
            response = await stack.http.post("/v1/track", json=body)
        except httpx.HTTPError:
            return False  # its message never comes: counted as lost too
        return response.status_code == 200

    return await _paced(
        stack, sizes, receiver, rate, prefix=journey_id, send_one=send, charged=JOURNEYS_CPU
    )


async def _bare_at_rate(
    stack: Stack, sizes: Sizes, receiver: Receiver, rate: int
) -> dict[str, Any]:
    """Bare runs started by signal-with-start with the entry event, each sending the webhook."""
    prefix = f"bare-entry-{rate}-{uuid.uuid4().hex[:6]}"

    async def send(user: str) -> bool:
        event = JourneyEvent(
            message_id=uuid.uuid4().hex, name=ping(rate), timestamp=datetime.now(UTC)
        )
        try:
            await stack.temporal.start_workflow(
                BARE_ENTRY,
                EntryInput(journey_id=prefix, user_id=user, webhook_url=receiver.url, body=BODY),
                id=user,
                task_queue=BARE_QUEUE,
                start_signal=EVENT_SIGNAL,
                start_signal_args=[event],
            )
        except RPCError:
            return False  # its message never comes: counted as lost too
        return True

    return await _paced(
        stack, sizes, receiver, rate, prefix=prefix, send_one=send, charged=BARE_CPU
    )


async def _paced(
    stack: Stack,
    sizes: Sizes,
    receiver: Receiver,
    rate: int,
    *,
    prefix: str,
    send_one: Callable[[str], Awaitable[bool]],
    charged: Sequence[str],
) -> dict[str, Any]:
    """Send one event per user at `rate` (open loop) with `send_one` (False: it failed), wait
    for their messages, and measure: latencies, messages delivered per second from the first
    send to the last message, and the CPU per event of the `charged` processes (and of the
    store's database, when the stack has one)."""
    if stack.database is not None:
        charged = (*charged, "postgres")
    count = max(1, round(rate * sizes.latency_seconds))
    users = [f"{prefix}-u{i}" for i in range(count)]
    sent: dict[str, float] = {}
    progress = Progress("events sent", count)
    failures = 0

    async def send(user: str) -> None:
        nonlocal failures
        sent[user] = time.perf_counter()
        if not await send_one(user):
            failures += 1

    cpu = stack.cpu()
    start = time.perf_counter()
    tasks = []
    for index, user in enumerate(users):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(user)))
        progress.update(index + 1)
    last_sent = time.perf_counter()
    await asyncio.gather(*tasks)
    progress.update(count, force=True)
    wanted = set(users)
    with contextlib.suppress(TimeoutError):  # what did not arrive is reported as lost
        await until(
            lambda: receiver.count(STEP, wanted),
            count,
            Progress("messages received", count),
            timeout=DRAIN_SECONDS,
            check=stack.check,
        )
    after = stack.cpu()
    used = cpu_ms_per(cpu, after, count, charged)
    others = other_load(cpu, after, time.perf_counter() - start)
    arrived = {
        user: receiver.arrivals[user][STEP]
        for user in users
        if STEP in receiver.arrivals.get(user, {})
    }
    if not arrived:
        raise RuntimeError(f"no message of the {rate}/s run ({prefix}) reached the receiver")
    latencies = [(arrived[user] - sent[user]) * 1000 for user in arrived]
    return {
        "events": count,
        "delivered_per_s": len(arrived) / (max(arrived.values()) - start),
        "sent_per_s": (count - 1) / (last_sent - start) if count > 1 else float(rate),
        "received": len(latencies),
        "lost": count - len(latencies),
        "rejected": failures,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "cpu_ms_per_event": used,
        "other_load_cores": others,
    }

"""Event-to-message latency: from `POST /v1/track` of a triggering event to the loopback webhook
receiver getting the message, at steady rates.

Every event enters a new user into a journey whose only node sends a webhook, so each sample
is the whole path: ingest, outbox, router, signal-with-start, the first workflow task, the
interpreter's progress records, the delivery activity and the HTTP request. Events are sent on
a fixed schedule (open loop): a slow system does not slow the sender down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import httpx

from bench.common import Progress, Sizes, cpu_ms_per, other_load, percentile, say, until
from bench.receiver import Receiver
from bench.stack import Stack

TARGET_P99_MS = 250.0
TARGET_RATE = 20
STEP = "message"
DRAIN_SECONDS = 30.0
"""How long to wait for the last messages after the last event was sent."""


def journey(journey_id: str, url: str) -> dict[str, Any]:
    """Enter on `Latency Ping`, send one webhook, end."""
    return {
        "id": journey_id,
        "name": "Bench: latency",
        "entry": {"event": "Latency Ping"},
        "start": "notify",
        "nodes": {
            "notify": {
                "type": "message",
                "channel": "webhook",
                "content": {"url": url, "body": {"user": "{{ user.id }}", "step": STEP}},
            }
        },
    }


async def run(stack: Stack, sizes: Sizes, receiver: Receiver) -> dict[str, Any]:
    """One steady rate after another; percentiles per rate."""
    results: dict[str, Any] = {}
    for rate in sizes.latency_rates:
        await stack.settle()
        say(f"latency: {rate} events/s for {sizes.latency_seconds:g} s")
        results[str(rate)] = await _at_rate(stack, sizes, receiver, rate)
    twenty = results.get(str(TARGET_RATE))
    return {
        "rates": results,
        "target_p99_ms": TARGET_P99_MS,
        "target_rate": TARGET_RATE,
        "met": None if twenty is None else twenty["p99_ms"] < TARGET_P99_MS,
    }


async def _at_rate(stack: Stack, sizes: Sizes, receiver: Receiver, rate: int) -> dict[str, Any]:
    journey_id = f"bench-latency-{rate}-{uuid.uuid4().hex[:6]}"
    await stack.publish(journey(journey_id, receiver.url))
    count = max(1, round(rate * sizes.latency_seconds))
    users = [f"{journey_id}-u{i}" for i in range(count)]
    sent: dict[str, float] = {}
    progress = Progress("events sent", count)
    failures = 0

    async def send(user: str) -> None:
        nonlocal failures
        sent[user] = time.perf_counter()
        body = {"userId": user, "event": "Latency Ping", "messageId": uuid.uuid4().hex}
        try:
            response = await stack.http.post("/v1/track", json=body)
        except httpx.HTTPError:
            failures += 1  # its message never comes: counted as lost too
            return
        if response.status_code != 200:
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
    used = cpu_ms_per(cpu, after, count, ("api", "worker", "temporal"))
    others = other_load(cpu, after, time.perf_counter() - start)
    latencies = [
        (receiver.arrivals[user][STEP] - sent[user]) * 1000
        for user in users
        if STEP in receiver.arrivals.get(user, {})
    ]
    if not latencies:
        raise RuntimeError(f"no message of the {rate}/s run reached the receiver")
    return {
        "events": count,
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

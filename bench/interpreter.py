"""Interpreter overhead: journeys completed per second for a five-step journey (wait → branch
→ message → delay → message) against `bench.bare.BareFiveStep`, the same steps written by hand
with the same activities.

Both sides start their runs straight from a Temporal client (signal-with-start with the event
the wait waits for), so the API is out of the picture: the difference is the interpreter (its
progress records, search attributes and checks). Rounds alternate bare and journeys, so load
from elsewhere on the machine hits both alike; the clock of a side runs from its first start
until visibility counts every run of it completed. CPU per run adds up what the side's
worker, the server and the benchmark's client spent meanwhile: a figure that other load on the
machine hardly moves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bench.bare import BARE_FIVE_STEP
from bench.bare_inputs import FiveStepInput
from bench.common import Progress, Sizes, bounded, other_load, say, until
from bench.receiver import Receiver
from bench.stack import BARE_QUEUE, JOURNEYS_QUEUE, Stack
from journeys.contracts import EVENT_SIGNAL, EntryContext, JourneyEvent
from journeys.model import Journey
from relay.router import USERS_AT_ONCE
from workflows.client import start_journey

TARGET = 0.90
WAIT_FOR = "Go"
DELAY_SECONDS = 1
PRO = {"field": "user.plan", "op": "eq", "value": "pro"}
ROLES = ("worker", "server", "client")
"""Whose CPU a side's runs are charged: its worker, the Temporal server, the benchmark."""


def journey(journey_id: str, url: str) -> dict[str, Any]:
    """wait → branch → message → delay → message, as a journey document."""

    def message(step: str) -> dict[str, Any]:
        return {"url": url, "body": {"user": "{{ user.id }}", "step": step}}

    return {
        "id": journey_id,
        "name": "Bench: five steps",
        "entry": {"event": "Bench Steps"},
        "start": "wait",
        "nodes": {
            "wait": {
                "type": "wait_for_event",
                "timeout": "1h",
                "paths": [{"event": WAIT_FOR, "next": "branch"}],
            },
            "branch": {
                "type": "branch",
                "paths": [{"when": PRO, "next": "first_pro"}],
                "else": "first",
            },
            "first_pro": {
                "type": "message", "channel": "webhook", "content": message("first_pro"),
                "next": "pause",
            },
            "first": {
                "type": "message", "channel": "webhook", "content": message("first"),
                "next": "pause",
            },
            "pause": {"type": "delay", "duration": f"{DELAY_SECONDS}s", "next": "second"},
            "second": {"type": "message", "channel": "webhook", "content": message("second")},
        },
    }  # fmt: skip


async def run(stack: Stack, sizes: Sizes, receiver: Receiver) -> dict[str, Any]:
    """Alternating rounds; completed runs per second of each side and their ratio."""
    totals = {"bare": 0.0, "journeys": 0.0}
    cpu = {side: dict.fromkeys(ROLES, 0.0) for side in totals}
    rounds = []
    for number in range(1, sizes.interpreter_rounds + 1):
        say(f"interpreter: round {number}, bare workflow")
        bare, bare_cpu, bare_others = await _measured(
            stack, _bare(stack, sizes, receiver.url), "bare-worker"
        )
        say(f"interpreter: round {number}, journeys interpreter")
        interpreted, journeys_cpu, journeys_others = await _measured(
            stack, _journeys(stack, sizes, receiver.url), "worker"
        )
        totals["bare"] += bare
        totals["journeys"] += interpreted
        for side, spent in (("bare", bare_cpu), ("journeys", journeys_cpu)):
            for role in ROLES:
                cpu[side][role] += spent[role]
        n = sizes.interpreter_journeys
        rounds.append(
            {
                "bare_per_s": n / bare,
                "journeys_per_s": n / interpreted,
                "bare_other_load_cores": bare_others,
                "journeys_other_load_cores": journeys_others,
            }
        )
    runs = sizes.interpreter_journeys * sizes.interpreter_rounds
    bare_rate, journeys_rate = runs / totals["bare"], runs / totals["journeys"]
    ratio = journeys_rate / bare_rate
    return {
        "journeys_per_side": runs,
        "delay_seconds": DELAY_SECONDS,
        "bare_per_s": bare_rate,
        "journeys_per_s": journeys_rate,
        "bare_cpu_ms_per_run": _per_run(cpu["bare"], runs),
        "journeys_cpu_ms_per_run": _per_run(cpu["journeys"], runs),
        "rounds": rounds,
        "ratio": ratio,
        "target": TARGET,
        "met": ratio >= TARGET,
    }


def _per_run(seconds: dict[str, float], runs: int) -> dict[str, float]:
    """CPU milliseconds per run of each of `ROLES`, and their total."""
    spent = {role: seconds[role] * 1000 / runs for role in ROLES}
    return {**spent, "total": sum(spent.values())}


async def _measured(
    stack: Stack, side: Awaitable[float], worker: str
) -> tuple[float, dict[str, float], float]:
    """Run one side on a settled stack: its seconds, the CPU seconds its worker, the server
    and this process (its client) spent meanwhile (by `ROLES`), and the cores other work kept
    busy."""
    await stack.settle()
    before = stack.cpu()
    seconds = await side
    after = stack.cpu()
    used = {
        role: after[name] - before[name]
        for role, name in zip(ROLES, (worker, "temporal", "driver"), strict=True)
    }
    return seconds, used, other_load(before, after, seconds)


def _go() -> JourneyEvent:
    return JourneyEvent(message_id=uuid.uuid4().hex, name=WAIT_FOR, timestamp=datetime.now(UTC))


async def _completed(stack: Stack, query: str, count: int, label: str, timeout: float) -> float:
    async def completed() -> int:
        counted = await stack.temporal.count_workflows(f"{query} AND ExecutionStatus = 'Completed'")
        return counted.count

    return await until(
        completed, count, Progress(label, count), timeout=timeout, check=stack.check, interval=0.2
    )


async def _timed(
    stack: Stack,
    sizes: Sizes,
    start_one: Callable[[int], Coroutine[Any, Any, object]],
    query: str,
    label: str,
) -> float:
    """Seconds from the first of `interpreter_journeys` starts (`start_one(i)`, as many at once
    as the event router) until visibility counts every run the `query` finds completed."""
    count = sizes.interpreter_journeys
    start = time.perf_counter()
    await bounded([start_one(i) for i in range(count)], USERS_AT_ONCE)
    done = await _completed(stack, query, count, label, sizes.timeout)
    return done - start


async def _bare(stack: Stack, sizes: Sizes, url: str) -> float:
    """Seconds for `interpreter_journeys` hand-written runs, from the first start."""
    run = uuid.uuid4().hex[:6]
    prefix = f"bare-steps-{run}-"

    def start_one(i: int) -> Coroutine[Any, Any, object]:
        return stack.temporal.start_workflow(
            BARE_FIVE_STEP,
            FiveStepInput(
                journey_id=f"bare-steps-{run}",
                user_id=f"{prefix}{i}",
                wait_for=WAIT_FOR,
                delay_seconds=DELAY_SECONDS,
                webhook_url=url,
            ),
            id=f"{prefix}{i}",
            task_queue=BARE_QUEUE,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[_go()],
        )

    query = f"WorkflowType = '{BARE_FIVE_STEP}' AND WorkflowId STARTS_WITH '{prefix}'"
    return await _timed(stack, sizes, start_one, query, "bare runs completed")


async def _journeys(stack: Stack, sizes: Sizes, url: str) -> float:
    """Seconds for `interpreter_journeys` journey runs, from the first start."""
    journey_id = f"bench-steps-{uuid.uuid4().hex[:6]}"
    document = journey(journey_id, url)
    version = await stack.publish(document)
    model = Journey.model_validate(document)

    def start_one(i: int) -> Coroutine[Any, Any, object]:
        return start_journey(
            stack.temporal,
            journey=model,
            version=version,
            user_id=f"{journey_id}-u{i}",
            # No message id: the entry is not the event the wait waits for.
            entry=EntryContext(timestamp=datetime.now(UTC)),
            task_queue=JOURNEYS_QUEUE,
            event=_go(),
        )

    query = f"JourneyId = '{journey_id}'"
    return await _timed(stack, sizes, start_one, query, "journey runs completed")

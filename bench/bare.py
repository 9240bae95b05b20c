"""The bare-SDK baselines: plain Temporal workflows doing what the benchmarks measure.

`BareSignals` only counts the signals it receives (the ingest baseline). `BareFiveStep` is the
five-step journey of the interpreter benchmark written by hand: wait for an event, branch on a
trait, send a message, delay, send a message, through the very activities the interpreter uses
(`load_context`, `deliver`) with the same timeouts and retry policies. `BareEntry` is the entry
path's baseline: started by signal-with-start, it runs one webhook delivery and ends.

`bench.bare_worker` runs them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.bare_inputs import EntryInput, FiveStepInput
    from journeys.contracts import (
        EVENT_SIGNAL,
        Activity,
        DeliverInput,
        DeliveryOutcome,
        JourneyEvent,
        LoadContextInput,
        TemplateContext,
        UserContext,
    )
    from workflows.patches import DELIVERY_RETRY, DELIVERY_TIMEOUT, STORE_RETRY, STORE_TIMEOUT

BARE_SIGNALS = "BareSignals"
BARE_FIVE_STEP = "BareFiveStep"
BARE_ENTRY = "BareEntry"
DONE_SIGNAL = "done"


@workflow.defn(name=BARE_SIGNALS)
class BareSignals:
    """Counts `event` signals until `done`."""

    def __init__(self) -> None:
        self._events = 0
        self._done = False

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: JourneyEvent) -> None:
        """Count one event."""
        self._events += 1

    @workflow.signal(name=DONE_SIGNAL)
    def done(self) -> None:
        """End the run."""
        self._done = True

    @workflow.run
    async def run(self) -> int:
        """Wait for `done`; how many events arrived."""
        await workflow.wait_condition(lambda: self._done)
        return self._events


@workflow.defn(name=BARE_FIVE_STEP)
class BareFiveStep:
    """wait → branch → message → delay → message, by hand."""

    def __init__(self) -> None:
        self._events: list[JourneyEvent] = []

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: JourneyEvent) -> None:
        """Queue an event."""
        self._events.append(event)

    @workflow.run
    async def run(self, input: FiveStepInput) -> list[str]:
        """Walk the five steps; the nodes visited."""
        path = ["wait"]
        await workflow.wait_condition(
            lambda: any(e.name == input.wait_for for e in self._events),
            timeout=timedelta(hours=1),
        )
        path.append("branch")
        user = await workflow.execute_activity(
            Activity.LOAD_CONTEXT,
            LoadContextInput(user_id=input.user_id),
            result_type=UserContext,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        first = "first_pro" if user.traits.get("plan") == "pro" else "first"
        path.append(first)
        await self._message(input, first)
        path.append("pause")
        await workflow.sleep(timedelta(seconds=input.delay_seconds))
        path.append("second")
        await self._message(input, "second")
        return path

    async def _message(self, input: FiveStepInput, node_id: str) -> None:
        body = {"user": "{{ user.id }}", "step": node_id}
        await _webhook(input.journey_id, input.user_id, node_id, input.webhook_url, body)


@workflow.defn(name=BARE_ENTRY)
class BareEntry:
    """Started with the entry event (signal-with-start): one webhook, then the end."""

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: JourneyEvent) -> None:
        """Take the entry event (the run needs nothing from it)."""

    @workflow.run
    async def run(self, input: EntryInput) -> None:
        """Send the webhook."""
        await _webhook(input.journey_id, input.user_id, "notify", input.webhook_url, input.body)


async def _webhook(
    journey_id: str, user_id: str, node_id: str, url: str, body: dict[str, str]
) -> None:
    """Deliver a webhook through the interpreter's `deliver` activity, as a normal activity."""
    request = DeliverInput(
        idempotency_key=f"{workflow.info().workflow_id}:{node_id}",
        journey_id=journey_id,
        version=1,
        node_id=node_id,
        user_id=user_id,
        channel="webhook",
        content={"url": url, "body": body},
        context=TemplateContext(),
    )
    await workflow.execute_activity(
        Activity.DELIVER,
        request,
        result_type=DeliveryOutcome,
        start_to_close_timeout=DELIVERY_TIMEOUT,
        retry_policy=DELIVERY_RETRY,
    )

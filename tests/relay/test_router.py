"""The event router against a real Temporal dev server, a real worker and a real store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import EventType, JourneyOutcome, workflow_id
from journeys.routing import NoLiveJourney, RoutingUnavailable
from journeys.settings import Settings
from journeys.store import EventRecord, Store
from relay.router import EventRouter
from tests.factories import append_event, merge_traits
from worker.main import build_worker

WAIT_FOR_CHECKOUT: dict[str, Any] = {
    "wait": {
        "type": "wait_for_event",
        "timeout": "1h",
        "paths": [{"event": "Checkout Started", "next": "thanks"}],
    },
    "thanks": {
        "type": "message",
        "channel": "in_app",
        "content": {"body": "Thanks for {{ entry.sku }}, {{ event.order }}"},
    },
}


def publish(store: Store, journey_id: str, **document: Any) -> int:
    body = {
        "id": journey_id,
        "name": journey_id.title(),
        "entry": {"event": "Added to Cart"},
        "start": "wait",
        "nodes": WAIT_FOR_CHECKOUT,
        **document,
    }
    store.save_draft(journey_id, body)
    return store.publish(journey_id)


class Harness:
    """A router, a worker and helpers to drive them."""

    def __init__(self, env: WorkflowEnvironment, store: Store, router: EventRouter) -> None:
        self.env, self.store, self.router = env, store, router

    def track(
        self, user_id: str, name: str | None, type: EventType = "track", **properties: Any
    ) -> str:
        message_id = uuid.uuid4().hex
        append_event(
            self.store, message_id=message_id, user_id=user_id, type=type, name=name,
            properties=properties, timestamp=datetime.now(UTC),
        )  # fmt: skip
        return message_id

    async def route(self) -> int:
        return await self.router.route_pending()

    async def outcome(self, journey_id: str, user_id: str) -> JourneyOutcome:
        handle = self.env.client.get_workflow_handle(
            workflow_id(journey_id, user_id), result_type=JourneyOutcome
        )
        return await asyncio.wait_for(handle.result(), timeout=30)

    async def status(self, journey_id: str, user_id: str) -> WorkflowExecutionStatus | None:
        handle = self.env.client.get_workflow_handle(workflow_id(journey_id, user_id))
        return (await handle.describe()).status

    async def status_or_none(self, journey_id: str, user_id: str) -> WorkflowExecutionStatus | None:
        """The run's status, None while there is no run."""
        try:
            return await self.status(journey_id, user_id)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise


@pytest.fixture
async def harness(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> AsyncIterator[Harness]:
    settings = Settings(task_queue=f"router-{uuid.uuid4().hex[:8]}")

    async def connect() -> Client:
        return dev_server.client

    router = EventRouter(store, settings, connect_temporal=connect)
    async with build_worker(dev_server.client, store, settings.task_queue, executor):
        yield Harness(dev_server, store, router)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_entry_starts_and_later_events_reach_the_run(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    harness.track("ada", "Added to Cart", sku="LAMP")
    harness.track("ada", "Checkout Started", order="A-1")  # same batch: order is kept
    assert await harness.route() == 2
    assert harness.store.unrouted_events() == []

    outcome = await harness.outcome(journey, "ada")
    assert outcome.path == ["wait", "thanks"]
    [message] = harness.store.inbox("ada")
    assert message.content["body"] == "Thanks for LAMP, A-1"


async def test_journeys_that_do_not_care_are_not_signalled(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    harness.track("bo", "Added to Cart")
    await harness.route()
    harness.track("bo", "Page Viewed")  # nothing in the journey reacts to it
    await harness.route()
    handle = harness.env.client.get_workflow_handle(workflow_id(journey, "bo"))
    signals = [
        e.workflow_execution_signaled_event_attributes.input
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 1  # the entry event only
    await handle.terminate("test over")


async def test_a_page_entry_starts_on_that_page_view(harness: Harness) -> None:
    journey = unique("pay-help")
    publish(
        harness.store,
        journey,
        entry={"page": "Checkout", "where": {"field": "event.path", "op": "eq", "value": "/pay"}},
        start="bye",
        nodes={"bye": {"type": "exit"}},
    )
    harness.track("tracked", "Checkout")  # a track event of that name is not a page view
    harness.track("elsewhere", "Checkout", type="page", path="/cart")  # where fails
    harness.track("unnamed", None, type="page", path="/pay")
    harness.track("shopper", "Checkout", type="page", path="/pay")
    await harness.route()
    assert (await harness.outcome(journey, "shopper")).status == "completed"
    for user_id in ("tracked", "elsewhere", "unnamed"):
        with pytest.raises(Exception, match="not found"):
            await harness.status(journey, user_id)


async def test_entry_where_audience_and_reentry(harness: Harness) -> None:
    journey = unique("cart")
    publish(
        harness.store,
        journey,
        entry={
            "event": "Added to Cart",
            "where": {"field": "event.total", "op": "gt", "value": 0},
            "audience": {"field": "user.country", "op": "eq", "value": "FR"},
        },
        start="bye",
        nodes={"bye": {"type": "exit"}},
    )
    merge_traits(harness.store, "fr", {"country": "FR"})
    merge_traits(harness.store, "de", {"country": "DE"})
    harness.track("fr", "Added to Cart", total=0)  # where fails
    harness.track("de", "Added to Cart", total=5)  # audience fails
    harness.track("fr", "Added to Cart", total=5)  # enters
    await harness.route()
    assert (await harness.outcome(journey, "fr")).status == "completed"
    with pytest.raises(Exception, match="not found"):
        await harness.status(journey, "de")

    harness.track("fr", "Added to Cart", total=9)  # re-entry "never": no second run
    await harness.route()
    assert len(harness.store.enrollments_for_user("fr")) == 1


async def test_paused_journeys_take_no_one_new_but_serve_users_inside(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    harness.track("in", "Added to Cart", sku="A")
    await harness.route()
    harness.store.set_status(journey, "paused")
    harness.track("new", "Added to Cart", sku="B")
    harness.track("in", "Checkout Started", order="1")
    await harness.route()
    assert (await harness.outcome(journey, "in")).path == ["wait", "thanks"]
    with pytest.raises(Exception, match="not found"):
        await harness.status(journey, "new")


async def test_publish_keeps_users_inside_on_their_version(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    harness.track("early", "Added to Cart", sku="v1")
    await harness.route()
    changed = dict(WAIT_FOR_CHECKOUT)
    changed["thanks"] = {"type": "message", "channel": "in_app", "content": {"body": "v2"}}
    assert publish(harness.store, journey, nodes=changed) == 2
    harness.track("late", "Added to Cart", sku="v2")
    harness.track("early", "Checkout Started", order="1")
    harness.track("late", "Checkout Started", order="2")
    await harness.route()
    await harness.outcome(journey, "early")
    await harness.outcome(journey, "late")
    assert harness.store.inbox("early")[0].content["body"] == "Thanks for v1, 1"
    assert harness.store.inbox("late")[0].content["body"] == "v2"
    assert [e.version for e in harness.store.enrollments_for_user("late")] == [2]


async def test_an_event_routed_twice_is_processed_once(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey, entry={"event": "Added to Cart", "reentry": "always"})
    harness.track("cy", "Added to Cart", sku="A")
    await harness.route()
    harness.track("cy", "Checkout Started", order="1")
    routed_once = harness.store.unrouted_events()
    await harness.route()
    await harness.outcome(journey, "cy")
    # A crash after signalling, before marking: the relay sends both events again.
    harness.store.engine.dispose()
    with harness.store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE events SET routed_at = NULL")
    assert len(harness.store.unrouted_events()) == 1 + len(routed_once)
    await harness.route()
    assert len(harness.store.enrollments_for_user("cy")) == 1
    assert len(harness.store.inbox("cy")) == 1


async def test_trigger_starts_with_content_and_reports_started(harness: Harness) -> None:
    journey = unique("api")
    publish(
        harness.store,
        journey,
        entry={"api": "cart_abandonment"},
        start="wait",
        nodes={
            **WAIT_FOR_CHECKOUT,
            "thanks": {
                "type": "message",
                "channel": "in_app",
                "content": {"body": "Code {{ entry.discount_code }}"},
            },
        },
    )
    [first] = await harness.router.trigger("dee", "cart_abandonment", {"discount_code": "SAVE20"})
    assert (first.journey_id, first.workflow_id, first.started) == (
        journey,
        workflow_id(journey, "dee"),
        True,
    )
    [again] = await harness.router.trigger("dee", "cart_abandonment", {})
    assert again.started is False  # already inside
    harness.track("dee", "Checkout Started")
    await harness.route()
    await harness.outcome(journey, "dee")
    assert harness.store.inbox("dee")[0].content["body"] == "Code SAVE20"
    with pytest.raises(NoLiveJourney):
        await harness.router.trigger("dee", "no_such_trigger", {})


async def test_archive_makes_users_inside_exit_at_once(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    for user in ("u1", "u2"):
        harness.track(user, "Added to Cart")
    await harness.route()
    for user in ("u1", "u2"):
        assert await harness.status(journey, user) == WorkflowExecutionStatus.RUNNING
    harness.store.set_status(journey, "archived")
    query = f"JourneyId = '{journey}' AND ExecutionStatus = 'Running'"
    async with asyncio.timeout(10):  # visibility is eventually consistent
        while len([w async for w in harness.env.client.list_workflows(query)]) < 2:
            await asyncio.sleep(0.05)
    assert await harness.router.archive(journey) == 2
    for user in ("u1", "u2"):
        outcome = await harness.outcome(journey, user)
        assert (outcome.status, outcome.reason) == ("exited", "archived")


async def test_events_wait_in_the_outbox_while_temporal_is_away(
    dev_server: WorkflowEnvironment, store: Store, harness: Harness
) -> None:
    journey = unique("cart")
    publish(store, journey)

    async def unreachable() -> Client:
        return await Client.connect("127.0.0.1:1", data_converter=pydantic_data_converter)

    away = EventRouter(store, Settings(), connect_temporal=unreachable)
    harness.track("eve", "Added to Cart", sku="A")
    harness.track("eve", "Checkout Started", order="1")
    with pytest.raises(RoutingUnavailable):
        await away.route_pending()
    assert len(store.unrouted_events()) == 2  # nothing lost, nothing marked
    await away.release()  # it holds the outbox: the harness's router stood by

    assert await harness.route() == 2  # Temporal is back
    assert (await harness.outcome(journey, "eve")).path == ["wait", "thanks"]


async def test_an_event_that_puts_the_user_into_the_segment_starts_the_journey(
    harness: Harness,
) -> None:
    segment = unique("vip")
    harness.store.put_segment(segment, "VIP", {"field": "user.plan", "op": "eq", "value": "vip"})
    journey = unique("welcome-vip")
    publish(
        harness.store,
        journey,
        entry={"segment": segment},
        start="hello",
        nodes={"hello": {"type": "message", "channel": "in_app", "content": {"body": "Hi VIP"}}},
    )

    def identify(user_id: str, **traits: Any) -> None:
        merge_traits(harness.store, user_id, traits)
        append_event(
            harness.store, message_id=uuid.uuid4().hex, user_id=user_id, type="identify", name=None,
            properties=traits, timestamp=datetime.now(UTC),
        )  # fmt: skip

    identify("gus", plan="basic")
    await harness.route()
    with pytest.raises(Exception, match="not found"):
        await harness.status(journey, "gus")
    identify("gus", plan="vip")
    await harness.route()
    assert (await harness.outcome(journey, "gus")).path == ["hello"]
    harness.track("gus", "Page Viewed")  # still a member, but re-entry is "never"
    await harness.route()
    assert len(harness.store.enrollments_for_user("gus")) == 1
    assert len(harness.store.inbox("gus")) == 1


async def test_an_event_no_journey_can_take_does_not_hold_the_outbox_up(harness: Harness) -> None:
    journey = unique("cart")
    publish(harness.store, journey)
    append_event(
        harness.store, message_id="x" * 300, user_id="fay", type="track", name="Added to Cart",
        properties={}, timestamp=datetime.now(UTC),
    )  # fmt: skip  # a messageId no run accepts (stored by an older API, say)
    harness.track("fay", "Added to Cart", sku="A")
    assert await harness.route() == 2
    assert harness.store.unrouted_events() == []
    assert await harness.status(journey, "fay") == WorkflowExecutionStatus.RUNNING


async def test_the_relay_survives_a_failing_store(harness: Harness) -> None:
    calls = 0
    unrouted = harness.store.unrouted_events

    def flaky(limit: int = 500, partitions: Any = None) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is locked")
        return unrouted(limit, partitions)

    harness.store.unrouted_events = flaky  # type: ignore[method-assign]
    journey = unique("cart")
    publish(harness.store, journey)
    harness.track("gil", "Added to Cart", sku="A")
    relay = asyncio.create_task(harness.router.run())
    try:
        async with asyncio.timeout(10):
            while await harness.status_or_none(journey, "gil") is None:
                await asyncio.sleep(0.05)
    finally:
        relay.cancel()
    assert calls >= 2


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (RPCStatusCode.CANCELLED, True),  # how a call that outlived its RPC timeout ends
        (RPCStatusCode.RESOURCE_EXHAUSTED, True),
        (RPCStatusCode.UNAVAILABLE, True),
        (RPCStatusCode.INVALID_ARGUMENT, False),  # refused for good: dropped for that journey
    ],
)
async def test_a_busy_temporal_keeps_the_event_in_the_outbox(
    harness: Harness, status: RPCStatusCode, kept: bool
) -> None:
    async def answered() -> None:
        raise RPCError("Timeout expired", status, b"")

    if kept:
        with pytest.raises(RoutingUnavailable):
            await harness.router._call(answered())
    else:
        await harness.router._call(answered())


async def test_erase_ends_every_run_of_the_user_and_drops_their_outbox(harness: Harness) -> None:
    first, second = unique("cart"), unique("cart")
    for journey in (first, second):
        publish(harness.store, journey)
    harness.track("gus", "Added to Cart")
    harness.track("hal", "Added to Cart")
    await harness.route()
    assert await harness.status(first, "gus") == WorkflowExecutionStatus.RUNNING
    harness.store.suppress("gus")
    assert await harness.router.erase("gus") == 2
    for journey in (first, second):
        outcome = await harness.outcome(journey, "gus")
        assert (outcome.status, outcome.reason) == ("exited", "erased")
    assert await harness.status(first, "hal") == WorkflowExecutionStatus.RUNNING
    assert await harness.router.erase("gus") == 0  # nothing left to end
    assert await harness.router.erase("nobody") == 0

    # An event of the user read from the outbox after the suppression starts nothing.
    run = (
        await harness.env.client.get_workflow_handle(workflow_id(first, "gus")).describe()
    ).run_id
    with harness.store._write() as session:
        session.add(
            EventRecord(
                message_id=uuid.uuid4().hex, user_id="gus", type="track", name="Added to Cart",
                properties={}, timestamp=datetime.now(UTC), partition_key=0,
            )
        )  # fmt: skip  # as if stored just before the erasure
    assert await harness.route() == 1
    assert harness.store.unrouted_events() == []
    handle = harness.env.client.get_workflow_handle(workflow_id(first, "gus"))
    assert (await handle.describe()).run_id == run
    signup = unique("signup")
    publish(harness.store, signup, entry={"api": signup})
    [result] = await harness.router.trigger("gus", signup, {})
    assert result.started is False
    assert await harness.status_or_none(signup, "gus") is None

"""Journeys that react to engagement and keyed waits, on the real time-skipping server: `of`
paths, the `message` condition, `match` on paths, exit rules and the goal, machine events, and
the run's engagement state across continue-as-new."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.channels import embedded_channels
from activities.journey import JourneyActivities
from journeys.contracts import Activity, DeliverInput, DeliveryOutcome, JourneyOutcome
from journeys.engagement import EMAIL_LINK_CLICKED, EMAIL_OPENED
from journeys.model import Journey
from journeys.store import Store
from tests.factories import merge_traits
from tests.workflows.helpers import (
    make_journey,
    reached,
    run_delivering_with,
    send,
    start,
    workflow_task_failures,
)
from tests.workflows.test_replay import HISTORIES, REFRESH
from workflows.journey import JourneyWorkflow

EMAIL = {"subject": "Your cart", "body": "Still here: https://shop.example/cart"}


def mail(next_node: str | None, **fields: Any) -> dict[str, Any]:
    return {"type": "message", "channel": "email", "content": EMAIL, "next": next_node, **fields}


def wait_for(*paths: dict[str, Any], timeout: str = "1d") -> dict[str, Any]:
    return {
        "type": "wait_for_event",
        "timeout": timeout,
        "on_timeout": "timed-out",
        "paths": list(paths),
    }


ENDS = {"clicked": {"type": "exit"}, "timed-out": {"type": "exit"}}
CLICK_OF_REMINDER = make_journey(
    "reminder",
    {
        "reminder": mail("other"),
        "other": mail("wait"),
        "wait": wait_for({"event": EMAIL_LINK_CLICKED, "of": "reminder", "next": "clicked"}),
        **ENDS,
    },
    entry={"event": "Added to Cart", "reentry": "always"},
)


def delivery_id(store: Store, node_id: str, user_id: str = "u1") -> int:
    """The id of the latest delivery of `node_id` to the user."""
    ids = [d.id for d in store.deliveries_for_user(user_id) if d.node_id == node_id]
    assert ids, f"no delivery of {node_id}"
    assert ids[0] is not None
    return ids[0]  # newest first


async def click_run(
    env: WorkflowEnvironment, store: Store, task_queue: str, journey: Journey = CLICK_OF_REMINDER
) -> WorkflowHandle[object, JourneyOutcome]:
    """A run of the journey for u1 (who has an email address), waiting at `wait`."""
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(env, task_queue, journey)
    await reached(handle, "wait")
    return handle


async def test_of_path_takes_a_click_on_this_runs_delivery_of_that_node(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await click_run(time_skipping, store, task_queue)
    # An app may report the id as a string: it is the same delivery.
    reminder = str(delivery_id(store, "reminder"))
    await send(time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=reminder, machine=False)
    assert (await handle.result()).path == ["reminder", "other", "wait", "clicked"]


@pytest.mark.parametrize(
    "what",
    [
        "the other node's delivery",
        "a machine's click",
        "an open, not a click",
        "no delivery id",
        "another user's delivery",
    ],
)
async def test_of_path_ignores_every_other_click(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str, what: str
) -> None:
    merge_traits(store, "u2", {"email": "bob@example.com"})
    other_user = await start(time_skipping, task_queue, CLICK_OF_REMINDER, "u2")
    await reached(other_user, "wait")
    handle = await click_run(time_skipping, store, task_queue)
    reminder = delivery_id(store, "reminder")
    events: dict[str, dict[str, Any]] = {
        "the other node's delivery": {"delivery_id": delivery_id(store, "other")},
        "a machine's click": {"delivery_id": reminder, "machine": True},
        "an open, not a click": {"delivery_id": reminder, "name": EMAIL_OPENED},
        "no delivery id": {},
        "another user's delivery": {"delivery_id": delivery_id(store, "reminder", "u2")},
    }
    event = events[what]
    name = event.pop("name", EMAIL_LINK_CLICKED)
    await send(time_skipping, handle, name, node_id="reminder", **event)
    assert (await handle.result()).path == ["reminder", "other", "wait", "timed-out"]
    await other_user.result()


async def test_of_path_ignores_a_click_on_an_earlier_runs_delivery(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    first = await click_run(time_skipping, store, task_queue)
    earlier = delivery_id(store, "reminder")
    assert (await first.result()).path[-1] == "timed-out"
    # The user enters again (reentry "always"); a click on the first run's email is late.
    second = await click_run(time_skipping, store, task_queue)
    assert delivery_id(store, "reminder") != earlier
    await send(time_skipping, second, EMAIL_LINK_CLICKED, delivery_id=earlier)
    assert (await second.result()).path[-1] == "timed-out"


async def test_a_machine_event_matches_no_wait_exit_rule_or_goal(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    # Even without `of`: a scanner's click is not the user's.
    journey = make_journey(
        "wait",
        {"wait": wait_for({"event": EMAIL_LINK_CLICKED, "next": "clicked"}), **ENDS},
        exit=[{"event": EMAIL_OPENED}],
        goal={"event": EMAIL_LINK_CLICKED, "within": "2d"},
    )
    handle = await start(time_skipping, task_queue, journey)
    await reached(handle, "wait")
    await send(time_skipping, handle, EMAIL_OPENED, machine=True)
    await send(time_skipping, handle, EMAIL_LINK_CLICKED, machine=True)
    outcome = await handle.result()
    assert (outcome.status, outcome.path) == ("completed", ["wait", "timed-out"])
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is None

    # A person's open and click do: the goal converts, the exit rule ends the run.
    again = await start(time_skipping, task_queue, journey, "u2")
    await reached(again, "wait")
    await send(time_skipping, again, EMAIL_LINK_CLICKED, machine=False)
    assert (await again.result()).path == ["wait", "clicked"]
    third = await start(time_skipping, task_queue, journey, "u3")
    await send(time_skipping, third, EMAIL_OPENED)
    assert (await third.result()).status == "exited"


ENGAGED = make_journey(
    "reminder",
    {
        "reminder": mail("pause"),
        "pause": {"type": "delay", "duration": "1d", "next": "how-far"},
        "how-far": {
            "type": "branch",
            "paths": [
                {"when": {"message": "reminder", "engagement": "clicked"}, "next": "c"},
                {"when": {"message": "reminder", "engagement": "opened"}, "next": "o"},
                {"when": {"message": "reminder", "engagement": "sent"}, "next": "s"},
            ],
            "else": "n",
        },
        **{end: {"type": "exit"} for end in "cosn"},
    },
)


@pytest.mark.parametrize(
    ("events", "end"),
    [
        ([], "s"),
        ([(EMAIL_OPENED, {})], "o"),
        ([(EMAIL_LINK_CLICKED, {})], "c"),  # a click without an open: opened too
        ([(EMAIL_LINK_CLICKED, {}), (EMAIL_OPENED, {})], "c"),  # never back
        ([(EMAIL_LINK_CLICKED, {"machine": True})], "s"),
        ([(EMAIL_OPENED, {"machine": True})], "s"),
        ([("Order Completed", {})], "s"),  # carries the delivery id, but is no engagement
    ],
)
async def test_message_condition_reads_how_far_this_runs_delivery_got(
    time_skipping: WorkflowEnvironment,
    worker: Worker,
    store: Store,
    task_queue: str,
    *,
    events: list[tuple[str, dict[str, Any]]],
    end: str,
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, ENGAGED)
    await reached(handle, "pause")
    for name, properties in events:
        await send(
            time_skipping, handle, name, delivery_id=delivery_id(store, "reminder"), **properties
        )
    assert (await handle.result()).path == ["reminder", "pause", "how-far", end]


async def test_message_condition_is_false_for_a_message_not_sent(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await start(time_skipping, task_queue, ENGAGED)  # no email address: skipped
    assert (await handle.result()).path == ["reminder", "pause", "how-far", "n"]
    [delivery] = store.deliveries_for_user("u1")
    assert delivery.status == "skipped"


async def test_engagement_survives_continue_as_new(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, ENGAGED, continue_as_new_after=30)
    first_run = handle.result_run_id
    await reached(handle, "pause")
    await send(time_skipping, handle, EMAIL_OPENED, delivery_id=delivery_id(store, "reminder"))
    for i in range(30):
        await send(time_skipping, handle, "Page Viewed", message_id=f"noise-{i}")
    outcome = await handle.result()
    assert (await handle.describe()).run_id != first_run, "continue-as-new did not happen"
    assert outcome.path == ["reminder", "pause", "how-far", "o"]
    assert await workflow_task_failures(time_skipping.client, handle.id) == []


async def reminded(
    env: WorkflowEnvironment, store: Store, task_queue: str, **top: Any
) -> WorkflowHandle[object, JourneyOutcome]:
    """A run for u1 that was sent `reminder` and now spends two days in `pause`; `top` sets
    the journey's exit rules and goal."""
    merge_traits(store, "u1", {"email": "ada@example.com"})
    journey = make_journey(
        "reminder",
        {"reminder": mail("pause"), "pause": {"type": "delay", "duration": "2d"}},
        **top,
    )
    handle = await start(env, task_queue, journey)
    await reached(handle, "pause")
    return handle


async def test_exit_condition_on_engagement_ends_the_run_when_the_user_clicks(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await reminded(
        time_skipping,
        store,
        task_queue,
        exit=[{"when": {"message": "reminder", "engagement": "clicked"}}],
    )
    await send(time_skipping, handle, EMAIL_OPENED, delivery_id=delivery_id(store, "reminder"))
    await time_skipping.sleep(timedelta(hours=1))
    await send(
        time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=delivery_id(store, "reminder")
    )
    outcome = await handle.result()
    assert (outcome.status, outcome.reason) == ("exited", "exit condition")
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.ended_at is not None
    assert enrollment.ended_at - enrollment.entered_at < timedelta(hours=2)


async def test_goal_on_a_click_of_this_runs_message_sees_the_click_itself(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    goal = {
        "event": EMAIL_LINK_CLICKED,
        "where": {"message": "reminder", "engagement": "clicked"},
        "within": "2d",
    }
    handle = await reminded(time_skipping, store, task_queue, goal=goal)
    await send(time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=-1)  # not this run's
    await time_skipping.sleep(timedelta(hours=1))
    await send(
        time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=delivery_id(store, "reminder")
    )
    await handle.result()
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is not None
    assert enrollment.converted_at - enrollment.entered_at >= timedelta(hours=1)


async def test_each_delivery_is_asked_to_track_as_its_node_says(
    time_skipping: WorkflowEnvironment, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com", "phone": "+15550100"})
    journey = make_journey(
        "promo",
        {
            "promo": mail("receipt"),
            "receipt": mail("opted-in", transactional=True),
            "opted-in": mail("quiet", transactional=True, track=True),
            "quiet": {**mail("hook"), "channel": "sms", "content": {"body": "Hi"}, "track": False},
            "hook": {"type": "message", "channel": "webhook", "content": {"url": "https://x.io"}},
        },
    )
    activities = JourneyActivities(store, embedded_channels())
    asked: list[DeliverInput] = []

    @activity.defn(name=Activity.DELIVER)
    def deliver(request: DeliverInput) -> DeliveryOutcome:
        asked.append(request)
        return activities.deliver(request)

    await run_delivering_with(
        time_skipping, task_queue, executor, journey, activities=activities, deliver=deliver
    )
    # Every attempt asks alike (the webhook's host does not resolve, so it is tried again).
    assert list(dict.fromkeys((a.node_id, a.track) for a in asked)) == [
        ("promo", True),
        ("receipt", False),
        ("opted-in", True),
        ("quiet", False),
        ("hook", False),
    ]


# --- keyed waits ------------------------------------------------------------------------------

KEYED = {"cart_id": "{{ entry.cart_id }}"}
ABANDONED_CART = make_journey(
    "wait",
    {
        "wait": {
            "type": "wait_for_event",
            "timeout": "24h",
            "on_timeout": "reminder",
            "paths": [{"event": "Order Completed", "match": KEYED, "next": "thank-you"}],
        },
        "reminder": mail(None),
        "thank-you": {"type": "exit"},
    },
    id="abandoned-cart",
    entry={"event": "Added to Cart", "reentry": "always"},
    goal={"event": "Order Completed", "match": KEYED, "within": "3d"},
)


@pytest.mark.parametrize(
    ("last_order", "converted"),
    [
        pytest.param({}, False, id="no-order-of-this-cart"),
        # The browser sent the cart id as a number, the shop's backend sends it as a string.
        pytest.param({"cart_id": "1001"}, True, id="this-carts-order"),
    ],
)
async def test_another_carts_checkout_does_not_end_this_carts_wait(
    time_skipping: WorkflowEnvironment,
    worker: Worker,
    store: Store,
    task_queue: str,
    *,
    last_order: dict[str, Any],
    converted: bool,
) -> None:
    # One user, two carts: the run is about cart 1001; cart 1002 is added and bought meanwhile.
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, ABANDONED_CART, entry={"cart_id": 1001})
    await reached(handle, "wait")
    await send(time_skipping, handle, "Added to Cart", cart_id="1002")  # no second run: inside
    await time_skipping.sleep(timedelta(hours=2))
    await send(time_skipping, handle, "Order Completed", cart_id="1002")
    await send(time_skipping, handle, "Order Completed")  # an order without a cart
    await reached(handle, "wait")  # still waiting for cart 1001, two hours in
    await time_skipping.sleep(timedelta(hours=20))
    await send(time_skipping, handle, "Order Completed", **last_order)
    outcome = await handle.result()
    ended_at = "thank-you" if converted else "reminder"
    assert (outcome.status, outcome.path) == ("completed", ["wait", ended_at])
    reminders = [d.node_id for d in store.deliveries_for_user("u1") if d.status == "sent"]
    assert reminders == ([] if converted else ["reminder"])
    [enrollment] = store.enrollments_for_user("u1")
    if not converted:
        assert enrollment.converted_at is None
    else:  # by cart 1001's order, 22 hours in: not by cart 1002's, two hours in
        assert enrollment.converted_at is not None
        assert enrollment.converted_at - enrollment.entered_at >= timedelta(hours=22)


async def test_keyed_wait_reads_fresh_traits(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "wait",
        {
            "wait": wait_for(
                {"event": "Ticket Closed", "match": {"owner": "{{ user.team }}"}, "next": "paid"}
            ),
            "paid": {"type": "exit"},
            "timed-out": {"type": "exit"},
        },
    )
    merge_traits(store, "u1", {"team": "blue"})
    handle = await start(time_skipping, task_queue, journey)
    await reached(handle, "wait")
    await send(time_skipping, handle, "Ticket Closed", owner="red")
    merge_traits(store, "u1", {"team": "red"})
    await send(time_skipping, handle, "Ticket Closed", owner="red", message_id="second")
    assert (await handle.result()).path == ["wait", "paid"]


async def test_keyed_exit_rule_and_goal(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    keyed = {"cart_id": "{{ entry.cart_id }}"}
    journey = make_journey(
        "pause",
        {"pause": {"type": "delay", "duration": "2d"}},
        exit=[{"event": "Cart Emptied", "match": keyed}],
        goal={"event": "Order Completed", "match": keyed, "within": "3d"},
    )
    handle = await start(time_skipping, task_queue, journey, entry={"cart_id": "A"})
    await reached(handle, "pause")
    await send(time_skipping, handle, "Order Completed", cart_id="B")
    await send(time_skipping, handle, "Cart Emptied", cart_id="B")
    await time_skipping.sleep(timedelta(hours=1))
    await send(time_skipping, handle, "Order Completed", cart_id="A")
    await send(time_skipping, handle, "Cart Emptied", cart_id="A")
    outcome = await handle.result()
    assert (outcome.status, outcome.reason) == ("exited", "exit event Cart Emptied")
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is not None  # by cart A's order, an hour in
    assert enrollment.converted_at - enrollment.entered_at >= timedelta(hours=1)


# --- replay -----------------------------------------------------------------------------------

REPLAYED = make_journey(
    "reminder",
    {
        "reminder": mail("wait"),
        "wait": wait_for(
            {"event": EMAIL_LINK_CLICKED, "of": "reminder", "next": "how-far"}, timeout="2d"
        ),
        "how-far": {
            "type": "branch",
            "paths": [{"when": {"message": "reminder", "engagement": "clicked"}, "next": "thanks"}],
            "else": "timed-out",
        },
        "thanks": {"type": "message", "channel": "in_app", "content": {"body": "Thanks!"}},
        "timed-out": {"type": "exit"},
    },
    id="engagement",
    exit=[{"event": "Cart Emptied", "match": {"cart_id": "{{ entry.cart_id }}"}}],
    goal={"event": "Order Completed", "match": {"cart_id": "{{ entry.cart_id }}"}, "within": "3d"},
)


async def test_a_run_reacting_to_engagement_replays(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    # Its history is stored with the examples' (`histories/engagement.json`), so a change that
    # would break such runs mid-journey fails `test_stored_history_replays`.
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, REPLAYED, entry={"cart_id": "A"})
    await reached(handle, "wait")
    reminder = delivery_id(store, "reminder")
    await send(time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=reminder, machine=True)
    await send(time_skipping, handle, "Cart Emptied", cart_id="B")
    await send(time_skipping, handle, "Order Completed", cart_id="A")
    await time_skipping.sleep(timedelta(hours=1))
    await send(time_skipping, handle, EMAIL_LINK_CLICKED, delivery_id=reminder, machine=False)
    outcome = await handle.result()
    assert (outcome.status, outcome.path) == (
        "completed",
        ["reminder", "wait", "how-far", "thanks"],
    )
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is not None

    history = await handle.fetch_history()
    patches = [
        json.loads(details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and "patch-data" in (details := e.marker_recorded_event_attributes.details)
    ]
    # Pinned to today's revision by its input, the run ignored the machine click without
    # asking for `machine-engagement` (or any patch).
    assert patches == []
    await Replayer(
        workflows=[JourneyWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
    if REFRESH:
        HISTORIES.mkdir(exist_ok=True)
        stored = HISTORIES / f"{REPLAYED.id}.json"
        stored.write_text(json.dumps(json.loads(history.to_json()), indent=1))

"""The interpreter against the real time-skipping test server: every node type and rule."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.contracts import (
    EVENT_SIGNAL,
    JOURNEY_ID,
    JOURNEY_NODE,
    JOURNEY_VERSION,
    STATE_QUERY,
    USER_ID,
    JourneyOutcome,
    StateView,
)
from journeys.model import Journey
from journeys.store import Store
from tests.factories import append_event, merge_traits
from tests.workflows.helpers import make_journey, reached, send, start, workflow_task_failures
from worker.main import build_worker

WAIT_THEN_EMAIL = {
    "wait": {
        "type": "wait_for_event",
        "timeout": "24h",
        "on_timeout": "mail",
        "paths": [{"event": "Checkout Started", "next": None}],
    },
    "mail": {
        "type": "message",
        "channel": "email",
        "next": None,
        "content": {"subject": "Hi {{ user.first_name | default: 'friend' }}", "body": "Come back"},
    },
}
EMAIL = {"subject": "Hello", "body": "Body"}


def delay_then_wait(delay: str) -> Journey:
    """A delay, then a day's wait for "Checkout Started": ends at `matched` or `timed-out`."""
    return make_journey(
        "pause",
        {
            "pause": {"type": "delay", "duration": delay, "next": "wait"},
            "wait": {
                "type": "wait_for_event",
                "timeout": "1d",
                "on_timeout": "timed-out",
                "paths": [{"event": "Checkout Started", "next": "matched"}],
            },
            "matched": {"type": "exit"},
            "timed-out": {"type": "exit"},
        },
    )


async def ended_after(store: Store, handle: WorkflowHandle[object, JourneyOutcome]) -> timedelta:
    """How long (in workflow time) the run took from entry to its end."""
    [enrollment] = [e for e in store.enrollments_for_user("u1") if e.workflow_id == handle.id]
    assert enrollment.ended_at is not None
    return enrollment.ended_at - enrollment.entered_at


async def test_24h_wait_times_out_in_well_under_a_second(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com", "first_name": "Ada"})
    began = time.monotonic()
    handle = await start(time_skipping, task_queue, make_journey("wait", WAIT_THEN_EMAIL))
    outcome = await handle.result()
    elapsed = time.monotonic() - began

    assert outcome.status == "completed"
    assert outcome.path == ["wait", "mail"]
    assert elapsed < 1.0, f"a 24 h wait took {elapsed:.2f} s of test time"
    assert await ended_after(store, handle) >= timedelta(hours=24)
    [delivery] = store.deliveries_for_user("u1")
    assert (delivery.channel, delivery.status) == ("email", "sent")
    assert delivery.content["subject"] == "Hi Ada"
    assert delivery.idempotency_key.endswith(":mail")


async def test_user_who_checks_out_in_time_gets_nothing(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, make_journey("wait", WAIT_THEN_EMAIL))
    await time_skipping.sleep(timedelta(hours=3))
    await send(time_skipping, handle, "Checkout Started")

    outcome = await handle.result()
    assert outcome.status == "completed"
    assert outcome.path == ["wait"]
    assert store.deliveries_for_user("u1") == []


async def test_exit_event_during_three_day_delay_ends_at_once(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    journey = make_journey(
        "pause",
        {
            "pause": {"type": "delay", "duration": "3d", "next": "mail"},
            "mail": {"type": "message", "channel": "email", "content": EMAIL},
        },
        exit=[{"event": "Order Completed"}],
    )
    handle = await start(time_skipping, task_queue, journey)
    await time_skipping.sleep(timedelta(hours=5))
    await send(time_skipping, handle, "Order Completed")

    outcome = await handle.result()
    assert outcome.status == "exited"
    assert outcome.path == ["pause"]
    assert await ended_after(store, handle) < timedelta(hours=6)
    assert store.deliveries_for_user("u1") == []
    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("exited", None)


async def test_exit_event_where_filters(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "pause",
        {"pause": {"type": "delay", "duration": "1d"}},
        exit=[
            {"event": "Order Completed", "where": {"field": "event.total", "op": "gt", "value": 0}}
        ],
    )
    handle = await start(time_skipping, task_queue, journey)
    await send(time_skipping, handle, "Order Completed", total=0)
    assert (await handle.result()).status == "completed"


async def test_trait_change_exits_during_wait_and_before_message(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    exit_rules = [{"when": {"field": "user.plan", "op": "eq", "value": "cancelled"}}]
    journey = make_journey("pause", {"pause": {"type": "delay", "duration": "2d"}}, exit=exit_rules)
    handle = await start(time_skipping, task_queue, journey)
    await time_skipping.sleep(timedelta(hours=1))
    identify = (await send(time_skipping, handle, "ignored")).model_copy(
        update={
            "type": "identify",
            "name": None,
            "traits": {"plan": "cancelled"},
            "message_id": "id-1",
        }
    )
    await handle.signal(EVENT_SIGNAL, identify)
    assert (await handle.result()).status == "exited"

    merge_traits(store, "u2", {"email": "b@example.com", "plan": "cancelled"})
    mail_journey = make_journey(
        "mail", {"mail": {"type": "message", "channel": "email", "content": EMAIL}}, exit=exit_rules
    )
    second = await start(time_skipping, task_queue, mail_journey, "u2")
    assert (await second.result()).status == "exited"
    assert store.deliveries_for_user("u2") == []


async def test_only_events_after_the_node_is_reached_match(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = delay_then_wait("1h")
    handle = await start(time_skipping, task_queue, journey)
    await send(time_skipping, handle, "Checkout Started")  # during the delay: too early
    assert (await handle.result()).path == ["pause", "wait", "timed-out"]


async def test_event_happening_after_a_delay_goes_to_the_next_wait(
    dev_server: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    # The timer firing and the event's signal reach the run in one activation (the worker is
    # down while both happen; a real dev server, since the time-skipping one will not skip
    # without a worker): the event happened after the delay ended, so the next wait takes it.
    journey = delay_then_wait("1s")
    async with build_worker(dev_server.client, store, task_queue, executor):
        handle = await start(dev_server, task_queue, journey)
        await reached(handle, "pause")
    await asyncio.sleep(1.5)
    await send(dev_server, handle, "Checkout Started")
    async with build_worker(dev_server.client, store, task_queue, executor):
        outcome = await asyncio.wait_for(handle.result(), timeout=30)
    assert outcome.path == ["pause", "wait", "matched"]


async def test_event_arriving_before_the_first_wait_is_offered_to_it(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    # The user checks out a moment after entering, before the run has even started: the
    # first wait must see it, or they would be nagged about a cart they already bought.
    merge_traits(store, "u1", {"email": "ada@example.com"})
    journey = make_journey(
        "thanks",
        {
            "thanks": {"type": "message", "channel": "email", "content": EMAIL, "next": "wait"},
            **WAIT_THEN_EMAIL,
        },
    )
    handle = await start(time_skipping, task_queue, journey)  # no worker yet
    await send(time_skipping, handle, "Checkout Started")
    async with build_worker(time_skipping.client, store, task_queue, executor):
        assert (await handle.result()).path == ["thanks", "wait"]
    assert [d.node_id for d in store.deliveries_for_user("u1")] == ["thanks"]


async def test_wait_for_event_first_matching_path_sets_event_context(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"push_tokens": ["tok-1"]})
    journey = make_journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "2d",
                "paths": [
                    {
                        "event": "Product Viewed",
                        "where": {"field": "event.price", "op": "gte", "value": 50},
                        "next": "big",
                    },
                    {"event": "Product Viewed", "next": "small"},
                ],
            },
            "big": {
                "type": "message",
                "channel": "push",
                "content": {"title": "{{ event.product_name }}", "body": "Only {{ event.price }}"},
            },
            "small": {"type": "exit"},
        },
    )
    handle = await start(time_skipping, task_queue, journey)
    await send(time_skipping, handle, "Added to Cart", price=500)  # another event name
    await send(time_skipping, handle, "Product Viewed", product_name="Lamp", price="80")
    assert (await handle.result()).path == ["wait", "big"]
    [delivery] = store.deliveries_for_user("u1")
    assert delivery.content == {"title": "Lamp", "body": "Only 80"}


async def test_inactivity_clock_restarts_on_each_watched_event(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "idle",
        {"idle": {"type": "wait_for_inactivity", "duration": "24h", "events": ["Page Viewed"]}},
    )
    handle = await start(time_skipping, task_queue, journey)
    await time_skipping.sleep(timedelta(hours=20))
    await send(time_skipping, handle, "Page Viewed")
    await time_skipping.sleep(timedelta(hours=20))
    await send(time_skipping, handle, "Page Viewed")
    await time_skipping.sleep(timedelta(hours=10))
    await send(time_skipping, handle, "Something Else")  # not watched: no restart

    assert (await handle.result()).status == "completed"
    assert timedelta(hours=63) < await ended_after(store, handle) < timedelta(hours=65)


async def test_branch_on_traits_segments_and_event_counts(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    store.put_segment("gold", "Gold members", {"field": "user.plan", "op": "eq", "value": "gold"})
    now = await time_skipping.get_current_time()
    for i in range(3):
        append_event(
            store, message_id=f"view-{i}", user_id="u2", type="track", name="Product Viewed",
            properties={"sku": "A"}, timestamp=now - timedelta(hours=i),
        )  # fmt: skip
    merge_traits(store, "u1", {"plan": "gold"})
    merge_traits(store, "u3", {"country": "FR"})
    journey = make_journey(
        "route",
        {
            "route": {
                "type": "branch",
                "paths": [
                    {"when": {"segment": "gold"}, "next": "gold"},
                    {
                        "when": {
                            "event_count": {"event": "Product Viewed", "within": "1d"},
                            "op": "gte",
                            "value": 3,
                        },
                        "next": "browser",
                    },
                    {"when": {"field": "entry.total", "op": "gt", "value": 100}, "next": "big"},
                ],
                "else": "other",
            },
            **{name: {"type": "exit"} for name in ("gold", "browser", "big", "other")},
        },
    )
    expected = {"u1": "gold", "u2": "browser", "u3": "big", "u4": "other"}
    handles = {
        user: await start(
            time_skipping, task_queue, journey, user, entry={"total": 150 if user == "u3" else 5}
        )
        for user in expected
    }
    for user, node in expected.items():
        assert (await handles[user].result()).path == ["route", node]


async def test_experiment_splits_1000_users_by_weight_identically_on_rerun(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "split",
        {
            "split": {
                "type": "experiment",
                "variants": [
                    {"name": "urgency", "weight": 45, "next": "a"},
                    {"name": "friendly", "weight": 45, "next": "b"},
                    {"name": "control", "weight": 10, "next": None},
                ],
            },
            "a": {"type": "exit"},
            "b": {"type": "exit"},
        },
    )
    users = [f"user-{i}" for i in range(1000)]

    async def assign() -> dict[str, str]:
        handles = await asyncio.gather(
            *(start(time_skipping, task_queue, journey, u) for u in users)
        )
        # No timers here; skipping time while a thousand tasks queue would only time them out.
        with time_skipping.auto_time_skipping_disabled():
            await asyncio.gather(*(h.result() for h in handles))
        return {
            u: e.variant or ""
            for u in users
            for e in store.enrollments_for_user(u)[:1]  # newest enrolment
        }

    first = await assign()
    counts = {name: list(first.values()).count(name) for name in ("urgency", "friendly", "control")}
    assert abs(counts["urgency"] / 10 - 45) <= 5, counts
    assert abs(counts["friendly"] / 10 - 45) <= 5, counts
    assert abs(counts["control"] / 10 - 10) <= 5, counts
    assert await assign() == first


async def test_update_user_sets_rendered_traits_and_unsets(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"stage": "new", "temp": 1})
    journey = make_journey(
        "mark",
        {
            "mark": {
                "type": "update_user",
                "set": {"stage": "engaged via {{ journey.id }} v{{ journey.version }}", "score": 7},
                "unset": ["temp"],
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    )
    outcome = await (await start(time_skipping, task_queue, journey, version=3)).result()
    assert outcome.path == ["mark", "done"]
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"stage": "engaged via test-journey v3", "score": 7}


async def test_delay_until_local_time_in_the_users_time_zone(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"timezone": "Asia/Tokyo"})
    journey = make_journey(
        "morning",
        {
            "morning": {
                "type": "delay",
                "until": {"time": "10:00", "weekdays": ["sat"], "timezone": "user"},
            }
        },
    )
    handle = await start(time_skipping, task_queue, journey)
    await handle.result()
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.ended_at is not None
    local_end = enrollment.ended_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local_end.weekday(), local_end.hour, local_end.minute) == (5, 10, 0)
    assert timedelta(0) < enrollment.ended_at - enrollment.entered_at <= timedelta(days=7)


async def test_quiet_hours_delay_skip_and_transactional(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    async def quiet_now(action: str) -> dict[str, str]:
        # Quiet hours from an hour ago to two hours ahead, whatever the server's clock says.
        now = await time_skipping.get_current_time()
        start = (now - timedelta(hours=1)).strftime("%H:%M")
        return {
            "start": start,
            "end": (now + timedelta(hours=2)).strftime("%H:%M"),
            "action": action,
        }

    mail = {"mail": {"type": "message", "channel": "email", "content": EMAIL}}
    for user in ("u1", "u2", "u3"):
        merge_traits(store, user, {"email": f"{user}@example.com"})

    delayed = make_journey("mail", mail, settings={"quiet_hours": await quiet_now("delay")})
    handle = await start(time_skipping, task_queue, delayed, "u1")
    await handle.result()
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.ended_at is not None
    assert enrollment.ended_at - enrollment.entered_at > timedelta(hours=1, minutes=58)
    assert store.deliveries_for_user("u1")[0].status == "sent"

    skipped = make_journey("mail", mail, settings={"quiet_hours": await quiet_now("skip")})
    await (await start(time_skipping, task_queue, skipped, "u2")).result()
    [delivery] = store.deliveries_for_user("u2")
    assert (delivery.status, delivery.reason) == ("skipped", "quiet hours")

    transactional = make_journey(
        "mail",
        {"mail": {**mail["mail"], "transactional": True}},
        settings={"quiet_hours": await quiet_now("skip")},
    )
    await (await start(time_skipping, task_queue, transactional, "u3")).result()
    assert store.deliveries_for_user("u3")[0].status == "sent"


async def test_messages_skip_without_address_fail_to_on_failure_and_fill_the_inbox(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "sms",
        {
            "sms": {"type": "message", "channel": "sms", "content": {"body": "hi"}, "next": "tpl"},
            "tpl": {
                "type": "message",
                "channel": "email",
                "template": "missing-template",
                "next": "never",
                "on_failure": "inbox",
            },
            "never": {"type": "exit"},
            "inbox": {
                "type": "message",
                "channel": "in_app",
                "content": {"title": "Welcome", "body": "Hi {{ user.id }}", "kind": "banner"},
            },
        },
    )
    merge_traits(store, "u1", {"email": "ada@example.com"})
    outcome = await (await start(time_skipping, task_queue, journey)).result()
    assert outcome.path == ["sms", "tpl", "inbox"]
    by_node = {d.node_id: d for d in store.deliveries_for_user("u1")}
    assert (by_node["sms"].status, by_node["sms"].reason) == ("skipped", "no phone number")
    assert by_node["tpl"].status == "failed"
    assert "missing-template" in (by_node["tpl"].reason or "")
    [message] = store.inbox("u1")
    assert message.content == {"title": "Welcome", "body": "Hi u1", "kind": "banner"}


async def test_goal_converts_without_ending_the_journey(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey(
        "pause",
        {"pause": {"type": "delay", "duration": "2d"}},
        goal={"event": "Order Completed", "within": "1d"},
    )
    handle = await start(time_skipping, task_queue, journey)
    await time_skipping.sleep(timedelta(hours=2))
    await send(time_skipping, handle, "Order Completed")
    outcome = await handle.result()
    assert outcome.status == "completed"
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is not None
    assert store.journey_counts("test-journey")["converted"] == 1


async def test_search_attributes_summary_details_and_state_query(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await start(
        time_skipping, task_queue, make_journey("wait", WAIT_THEN_EMAIL), version=4
    )
    await reached(handle, "wait")
    state = await handle.query(STATE_QUERY, result_type=StateView)
    assert (state.journey_id, state.version, state.current_node) == ("test-journey", 4, "wait")
    assert state.path == ["wait"]
    assert state.waiting_for is not None
    assert state.waiting_for.startswith("wait: up to 24h for Checkout Started · ends ")

    description = await handle.describe()
    attributes = description.typed_search_attributes
    assert attributes.get(JOURNEY_ID) == "test-journey"
    assert attributes.get(JOURNEY_VERSION) == 4
    assert attributes.get(USER_ID) == "u1"
    assert attributes.get(JOURNEY_NODE) == "wait"
    assert await description.static_summary() == "Test journey v4 · u1"
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == state.waiting_for

    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("active", "wait")
    assert store.node_counts("test-journey")["wait"] == {"reached": 1, "waiting": 1}
    await handle.result()


async def test_steps_are_published_together_when_the_run_stops_to_wait(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    # A branch and a message pass without waiting: the message's delivery (a local activity)
    # records the enrollment, the two nodes and, once sent, reaching the wait; so the wait
    # records nothing more, and JourneyNode is set once, to where it waits. The end is one more
    # of each. Every activity runs locally: no activity task, no workflow task waiting for one.
    nodes = {
        "vip": {
            "type": "branch",
            "paths": [{"when": {"field": "user.plan", "op": "eq", "value": "vip"}, "next": None}],
            "else": "hello",
        },
        "hello": {"type": "message", "channel": "in_app", "content": EMAIL, "next": "wait"},
        **WAIT_THEN_EMAIL,
    }
    handle = await start(time_skipping, task_queue, make_journey("vip", nodes))
    await reached(handle, "wait")
    assert store.node_counts("test-journey") == {
        "vip": {"reached": 1, "waiting": 0},
        "hello": {"reached": 1, "waiting": 0},
        "wait": {"reached": 1, "waiting": 1},
    }
    await send(time_skipping, handle, "Checkout Started")
    assert (await handle.result()).path == ["vip", "hello", "wait"]

    assert await commands_of(handle) == (
        ["load_context", "deliver", "record_steps"],
        2,
        0,
    )
    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("completed", None)


async def test_a_run_ending_on_a_message_records_its_end_with_the_delivery(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    # The last node's delivery records the enrollment, the node and, once the message went,
    # the end: one local activity in all, one workflow task, and JourneyNode never set (the
    # run started at a message, not a wait, and never stopped).
    merge_traits(store, "u1", {"email": "ada@example.com"})
    nodes = {"hello": {"type": "message", "channel": "email", "content": EMAIL}}
    handle = await start(time_skipping, task_queue, make_journey("hello", nodes))
    assert (await handle.result()).path == ["hello"]
    assert await commands_of(handle) == (["deliver"], 0, 0)
    assert (await handle.describe()).typed_search_attributes.get(JOURNEY_NODE) is None
    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("completed", None)
    assert enrollment.ended_at is not None
    assert store.node_counts("test-journey") == {"hello": {"reached": 1, "waiting": 0}}
    [delivery] = store.deliveries_for_user("u1")
    assert delivery.status == "sent"


async def commands_of(handle: WorkflowHandle[object, JourneyOutcome]) -> tuple[list[str], int, int]:
    """A run's local activities (by type, in order), `JourneyNode` upserts and activity tasks."""
    local: list[str] = []
    node_upserts = tasks = 0
    async for history_event in handle.fetch_history_events():
        if history_event.HasField("marker_recorded_event_attributes"):
            details = history_event.marker_recorded_event_attributes.details
            if "data" in details:  # a local activity's marker (a patch's has none)
                local.append(json.loads(details["data"].payloads[0].data)["activity_type"])
        if history_event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = history_event.upsert_workflow_search_attributes_event_attributes
            node_upserts += "JourneyNode" in fields.search_attributes.indexed_fields
        tasks += history_event.HasField("activity_task_scheduled_event_attributes")
    return local, node_upserts, tasks


async def test_duplicate_and_malformed_signals_change_nothing(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = make_journey("wait", WAIT_THEN_EMAIL, exit=[{"event": "Order Completed"}])
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, journey)
    await send(time_skipping, handle, "Page Viewed", message_id="m-1")
    # The same messageId again, now naming the exit event: a duplicate, dropped.
    await send(time_skipping, handle, "Order Completed", message_id="m-1")
    # The entry event's own messageId: already seen.
    await send(time_skipping, handle, "Order Completed", message_id="entry-u1")
    for garbage in ({"nonsense": 1}, "not an object", {"message_id": "m-2", "type": "track"}):
        await handle.signal(EVENT_SIGNAL, garbage)
    await handle.signal(EVENT_SIGNAL, {"message_id": "m-3", "timestamp": "yesterday"})

    outcome = await handle.result()
    assert outcome.status == "completed"
    assert outcome.path == ["wait", "mail"]
    assert len(store.deliveries_for_user("u1")) == 1
    assert await workflow_task_failures(time_skipping.client, handle.id) == []


async def test_continue_as_new_keeps_state_and_loses_no_event(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    journey = make_journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "7d",
                "paths": [{"event": "Checkout Started", "next": "thanks"}],
            },
            "thanks": {
                "type": "message",
                "channel": "email",
                "content": {"subject": "Order {{ event.order_id }}", "body": "{{ entry.sku }}"},
            },
        },
        goal={"event": "Coupon Used", "within": "7d"},
        exit=[{"event": "Order Cancelled"}],
    )
    handle = await start(
        time_skipping, task_queue, journey, entry={"sku": "LAMP-1"}, continue_as_new_after=30
    )
    first_run = handle.result_run_id
    await send(time_skipping, handle, "Coupon Used", message_id="coupon")
    for i in range(40):
        await send(time_skipping, handle, "Page Viewed", message_id=f"noise-{i}")
        if i % 10 == 0:
            await time_skipping.sleep(timedelta(hours=1))
    # Duplicates of events seen before continue-as-new, one of them an exit: still dropped.
    await send(time_skipping, handle, "Order Cancelled", message_id="noise-3")
    await send(time_skipping, handle, "Order Cancelled", message_id="coupon")
    await asyncio.gather(
        *(send(time_skipping, handle, "Page Viewed", message_id=f"burst-{i}") for i in range(20))
    )
    await send(time_skipping, handle, "Checkout Started", order_id="A-17")

    outcome = await handle.result()
    assert outcome.status == "completed"
    assert outcome.path == ["wait", "thanks"]
    assert (await handle.describe()).run_id != first_run, "continue-as-new did not happen"
    [delivery] = store.deliveries_for_user("u1")
    assert delivery.content == {"subject": "Order A-17", "body": "LAMP-1"}
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.converted_at is not None
    assert enrollment.status == "completed"
    assert await workflow_task_failures(time_skipping.client, handle.id) == []


async def test_a_cancelled_run_records_that_the_user_left(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    handle = await start(time_skipping, task_queue, make_journey("wait", WAIT_THEN_EMAIL))
    await reached(handle, "wait")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as raised:
        await handle.result()
    assert isinstance(raised.value.cause, CancelledError)
    [enrollment] = store.enrollments_for_user("u1")
    assert enrollment.status == "exited"
    assert store.journey_counts("test-journey")["active"] == 0

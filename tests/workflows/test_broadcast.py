"""`BroadcastWorkflow` on the time-skipping server: one message per member across pages and
continue-as-new, the delivery path's skips (caps, unsubscribes, global holdout), a scheduled
`at`, pacing by `rate`, cancelling, and members put off by their quiet hours. A stored history
guards its determinism (refreshed, after an intended change behind `workflow.patched`, with
`JOURNEYS_REFRESH_HISTORIES=1`, keeping the old one as `broadcast.v1.json`, as for journeys)."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from journeys.broadcasts import Broadcast, BroadcastOutcome
from journeys.holdouts import in_global_holdout
from journeys.store import Store
from journeys.unsubscribe import Links
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.factories import sent_delivery
from tests.workflows.helpers import replay_stored_histories, workflow_task_failures
from tests.workflows.test_summaries import timer_summaries
from worker.main import build_worker
from workflows.broadcast import BroadcastWorkflow
from workflows.client import cancel_broadcast, start_broadcast

MESSAGE = {"channel": "email", "content": {"subject": "Hi {{ user.first_name }}", "body": "Sale"}}


def members(store: Store, *users: str, **traits: Any) -> None:
    """Users of the `vips` segment (made once), with an email address and `traits`."""
    store.put_segment("vips", "VIPs", {"field": "user.plan", "op": "eq", "value": "vip"})
    for user in users:
        values = {"plan": "vip", "email": f"{user}@example.com", "first_name": user, **traits}
        store.update_traits(user, values, [])


def broadcast(broadcast_id: str, **changes: Any) -> Broadcast:
    """A broadcast of `MESSAGE` to the `vips` segment."""
    document = {"id": broadcast_id, "segment": "vips", "message": MESSAGE, **changes}
    return Broadcast.model_validate(document)


async def run(
    env: WorkflowEnvironment, task_queue: str, sent: Broadcast, **sizes: int
) -> tuple[WorkflowHandle[Any, BroadcastOutcome], BroadcastOutcome]:
    handle = await start_broadcast(env.client, sent, task_queue=task_queue, **sizes)
    return handle, await handle.result()


def outcomes(store: Store, broadcast_id: str, *users: str) -> dict[str, tuple[str, str | None]]:
    """Each user's delivery of the broadcast as (status, reason), asserting there is one."""
    found: dict[str, tuple[str, str | None]] = {}
    source = f"broadcast:{broadcast_id}"
    for user in users:
        [delivery] = [d for d in store.deliveries_for_user(user) if d.journey_id == source]
        assert (delivery.node_id, delivery.idempotency_key) == ("message", f"{source}:{user}")
        found[user] = (delivery.status, delivery.reason)
    return found


async def run_histories(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]
) -> list[list[HistoryEvent]]:
    """The events of each run of the workflow: its first, and each it continued as new into."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id:
        history = env.client.get_workflow_handle(handle.id, run_id=run_id)
        runs.append([event async for event in history.fetch_history_events()])
        last = runs[-1][-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def runs_of(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> int:
    """How many runs the workflow took."""
    return len(await run_histories(env, handle))


def scheduled(events: list[HistoryEvent], activity: str) -> list[HistoryEvent]:
    """The events that scheduled `activity`."""
    return [
        event
        for event in events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


async def replays(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """The run has no failed task and replays deterministically."""
    assert await workflow_task_failures(env.client, handle.id) == []
    replayer = Replayer(workflows=[BroadcastWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def test_every_member_gets_one_message_across_pages_and_runs(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    users = [f"u{n}" for n in range(7)]
    members(store, *users)
    store.update_traits("outsider", {"plan": "free", "email": "o@example.com"}, [])
    handle, outcome = await run(
        time_skipping, task_queue, broadcast(task_queue), page_size=2, pages_per_run=1
    )
    assert (outcome.status, outcome.targeted, outcome.counts.sent) == ("completed", 7, 7)
    assert set(outcomes(store, task_queue, *users).values()) == {("sent", None)}
    assert store.deliveries_for_user("outsider") == []
    [delivery] = store.deliveries_for_user("u3")
    assert delivery.content["subject"] == "Hi u3"
    record = store.get_broadcast(task_queue)
    assert record is not None
    assert (record.status, record.targeted) == ("completed", 7)
    # One page per run: the first run continued as new, and so on until the last page.
    assert await runs_of(time_skipping, handle) == 4
    await replays(time_skipping, handle)


async def test_a_slow_page_goes_on_in_a_fresh_run_once_the_history_is_long(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    users = [f"u{n}" for n in range(5)]
    members(store, *users)
    handle, outcome = await run(
        time_skipping, task_queue, broadcast(task_queue, rate="2/s"), history_limit=1
    )
    assert (outcome.status, outcome.targeted, outcome.counts.sent) == ("completed", 5, 5)
    assert set(outcomes(store, task_queue, *users).values()) == {("sent", None)}
    record = store.get_broadcast(task_queue)
    assert record is not None
    assert record.targeted == 5
    # Steps of 2, 2 and 1 members from one page: each of the first two ended its run.
    assert await runs_of(time_skipping, handle) == 3


async def test_a_broadcast_email_is_tracked_and_can_be_unsubscribed_from(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    members(store, "ada")
    links = Links("https://journeys.test", "secret")
    message = {
        "channel": "email",
        "content": {
            "subject": "Sale",
            "body": "See https://shop.test/sale",
            "html": '<a href="https://shop.test/sale">Sale</a> '
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        },
    }
    async with build_worker(time_skipping.client, store, task_queue, executor, links=links):
        _, outcome = await run(time_skipping, task_queue, broadcast(task_queue, message=message))
    assert outcome.counts.sent == 1
    [delivery] = store.deliveries_for_user("ada")
    html = delivery.content["html"]
    assert "https://journeys.test/c/" in html  # the link, tracked
    assert "https://journeys.test/o/" in html  # the open pixel
    assert "https://journeys.test/unsubscribe?token=" in html  # never rewritten
    assert "https://journeys.test/c/" in delivery.content["body"]
    assert delivery.attribution()["journey_id"] == f"broadcast:{task_queue}"


async def test_caps_unsubscribes_and_the_global_holdout_skip_members(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    held = next(f"h{n}" for n in range(1000) if in_global_holdout(10, f"h{n}"))
    fine, capped, gone, noaddress = (
        next(f"{name}{n}" for n in range(1000) if not in_global_holdout(10, f"{name}{n}"))
        for name in ("fine", "capped", "gone", "noaddress")
    )
    members(store, fine, capped, gone, held)
    store.update_traits(gone, {"unsubscribed": True}, [])
    store.update_traits(noaddress, {"plan": "vip"}, [])
    settings = {"frequency_caps": [{"max": 1, "per": "1d"}], "holdout": {"percent": 10}}
    save_workspace_settings(store, WorkspaceSettings.model_validate(settings))
    sent_delivery(store, "earlier", user_id=capped)  # from a journey, today
    _, outcome = await run(time_skipping, task_queue, broadcast(task_queue))
    assert outcomes(store, task_queue, fine, capped, gone, held, noaddress) == {
        fine: ("sent", None),
        capped: ("skipped", "frequency cap: 1 per 1d"),
        gone: ("skipped", "unsubscribed"),
        held: ("skipped", "global holdout"),
        noaddress: ("skipped", "no email address"),
    }
    assert (outcome.counts.sent, outcome.counts.skipped, outcome.targeted) == (1, 4, 5)


async def test_a_scheduled_broadcast_waits_for_its_time(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    members(store, "a", "b")
    at = await time_skipping.get_current_time() + timedelta(days=3)
    handle = await start_broadcast(
        time_skipping.client, broadcast(task_queue, at=at), task_queue=task_queue
    )
    await until(
        lambda: (r := store.get_broadcast(task_queue)) is not None and r.status == "scheduled"
    )
    assert store.deliveries_for_user("a") == []
    outcome = await handle.result()
    assert (outcome.status, outcome.counts.sent) == ("completed", 2)
    assert await time_skipping.get_current_time() >= at
    assert await timer_summaries(time_skipping, handle) == ["scheduled time"]


async def test_the_rate_paces_the_sends(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    members(store, *(f"u{n}" for n in range(5)))
    handle, outcome = await run(time_skipping, task_queue, broadcast(task_queue, rate="2/m"))
    assert outcome.counts.sent == 5
    # Steps of 2, 2 and 1 members take a minute, a minute and half a minute (less the time
    # the step's sends took).
    assert await timer_summaries(time_skipping, handle) == ["rate 2/m"] * 3
    timers = [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        async for event in handle.fetch_history_events()
        if event.HasField("timer_started_event_attributes")
    ]
    for timer, share in zip(timers, (60, 60, 30), strict=True):
        assert timedelta(seconds=share - 5) < timer <= timedelta(seconds=share)
    await replays(time_skipping, handle)


async def test_cancelling_stops_further_sends_and_keeps_what_was_sent(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    users = [f"u{n}" for n in range(4)]
    members(store, *users)
    handle = await start_broadcast(
        time_skipping.client, broadcast(task_queue, rate="1/h"), task_queue=task_queue
    )
    await until(lambda: any(store.deliveries_for_user(u) for u in users))
    store.set_broadcast_status(task_queue, "cancelled")  # what the API does first
    await cancel_broadcast(time_skipping.client, task_queue)
    outcome = await handle.result()
    assert (outcome.status, outcome.counts.sent) == ("cancelled", 1)
    assert sum(len(store.deliveries_for_user(u)) for u in users) == 1
    record = store.get_broadcast(task_queue)
    assert record is not None
    assert record.status == "cancelled"
    await replays(time_skipping, handle)

    # Cancelling the run itself (the Temporal UI's button) records the broadcast cancelled.
    other = broadcast(f"{task_queue}-ui", rate="1/h")
    handle = await start_broadcast(time_skipping.client, other, task_queue=task_queue)
    source = f"broadcast:{other.id}"
    await until(
        lambda: any(d.journey_id == source for u in users for d in store.deliveries_for_user(u))
    )
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    record = store.get_broadcast(other.id)
    assert record is not None
    assert (record.status, record.targeted) == ("cancelled", 4)


async def test_members_in_their_quiet_hours_get_it_when_they_end(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    now = await time_skipping.get_current_time()
    quiet = {"start": f"{now.hour:02d}:00", "end": f"{(now.hour + 2) % 24:02d}:00"}
    members(store, "sleeping", timezone="UTC")
    members(store, "awake", timezone="Asia/Kathmandu")  # UTC+5:45: outside those hours
    # `skip`: recorded skipped at once.
    skipping = broadcast(f"{task_queue}-skip", quiet_hours={**quiet, "action": "skip"})
    _, skipped = await run(time_skipping, task_queue, skipping)
    assert (skipped.counts.sent, skipped.counts.skipped) == (1, 1)
    [asleep] = store.deliveries_for_user("sleeping")
    assert (asleep.status, asleep.reason) == ("skipped", "quiet hours")

    # Cancelled while a member's message is put off: it is recorded as skipped.
    cancelled = broadcast(f"{task_queue}-cancel", quiet_hours=quiet)
    handle = await start_broadcast(time_skipping.client, cancelled, task_queue=task_queue)
    await until(lambda: "awake" in sent_to(store, cancelled.id))
    store.set_broadcast_status(cancelled.id, "cancelled")
    await cancel_broadcast(time_skipping.client, cancelled.id)
    assert (await handle.result()).status == "cancelled"
    assert outcomes(store, cancelled.id, "sleeping") == {
        "sleeping": ("skipped", "broadcast cancelled")
    }

    # `delay`: the others go at once, the member in quiet hours when they end.
    handle = await start_broadcast(
        time_skipping.client, broadcast(task_queue, quiet_hours=quiet), task_queue=task_queue
    )
    # The page is sent in the members' order: awake's message, then sleeping's put off.
    await until(lambda: "awake" in sent_to(store, task_queue) and put_off(store, task_queue))
    assert outcomes(store, task_queue, "sleeping")["sleeping"] == ("pending", None)
    outcome = await handle.result()
    assert outcomes(store, task_queue, "sleeping", "awake") == {
        "sleeping": ("sent", None),
        "awake": ("sent", None),
    }
    assert outcome.counts.sent == 2
    assert await timer_summaries(time_skipping, handle) == ["quiet hours"]
    assert await time_skipping.get_current_time() >= now + timedelta(hours=1)


async def test_a_pass_over_deferred_members_goes_on_where_it_stopped_in_a_fresh_run(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    now = await time_skipping.get_current_time()
    quiet = {"start": f"{(now.hour - 1) % 24:02d}:00", "end": f"{(now.hour + 2) % 24:02d}:00"}
    members(store, "b1", "b2", timezone="Etc/GMT+1")  # UTC-1: theirs end an hour after z's
    members(store, "z", timezone="UTC")
    # Two pages per run, a member per page: the pass that may send z first reads b1 and b2
    # (still in their quiet hours), continues as new, and must go on to z, not start again.
    handle = await start_broadcast(
        time_skipping.client,
        broadcast(task_queue, quiet_hours=quiet),
        task_queue=task_queue,
        page_size=1,
        pages_per_run=2,
    )
    try:
        async with asyncio.timeout(20):
            outcome = await handle.result()
    finally:
        with contextlib.suppress(RPCError):  # ended already
            await handle.terminate()
    assert outcome.counts.sent == 3
    assert set(outcomes(store, task_queue, "b1", "b2", "z").values()) == {("sent", None)}
    # One wait for z's quiet hours to end, one (after that pass) for b1's and b2's.
    runs = await run_histories(time_skipping, handle)
    timers = [e for events in runs for e in events if e.HasField("timer_started_event_attributes")]
    assert len(timers) == 2
    assert len(runs) <= 6
    assert await time_skipping.get_current_time() >= now + timedelta(hours=1)


async def test_a_large_message_and_many_pages_keep_each_run_small(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    users = ["a", "b", "c", "d"]
    members(store, *users, timezone="UTC")
    now = await time_skipping.get_current_time()
    quiet = {"start": f"{now.hour:02d}:00", "end": f"{(now.hour + 1) % 24:02d}:00"}
    html = "<p>" + "x" * 60_000 + "</p>"
    message = {"channel": "email", "content": {"subject": "s", "body": "b", "html": html}}
    sent = broadcast(task_queue, message=message, quiet_hours=quiet)
    # A page per run at most once the history is long (here: at once), in both passes.
    handle, outcome = await run(
        time_skipping, task_queue, sent, page_size=1, pages_per_run=100, history_limit=1
    )
    assert (outcome.counts.sent, outcome.targeted) == (4, 4)
    runs = await run_histories(time_skipping, handle)
    sends = [event for events in runs for event in scheduled(events, "send_broadcast")]
    assert len(sends) == 8  # each member put off, then sent when their quiet hours end
    # A send names the broadcast: its content is read by the activity, not put in the history.
    assert max(event.ByteSize() for event in sends) < 2_000
    for events in runs:
        assert len(scheduled(events, "broadcast_members")) <= 1
        assert len(scheduled(events, "broadcast_unfinished")) <= 1
        # The broadcast is in the run's input and the next run's (and the first run's open
        # activity): no more, however many members the run sends to.
        assert sum(event.ByteSize() for event in events) < 4 * len(html)
    await replays(time_skipping, handle)


def sent_to(store: Store, broadcast_id: str) -> set[str]:
    """The users the broadcast's message was sent to."""
    return {
        user
        for user in ("sleeping", "awake")
        for d in store.deliveries_for_user(user)
        if d.journey_id == f"broadcast:{broadcast_id}" and d.status == "sent"
    }


def put_off(store: Store, broadcast_id: str) -> bool:
    """Whether sleeping's message of the broadcast is recorded, waiting for their quiet hours."""
    return any(
        d.journey_id == f"broadcast:{broadcast_id}" and d.status == "pending"
        for d in store.deliveries_for_user("sleeping")
    )


async def until(check: Any, timeout: float = 10.0) -> None:
    """Wait (in real time) until `check()` holds."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_stored_broadcast_histories_replay(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    async def record() -> WorkflowHandle[Any, BroadcastOutcome]:
        members(store, "a", "b", "c")
        quiet = {"start": "00:00", "end": "00:01", "action": "skip"}
        paced = broadcast(task_queue, rate="2/m", quiet_hours=quiet)
        return await start_broadcast(time_skipping.client, paced, task_queue=task_queue)

    await replay_stored_histories("broadcasts", "broadcast", BroadcastWorkflow, record)

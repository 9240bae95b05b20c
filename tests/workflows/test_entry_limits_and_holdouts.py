"""Entry limits and holdouts, driven by the interpreter on the time-skipping server: runs over
the limit end before entering and leave no enrollment; held-out users (of the journey, or of the
workspace) go through the journey and are tracked, their non-transactional messages skipped with
the reason and their transactional ones sent."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.holdouts import in_global_holdout, in_journey_holdout
from journeys.model import Journey
from journeys.store import Store
from journeys.workspace import GlobalHoldout, WorkspaceSettings, save_workspace_settings
from tests.workflows.helpers import make_journey, send, start

PROMO = {"type": "message", "channel": "in_app", "content": {"title": "Sale", "body": "b"}}
RECEIPT = {**PROMO, "content": {"title": "Receipt", "body": "b"}, "transactional": True}


def published(store: Store, journey: Journey) -> Journey:
    """The journey, stored as the API would (admissions are counted per stored journey)."""
    store.save_draft(journey.id, journey.model_dump(mode="json", by_alias=True))
    return journey


def messaging(**top: Any) -> Journey:
    """promo → receipt → a wait for a purchase (the goal), so conversions can be driven."""
    return make_journey(
        "promo",
        {
            "promo": {**PROMO, "next": "receipt"},
            "receipt": {**RECEIPT, "next": "wait"},
            "wait": {
                "type": "wait_for_event",
                "paths": [{"event": "Order Completed", "next": "done"}],
                "timeout": "1d",
                "on_timeout": "done",
            },
            "done": {"type": "exit"},
        },
        goal={"event": "Order Completed", "within": "2d"},
        **top,
    )


async def test_runs_over_the_entry_limit_do_not_enter(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = published(
        store,
        make_journey(
            "hello",
            {"hello": {**PROMO, "next": None}},
            entry={"event": "Added to Cart", "limit": {"count": 2, "per": "1h"}, "reentry": "1m"},
        ),
    )
    outcomes = [
        await (await start(time_skipping, task_queue, journey, f"u{i}")).result() for i in range(4)
    ]
    assert [(o.status, o.reason) for o in outcomes] == [
        ("completed", None),
        ("completed", None),
        ("exited", "entry limit"),
        ("exited", "entry limit"),
    ]
    assert outcomes[2].path == []
    counts = store.journey_counts(journey.id)
    assert (counts["entered"], counts["limited"]) == (2, 2)
    # A refused user has no enrollment (nothing counts against re-entry) and got nothing.
    assert store.last_enrollment(journey.id, "u2") is None
    assert store.deliveries_for_user("u2") == []

    # An hour on, the window has room again: the refused user enters this time.
    await time_skipping.sleep(timedelta(hours=1, minutes=1))
    again = await (await start(time_skipping, task_queue, journey, "u2")).result()
    assert (again.status, again.path) == ("completed", ["hello"])
    assert store.journey_counts(journey.id)["limited"] == 2


async def test_held_out_users_are_tracked_and_get_only_transactional_messages(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    journey = published(store, messaging(holdout={"percent": 50}))
    users = [f"user-{i}" for i in range(8)]
    held_out = {u for u in users if in_journey_holdout(journey, u)}
    assert held_out
    assert held_out != set(users)  # both groups present (stable hash: always the same users)
    for user_id in users:
        handle = await start(time_skipping, task_queue, journey, user_id)
        if user_id.endswith(("1", "2")):
            await send(time_skipping, handle, "Order Completed")
        assert (await handle.result()).status == "completed"

    for user_id in users:
        by_node = {d.node_id: d for d in store.deliveries_for_user(user_id)}
        promo, receipt = by_node["promo"], by_node["receipt"]
        if user_id in held_out:
            assert (promo.status, promo.reason) == ("skipped", "holdout")
        else:
            assert (promo.status, promo.reason) == ("sent", None)
        assert receipt.status == "sent"
        enrollment = store.last_enrollment(journey.id, user_id)
        assert enrollment is not None
        assert enrollment.holdout == ("holdout" if user_id in held_out else None)
    converted = {u for u in users if u.endswith(("1", "2"))}
    expected = {
        "holdout": (len(held_out), len(held_out & converted)),
        None: (len(users) - len(held_out), len(converted - held_out)),
    }
    assert store.holdout_counts(journey.id) == {k: v for k, v in expected.items() if v[0]}


async def test_the_global_holdout_skips_every_journeys_messages(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    save_workspace_settings(store, WorkspaceSettings(holdout=GlobalHoldout(percent=20)))
    numbers = count()
    inside = next(u for i in numbers if in_global_holdout(20, u := f"user-{i}"))
    outside = next(u for i in numbers if not in_global_holdout(20, u := f"user-{i}"))
    journey = published(store, messaging())
    for user_id in (inside, outside):
        handle = await start(time_skipping, task_queue, journey, user_id)
        await send(time_skipping, handle, "Order Completed")
        assert (await handle.result()).status == "completed"

    skipped = {(d.node_id, d.status, d.reason) for d in store.deliveries_for_user(inside)}
    assert skipped == {("promo", "skipped", "global holdout"), ("receipt", "sent", None)}
    sent = {(d.node_id, d.status) for d in store.deliveries_for_user(outside)}
    assert sent == {("promo", "sent"), ("receipt", "sent")}
    marks = {
        user_id: enrollment.holdout
        for user_id in (inside, outside)
        if (enrollment := store.last_enrollment(journey.id, user_id)) is not None
    }
    assert marks == {inside: "global holdout", outside: None}


async def test_a_user_in_both_holdouts_is_on_neither_side_of_the_journeys_comparison(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    save_workspace_settings(store, WorkspaceSettings(holdout=GlobalHoldout(percent=20)))
    journey = published(store, messaging(holdout={"percent": 50}))
    both = next(
        user_id
        for i in count()
        if in_global_holdout(20, user_id := f"user-{i}") and in_journey_holdout(journey, user_id)
    )
    handle = await start(time_skipping, task_queue, journey, both)
    await send(time_skipping, handle, "Order Completed")
    assert (await handle.result()).status == "completed"

    enrollment = store.last_enrollment(journey.id, both)
    assert enrollment is not None
    assert enrollment.holdout == "global holdout"
    assert "holdout" not in store.holdout_counts(journey.id)  # counted in neither group

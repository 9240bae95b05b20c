"""An experiment that finds a winner on the time-skipping server: once `after` has passed and a
look shows one variant clearly ahead, every new arrival takes it, and the run says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.engagement import DELIVERY_ID, EMAIL_LINK_CLICKED, MACHINE
from journeys.experiments import experiment_bucket
from journeys.model import Journey
from journeys.store import NewEvent, Store
from tests.factories import mark_converted, merge_traits
from tests.workflows.helpers import make_journey, start

JOURNEY = make_journey(
    "split",
    {
        "split": {
            "type": "experiment",
            "variants": [
                {"name": "plain", "weight": 50, "next": "plain_done"},
                {"name": "bold", "weight": 50, "next": "bold_done"},
            ],
            "winner": {"after": "1s", "min_users": 10},
        },
        "plain_done": {"type": "exit"},
        "bold_done": {"type": "exit"},
    },
    goal={"event": "Order Completed", "within": "7d"},
)


MAIL = {"subject": "Your cart", "body": "https://shop.example/cart"}


async def run_users(
    env: WorkflowEnvironment, task_queue: str, users: range, journey: Journey = JOURNEY
) -> dict[str, list[str]]:
    """Each user's path, run one after another so every arrival sees the looks before it."""
    paths = {}
    for i in users:
        outcome = await (await start(env, task_queue, journey, f"u{i}")).result()
        paths[f"u{i}"] = outcome.path
    return paths


async def test_a_clear_winner_takes_every_new_arrival(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    store.save_draft(JOURNEY.id, JOURNEY.model_dump(mode="json", by_alias=True, exclude_none=True))
    store.publish(JOURNEY.id)
    await asyncio.sleep(1.1)  # `after` is measured from the publication, on the wall clock

    # The first users split by hash; no one has converted, so the first looks pick nobody.
    first = await run_users(time_skipping, task_queue, range(30))
    assert {tuple(path) for path in first.values()} == {
        ("split", "plain_done"),
        ("split", "bold_done"),
    }
    assert store.experiment_decision(JOURNEY.id, "split").winner is None

    # Then everyone who saw the bold variant buys.
    for user_id, path in first.items():
        if path[-1] == "bold_done":
            [enrollment] = store.enrollments_for_user(user_id)
            mark_converted(store, enrollment.id, datetime.now(UTC))

    later = await run_users(time_skipping, task_queue, range(30, 90))
    decision = store.experiment_decision(JOURNEY.id, "split")
    assert decision.winner == "bold"
    assert decision.p_value is not None
    assert decision.p_value < 0.01
    decided = [u for u, path in later.items() if path[-1] == "bold_done"]
    # After the decision, users the hash would send to "plain" take "bold" too.
    hashed_plain = [u for u in later if experiment_bucket(JOURNEY.id, "split", u) < 50]
    taken_over = [u for u in hashed_plain if later[u][-1] == "bold_done"]
    assert taken_over
    last = list(later)[-10:]
    assert all(later[u][-1] == "bold_done" for u in last)
    assert len(decided) > len(later) / 2

    handle = time_skipping.client.get_workflow_handle(f"journey:{JOURNEY.id}:{last[-1]}")
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "experiment split: 'bold' won, so every new arrival takes it" in (
        metadata.current_details
    )


CLICKS = make_journey(
    "split",
    {
        "split": {
            "type": "experiment",
            "variants": [
                {"name": "plain", "weight": 50, "next": "plain_mail"},
                {"name": "bold", "weight": 50, "next": "bold_mail"},
            ],
            "winner": {"after": "1s", "min_users": 10, "metric": "click", "within": "1d"},
        },
        "plain_mail": {"type": "message", "channel": "email", "content": MAIL},
        "bold_mail": {"type": "message", "channel": "email", "content": MAIL},
    },
    id="click-test",
)


async def test_a_click_winner_is_the_better_click_through_not_the_scanned_one(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    store.save_draft(CLICKS.id, CLICKS.model_dump(mode="json", by_alias=True, exclude_none=True))
    store.publish(CLICKS.id)
    await asyncio.sleep(1.1)  # `after` is measured from the publication, on the wall clock
    users = [f"u{i}" for i in range(90)]
    for user_id in users:
        merge_traits(store, user_id, {"email": f"{user_id}@example.com"})

    first = await run_users(time_skipping, task_queue, range(30), CLICKS)
    assert store.experiment_decision(CLICKS.id, "split").winner is None
    # A link scanner clicks every plain email at once; people click the bold ones.
    clicks = []
    for user_id, path in first.items():
        [delivery] = store.deliveries_for_user(user_id)
        [enrollment] = store.enrollments_for_user(user_id)
        assert delivery.id is not None
        scanned = path[-1] == "plain_mail"
        clicks.append(
            NewEvent(
                message_id=f"click-{user_id}",
                user_id=user_id,
                type="track",
                name=EMAIL_LINK_CLICKED,
                properties={DELIVERY_ID: delivery.id, MACHINE: scanned},
                timestamp=enrollment.entered_at + timedelta(minutes=5),
            )
        )
    store.mark_engaged(clicks)

    later = await run_users(time_skipping, task_queue, range(30, 90), CLICKS)
    decision = store.experiment_decision(CLICKS.id, "split")
    assert decision.winner == "bold"
    assert all(later[u][-1] == "bold_mail" for u in list(later)[-10:])

"""An experiment that finds a winner on the time-skipping server: once `after` has passed and a
look shows one variant clearly ahead, every new arrival takes it, and the run says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.store import Store
from tests.factories import mark_converted
from tests.workflows.helpers import make_journey, start
from workflows.journey import experiment_bucket

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


async def run_users(
    env: WorkflowEnvironment, task_queue: str, users: range
) -> dict[str, list[str]]:
    """Each user's path, run one after another so every arrival sees the looks before it."""
    paths = {}
    for i in users:
        outcome = await (await start(env, task_queue, JOURNEY, f"u{i}")).result()
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

"""Determinism guard: stored histories of the example journeys replay on today's interpreter.

Each example has a scenario (a user and what they do). `test_stored_history_replays` replays
every history saved in `histories/` without running anything; a change to the interpreter that
would break users mid-journey fails here. After an intended change (behind `workflow.patched`),
keep the old histories under a versioned name (`onboarding.json` → `onboarding.v1.json`: they
must still replay), then record the new ones with

    JOURNEYS_REFRESH_HISTORIES=1 .venv/bin/pytest tests/workflows/test_replay.py

and commit both together with the change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from journeys.model import Journey
from journeys.store import Store
from tests.factories import merge_traits
from tests.workflows.helpers import send, start, workflow_task_failures
from workflows.journey import JourneyWorkflow

EXAMPLES = Path(__file__).parents[2] / "examples"
HISTORIES = Path(__file__).with_name("histories")
REFRESH = os.environ.get("JOURNEYS_REFRESH_HISTORIES") == "1"


@dataclass
class Scenario:
    """A user going through an example journey: traits, entry properties, then steps."""

    traits: dict[str, Any]
    entry: dict[str, Any]
    path: list[str]
    steps: list[timedelta | tuple[str, dict[str, Any]]] = field(default_factory=list)


SCENARIOS = {
    "abandoned-cart": Scenario(
        traits={"email": "ada@example.com", "first_name": "Ada", "push_tokens": ["tok-1"]},
        entry={"total_price": 80, "currency": "USD", "product_name": "Desk lamp"},
        steps=[timedelta(hours=2), ("Product Viewed", {"product_id": "p1"})],
        path=[
            "wait_checkout",
            "by_cart_value",
            "copy_test",
            "urgency_email",
            "pause_before_push",
            "cart_push",
        ],
    ),
    "browse-abandonment": Scenario(
        traits={"email": "bo@example.com", "first_name": "Bo", "push_tokens": ["tok-2"]},
        entry={"product_id": "p9", "product_name": "Armchair"},
        steps=[timedelta(minutes=30), ("Product Viewed", {"product_id": "p9"})],
        path=[
            "quiet_for_an_hour",
            "by_reachability",
            "browse-email",
            "pause-before-push",
            "browse-push",
        ],
    ),
    "onboarding": Scenario(
        traits={"email": "cy@example.com", "plan": "pro", "timezone": "Europe/Berlin"},
        entry={"source": "ads"},
        steps=[timedelta(days=1, hours=1), ("Profile Completed", {"completion": 90})],
        path=[
            "welcome_email",
            "wait_a_day",
            "wait_profile",
            "by_plan",
            "tag_pro",
            "pro_tips",
            "tips_morning",
            "tips_email",
            "done",
        ],
    ),
    "checkout-help": Scenario(
        traits={"first_name": "Ed"},
        entry={"path": "/checkout", "title": "Checkout"},
        steps=[timedelta(seconds=4), ("Coupon Entered", {"code": "NOPE"}), timedelta(seconds=11)],
        path=["lingering", "offer_help"],
    ),
    "win-back": Scenario(
        traits={"email": "di@example.com", "phone": "+15550100", "first_name": "Di"},
        entry={},
        path=["offer_email", "wait_order", "has_phone", "sms_follow_up", "crm_lapsed"],
    ),
}


def history_file(journey_id: str) -> Path:
    return HISTORIES / f"{journey_id}.json"


def load_example(journey_id: str) -> Journey:
    return Journey.model_validate_json((EXAMPLES / f"{journey_id}.json").read_text())


def test_every_example_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(p.stem for p in EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("journey_id", sorted(SCENARIOS))
async def test_example_runs_to_an_end_and_replays(
    journey_id: str,
    time_skipping: WorkflowEnvironment,
    worker: Worker,
    store: Store,
    task_queue: str,
) -> None:
    scenario = SCENARIOS[journey_id]
    journey = load_example(journey_id)
    store.save_draft(journey.id, journey.model_dump(mode="json", by_alias=True))  # entry limits
    merge_traits(store, "u1", scenario.traits)
    handle = await start(time_skipping, task_queue, journey, entry=scenario.entry)
    for step in scenario.steps:
        if isinstance(step, timedelta):
            await time_skipping.sleep(step)
        else:
            name, properties = step
            await send(time_skipping, handle, name, **properties)
    outcome = await handle.result()
    assert (outcome.status, outcome.path) == ("completed", scenario.path)
    assert await workflow_task_failures(time_skipping.client, handle.id) == []

    history = await handle.fetch_history()
    await Replayer(
        workflows=[JourneyWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
    if REFRESH:
        HISTORIES.mkdir(exist_ok=True)
        history_file(journey_id).write_text(json.dumps(json.loads(history.to_json()), indent=1))


def test_every_example_has_a_stored_history() -> None:
    missing = [j for j in SCENARIOS if not history_file(j).exists()]
    assert missing == [], f"no stored history: run with JOURNEYS_REFRESH_HISTORIES=1 ({missing})"


@pytest.mark.parametrize("stored", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_stored_history_replays(stored: Path) -> None:
    journey_id = stored.name.split(".")[0]
    history = WorkflowHistory.from_json(f"journey:{journey_id}:u1", stored.read_text())
    result = await Replayer(
        workflows=[JourneyWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"{stored.name} no longer replays: {result.replay_failure}"
    )

"""Conversion predictions over a real store: synthetic shoppers whose conversions depend on
recency and cart adds, fitted, scored and reported by the activity, the workflow, the API and
`journeys predict`."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.predictions import run_predictions
from journeys.contracts import PredictInput, PredictionReport
from journeys.store import NewEvent, Store
from tests.conftest import run_journeys
from workflows.predictions import PredictionWorkflow

NOW = datetime.now(UTC).replace(microsecond=0)
HORIZON = timedelta(days=7)


def event(user_id: str, name: str, at: datetime, **properties: Any) -> NewEvent:
    return NewEvent(
        message_id=uuid.uuid4().hex,
        user_id=user_id,
        type="track",
        name=name,
        properties=properties,
        timestamp=at,
    )


def shoppers(store: Store, count: int, seed: int = 3) -> dict[str, bool]:
    """`count` shoppers with two weeks of history; whether each converted in the last week.
    Recent visitors who added to cart convert often; others rarely. Some open emails."""
    rng = random.Random(seed)
    cutoff = NOW - HORIZON
    outcome = {}
    events = []
    for i in range(count):
        user_id = f"shopper-{i}"
        last_seen = rng.uniform(0.5, 30)
        cart_adds = rng.choice([0, 0, 1, 2])
        seen = cutoff - timedelta(days=last_seen)
        events += [event(user_id, "Product Viewed", seen - timedelta(hours=h)) for h in (0, 5)]
        events += [event(user_id, "Added to Cart", seen) for _ in range(cart_adds)]
        if rng.random() < 0.3:
            events.append(event(user_id, "Email Opened", seen))
        likely = last_seen < 5 and cart_adds > 0
        bought = rng.random() < (0.6 if likely else 0.04)
        if bought:
            events.append(event(user_id, "Order Completed", cutoff + timedelta(days=2)))
        outcome[user_id] = bought
    store.append_events(events)
    return outcome


def test_the_model_is_fitted_reported_and_written_to_profiles(store: Store) -> None:
    bought = shoppers(store, 600)
    stages: list[tuple[str, int, int]] = []
    report = run_predictions(store, HORIZON, NOW, lambda *step: stages.append(step))
    assert report.status == "trained"
    assert report.auc is not None
    assert report.auc > 0.75
    assert report.users_scored == 600
    assert report.training_users + report.held_out_users == 600
    assert stages[-1] == ("scoring", 600, 600)
    assert ("reading", 600, 600) in stages
    assert set(report.coefficients) >= {"cart_adds_30d", "days_since_last_event"}
    scores = {
        user_id: store.get_user(user_id).traits["predicted_conversion"]  # type: ignore[union-attr]
        for user_id in bought
    }
    assert all(0 <= score <= 1 for score in scores.values())
    assert store.get_user("shopper-0").traits.get("preferred_channel") in (None, "email")  # type: ignore[union-attr]
    [stored] = store.prediction_runs(5)
    assert PredictionReport.model_validate(stored) == report


def test_too_few_converters_is_reported_not_guessed(store: Store) -> None:
    store.append_events([event("u1", "Email Opened", NOW - timedelta(days=9))])
    report = run_predictions(store, HORIZON, NOW)
    assert (report.status, report.auc, report.users_scored) == ("not enough data", None, 0)
    assert "at least 10" in report.message
    traits = store.get_user("u1").traits  # type: ignore[union-attr]
    assert traits == {"preferred_channel": "email"}


def test_machine_opens_and_clicks_say_nothing_about_the_user(store: Store) -> None:
    day = NOW - timedelta(days=9)
    store.append_events(
        [
            event("u1", "In-App Message Viewed", day),
            *[event("u1", "Email Link Clicked", day, machine=True) for _ in range(3)],
            event("u2", "Email Opened", day, machine=True),
        ]
    )
    run_predictions(store, HORIZON, NOW)
    assert store.get_user("u1").traits == {"preferred_channel": "in_app"}  # type: ignore[union-attr]
    assert store.get_user("u2").traits == {}  # type: ignore[union-attr]


async def test_the_nightly_workflow_runs_the_predictions(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    shoppers(store, 200)
    report = await time_skipping.client.execute_workflow(
        PredictionWorkflow.run, PredictInput(), id=f"predict-{task_queue}", task_queue=task_queue
    )
    assert report.status == "trained"
    assert len(store.prediction_runs(5)) == 1


def test_journeys_predict_shows_progress_and_quality(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'journeys.db'}"
    store = Store(database)
    shoppers(store, 300)
    store.close()
    result = run_journeys("predict", env={**os.environ, "JOURNEYS_DATABASE_URL": database})
    assert result.returncode == 0, result.stderr
    assert "scoring  [####################] 300/300 users" in result.stdout
    assert "trained: " in result.stdout
    assert "held-out AUC 0." in result.stdout
    assert "cart_adds_30d" in result.stdout

"""A message its channel's rate limit holds back waits for its turn on a named timer, says so in
the run's details and its delivery, and still hears the events that end the run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from journeys.contracts import STATE_QUERY, StateView
from journeys.store import Store, utcnow
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.workflows.helpers import make_journey, reached, send, start, workflow_task_failures
from tests.workflows.test_summaries import timer_summaries
from workflows.journey import JourneyWorkflow

JOURNEY = make_journey(
    "text",
    {"text": {"type": "message", "channel": "sms", "content": {"body": "Hi"}}},
    exit=[{"event": "Unsubscribed"}],
)


async def held_back(
    time_skipping: WorkflowEnvironment, store: Store, task_queue: str
) -> WorkflowHandle[Any, Any]:
    """Under an SMS limit of 1/h, a first user's message goes; a second user's run, waiting at
    its message for the next slot."""
    save_workspace_settings(store, WorkspaceSettings(rate_limits={"sms": "1/h"}))
    for user in ("first", "second"):
        store.update_traits(user, {"phone": "+15550100"}, [])
    first = await start(time_skipping, task_queue, JOURNEY, "first")
    assert (await first.result()).status == "completed"
    assert [d.status for d in store.deliveries_for_user("first")] == ["sent"]
    second = await start(time_skipping, task_queue, JOURNEY, "second")
    await reached(second, "text")
    return second


async def test_a_message_over_the_rate_waits_for_its_turn_in_sight(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    second = await held_back(time_skipping, store, task_queue)
    state = await second.query(STATE_QUERY, result_type=StateView)
    assert state.waiting_for is not None
    what, until = state.waiting_for.split(" · until ")
    assert what == "text: sms rate limit 1/h: waiting for a slot"
    metadata = await second.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == state.waiting_for
    assert await timer_summaries(time_skipping, second) == ["sms rate limit: waiting for a slot"]
    [held] = store.deliveries_for_user("second")
    assert (held.status, held.reason) == ("pending", "sms rate limit 1/h: waiting for a slot")
    assert held.waits_until is not None
    assert utcnow() + timedelta(minutes=59) < held.waits_until < utcnow() + timedelta(hours=1)
    # The details go by the Temporal server's clock, as the timer does (this test server's
    # runs far ahead of the worker's).
    in_an_hour = await time_skipping.get_current_time() + timedelta(hours=1)
    assert abs(datetime.fromisoformat(until) - in_an_hour) < timedelta(minutes=1)

    # Events still reach the run while it waits: an exit rule ends it there.
    await send(time_skipping, second, "Unsubscribed")
    outcome = await second.result()
    assert (outcome.status, outcome.reason) == ("exited", "exit event Unsubscribed")
    [unsent] = store.deliveries_for_user("second")  # its place in line is given up
    assert (unsent.status, unsent.reason, unsent.waits_until) == (
        "skipped",
        "exit event Unsubscribed",
        None,
    )
    assert await workflow_task_failures(time_skipping.client, second.id) == []
    await Replayer(
        workflows=[JourneyWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(await second.fetch_history())


async def test_a_run_cancelled_while_it_waits_for_a_slot_gives_up_its_message(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    second = await held_back(time_skipping, store, task_queue)
    await second.cancel()  # an operator, from the Temporal UI
    with pytest.raises(WorkflowFailureError):
        await second.result()
    [unsent] = store.deliveries_for_user("second")  # not listed as waiting for ever
    assert (unsent.status, unsent.reason, unsent.waits_until) == ("skipped", "cancelled", None)

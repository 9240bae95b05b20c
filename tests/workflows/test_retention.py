"""`EventRetentionWorkflow` on the time-skipping server, with the worker's activities and a
real store: it deletes the routed events past retention across activity calls and
continue-as-new, and keeps what the outbox holds and what live windows still read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.contracts import RetentionInput, RetentionReport
from journeys.store import Store
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.factories import aged_event
from tests.workflows.helpers import replay_stored_histories
from workflows.retention import EventRetentionWorkflow

DAY = timedelta(days=1)


def counted(event: str, within: str | None = None) -> dict[str, object]:
    count = {"event": event} if within is None else {"event": event, "within": within}
    return {"event_count": count, "op": "gte", "value": 1}


def publish(store: Store, journey_id: str, audience: dict[str, object]) -> None:
    store.save_draft(
        journey_id,
        {
            "id": journey_id,
            "name": journey_id,
            "entry": {"event": "Signed Up", "audience": audience},
            "start": "hi",
            "nodes": {"hi": {"type": "message", "channel": "in_app", "content": {"body": "Hi"}}},
        },
    )
    store.publish(journey_id)


async def test_retention_deletes_what_no_window_reads_across_runs(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    save_workspace_settings(store, WorkspaceSettings(events_retention_days=30))
    store.put_segment("buyers", "Bought lately", counted("Purchased", "90d"))
    publish(store, "openers", counted("Opened"))
    publish(store, "clickers", counted("Clicked"))
    store.set_status("clickers", "archived")
    now = datetime.now(UTC)

    def event(name: str, age: timedelta, routed: timedelta | None) -> str:
        routed_at = None if routed is None else now - routed
        return aged_event(store, "ada", name, now - age, routed_at=routed_at)

    gone = {
        event("Viewed", 40 * DAY, 40 * DAY),
        event("Purchased", 120 * DAY, 120 * DAY),
        event("Clicked", 100 * DAY, 100 * DAY),  # its journey was archived
        *(event("Viewed", 50 * DAY + n * DAY, 50 * DAY) for n in range(5)),
    }
    kept = {
        event("Purchased", 60 * DAY, 60 * DAY),  # the segment's 90 days
        event("Opened", 1000 * DAY, 1000 * DAY),  # a live journey counts them all
        event("Viewed", 400 * DAY, None),  # still in the outbox
        event("Viewed", 10 * DAY, 10 * DAY),
    }

    workflow_id = f"retention-{uuid.uuid4().hex[:8]}"
    handle = await time_skipping.client.start_workflow(
        EventRetentionWorkflow.run,
        RetentionInput(batch_size=2, batches_per_call=1, calls_per_run=2),
        id=workflow_id,
        task_queue=task_queue,
    )
    report = await handle.result()

    assert isinstance(report, RetentionReport)
    # Routed before the cutoff: the eight gone and the Purchased one kept; the Opened one,
    # counted for good, is never read.
    assert (report.scanned, report.deleted, report.finished) == (9, len(gone), True)
    assert report.names_kept_longer == 2
    assert report.cutoff is not None
    assert abs(report.cutoff - (now - 30 * DAY)) < timedelta(minutes=5)
    assert {e.message_id for e in store.events_for_user("ada")} == kept
    # Two calls of one batch each per run: ten events, two at a time, took three runs.
    first = time_skipping.client.get_workflow_handle(
        workflow_id, run_id=handle.first_execution_run_id
    )
    history = await first.fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


async def test_nothing_goes_while_a_live_window_reads_every_event(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    save_workspace_settings(store, WorkspaceSettings(events_retention_days=1))
    store.put_segment("active", "Ever active", counted("*"))
    long_ago = datetime.now(UTC) - 900 * DAY
    old = aged_event(store, "ada", "Viewed", long_ago, routed_at=long_ago)

    report = await time_skipping.client.execute_workflow(
        EventRetentionWorkflow.run,
        RetentionInput(),
        id=f"retention-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )
    assert (report.cutoff, report.scanned, report.deleted) == (None, 0, 0)
    assert [e.message_id for e in store.events_for_user("ada")] == [old]


async def test_stored_retention_histories_replay(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    async def record() -> WorkflowHandle[Any, RetentionReport]:
        long_ago = datetime.now(UTC) - 900 * DAY
        for _ in range(3):
            aged_event(store, "ada", "Viewed", long_ago, routed_at=long_ago)
        return await time_skipping.client.start_workflow(
            EventRetentionWorkflow.run,
            RetentionInput(batch_size=2, batches_per_call=1),
            id=f"retention-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )

    await replay_stored_histories("retention", "retention", EventRetentionWorkflow, record)

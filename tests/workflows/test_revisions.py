"""Runs pinned to the interpreter's revision by their input: no patch marker and no
`TemporalChangeVersion` upsert, and a revision newer than the worker's waits for a worker that
knows it instead of running on old code."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.channels import embedded_channels
from activities.journey import JourneyActivities
from journeys.store import Store
from tests.factories import merge_traits
from tests.workflows.helpers import make_journey, start, workflow_task_failures
from workflows import client, patches
from workflows.journey import JourneyWorkflow

EMAIL = {"subject": "Hi", "body": "b"}
JOURNEY = make_journey(
    "hello", {"hello": {"type": "message", "channel": "email", "content": EMAIL}}
)


async def test_a_new_run_records_no_patch_marker_and_no_change_version(
    time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    handle = await start(time_skipping, task_queue, JOURNEY)
    assert (await handle.result()).path == ["hello"]
    markers, upserts = [], []
    async for event in handle.fetch_history_events():
        if event.HasField("marker_recorded_event_attributes"):
            markers.append(event.marker_recorded_event_attributes.marker_name)
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            upserts.append(sorted(fields.indexed_fields))
    assert markers == ["core_local_activity"]  # the delivery; no "core_patch"
    assert upserts == []


async def test_a_run_of_a_newer_revision_waits_for_a_worker_that_knows_it(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    merge_traits(store, "u1", {"email": "ada@example.com"})
    activities = JourneyActivities(store, embedded_channels()).all()

    def worker(runner: WorkflowRunner) -> Worker:
        return Worker(
            time_skipping.client,
            task_queue=task_queue,
            workflows=[JourneyWorkflow],
            activities=activities,
            activity_executor=executor,
            workflow_runner=runner,
        )

    with pytest.MonkeyPatch.context() as patch:
        # Started by an upgraded API (the next revision), taken by a worker of today's code.
        patch.setattr(client, "REVISION", patches.REVISION + 1)
        async with worker(SandboxedWorkflowRunner()):
            handle = await start(time_skipping, task_queue, JOURNEY)
            async with asyncio.timeout(10):
                while not (
                    failures := await workflow_task_failures(time_skipping.client, handle.id)
                ):
                    await asyncio.sleep(0.05)
        assert "newer than this worker's" in failures[0]
        # The task failed, not the run: it waits, and nothing was recorded or sent.
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert store.enrollments_for_user("u1") == []
        assert store.deliveries_for_user("u1") == []

        # An upgraded worker (outside the sandbox, which would import today's code afresh).
        patch.setattr(patches, "REVISION", patches.REVISION + 1)
        async with worker(UnsandboxedWorkflowRunner()):
            assert (await handle.result()).path == ["hello"]
    assert [d.status for d in store.deliveries_for_user("u1")] == ["sent"]

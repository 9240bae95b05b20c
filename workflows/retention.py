"""`EventRetentionWorkflow`: the nightly deletion of routed events past retention (see
`activities.retention`).

Each activity call deletes a bounded number of short batches and says where it got to; the run
calls it again from there until nothing is left, and continues as new after `calls_per_run`
calls, so a run's history stays small however many events go.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts import (
        RETENTION_WORKFLOW_TYPE,
        Activity,
        RetentionInput,
        RetentionReport,
    )


@workflow.defn(name=RETENTION_WORKFLOW_TYPE)
class EventRetentionWorkflow:
    """Deletes the routed events no longer kept; its result counts them over every run."""

    @workflow.run
    async def run(self, request: RetentionInput) -> RetentionReport:
        """Call the activity until it finishes, or continue as new from where it got to."""
        after, deleted, scanned = request.after, request.deleted, request.scanned
        for _ in range(request.calls_per_run):
            step: RetentionReport = await workflow.execute_activity(
                Activity.DELETE_EXPIRED_EVENTS,
                request.model_copy(update={"after": after}),
                result_type=RetentionReport,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=5),
                summary="expired events",
            )
            after, deleted, scanned = step.after, deleted + step.deleted, scanned + step.scanned
            if step.finished:
                return step.model_copy(update={"deleted": deleted, "scanned": scanned})
        workflow.continue_as_new(
            request.model_copy(update={"after": after, "deleted": deleted, "scanned": scanned})
        )

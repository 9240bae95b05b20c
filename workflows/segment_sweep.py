"""`SegmentSweepWorkflow`: the scheduled re-check of segment-entry journeys.

A segment such as "no event in 7 days" fills up as time passes, with no event to route; a
Temporal Schedule runs this workflow periodically so such users still enter.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts import SWEEP_WORKFLOW_TYPE, Activity, SweepInput, SweepResult


@workflow.defn(name=SWEEP_WORKFLOW_TYPE)
class SegmentSweepWorkflow:
    """Starts every user who now belongs to a live segment-entry journey's segment."""

    @workflow.run
    async def run(self, request: SweepInput) -> SweepResult:
        """One sweep over every live segment-entry journey and every user."""
        result: SweepResult = await workflow.execute_activity(
            Activity.SWEEP_SEGMENT_ENTRIES,
            request,
            result_type=SweepResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="segment entries",
        )
        return result

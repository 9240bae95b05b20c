"""`PredictionWorkflow`: the nightly refit of the conversion model and rescoring of every user
(see `activities.predictions`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.contracts import (
        PREDICTION_WORKFLOW_TYPE,
        Activity,
        PredictInput,
        PredictionReport,
    )


@workflow.defn(name=PREDICTION_WORKFLOW_TYPE)
class PredictionWorkflow:
    """Fits the model on the event history and writes the prediction traits."""

    @workflow.run
    async def run(self, request: PredictInput) -> PredictionReport:
        """One prediction run; its report is the workflow's result."""
        report: PredictionReport = await workflow.execute_activity(
            Activity.PREDICT_CONVERSIONS,
            request,
            result_type=PredictionReport,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="conversion predictions",
        )
        return report

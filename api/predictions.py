"""Predictions: the conversion model's latest runs and their quality (admin)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import MANAGEMENT
from api.deps import StoreDep
from api.errors import error_responses
from journeys.contracts import PredictionReport

router = APIRouter(
    prefix="/v1/predictions",
    tags=["predictions"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401),
)

HISTORY = 30
"""How many past runs are shown."""


class Predictions(BaseModel):
    """The latest prediction run (null before the first) and earlier ones, newest first.

    Each run wrote `predicted_conversion` (0..1, the chance to convert within
    `horizon_days`) and `preferred_channel` to the profiles; `auc` is the model's quality on
    users held out of its training (0.5 is a coin toss, 1.0 perfect).
    """

    latest: PredictionReport | None
    runs: list[PredictionReport] = Field(default_factory=list)


@router.get("", summary="Conversion model runs and quality")
async def predictions(store: StoreDep) -> Predictions:
    """The latest runs of the nightly prediction schedule (or `journeys predict`)."""
    stored = await run_in_threadpool(store.prediction_runs, HISTORY)
    runs = [PredictionReport.model_validate(run) for run in stored]
    return Predictions(latest=runs[0] if runs else None, runs=runs)

"""Journey simulation: `POST /v1/journeys/{id}/simulate` runs a published version or the
draft for one described user on a time-skipping engine of its own (`simulator`), and answers
with the path, its times and every message rendered. Nothing is sent and nothing is written to
the store: the run has a store of its own, seeded with a copy of the workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from api.auth import MANAGEMENT, Editor
from api.body import JsonModel
from api.deps import StoreDep
from api.errors import ApiError, error_responses
from api.journeys import JourneyId, publish_problems
from journeys.errors import ConfigurationError, InvalidJourney, NotFound
from journeys.model import Journey
from journeys.simulation import SimulationRequest, SimulationResult
from journeys.store import Store
from simulator import SimulationFailed, Workspace, simulate

router = APIRouter(
    prefix="/v1/journeys",
    tags=["journeys"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401, 404, 422),
)


def version_to_run(store: Store, journey_id: str, version: int | str) -> tuple[Journey, int]:
    """The journey document to simulate and the version number its run carries: a published
    version as it is, or the draft (validated as publishing would, and numbered as the next
    version). Raises NotFound, or InvalidJourney for a draft that could not be published."""
    record = store.get_journey(journey_id)
    if record is None:
        raise NotFound(f"no journey '{journey_id}'")
    if version == "draft":
        problems = publish_problems(store, record.draft)
        if problems:
            raise InvalidJourney(problems)
        return Journey.model_validate(record.draft), (record.version or 0) + 1
    assert isinstance(version, int)
    stored = store.get_version(journey_id, version)
    if stored is None:
        raise NotFound(f"journey '{journey_id}' has no version {version}")
    return Journey.model_validate(stored.definition), version


@router.post(
    "/{journey_id}/simulate",
    summary="Simulate a journey for one user",
    responses=error_responses(503),
)
async def simulate_journey(
    who: Editor,
    journey_id: JourneyId,
    body: Annotated[SimulationRequest, Depends(JsonModel(SimulationRequest))],
    store: StoreDep,
) -> SimulationResult:
    """Run the version (or the draft, 422 with its problems when it is invalid) for the
    described user, deliver the scripted events at their offsets after entry and follow the
    user up to the horizon (at most 365 days), skipping time: the answer comes in about a
    second whatever the journey's waits. Scripted events beyond the horizon are listed in
    `ignored_events`. Sends nothing and stores nothing."""
    journey, version = await run_in_threadpool(version_to_run, store, journey_id, body.version)
    workspace = await run_in_threadpool(Workspace.of, store, journey)
    try:
        return await simulate(journey, version, body, workspace)
    except ConfigurationError as error:  # no test server installed
        raise ApiError(503, "unavailable", str(error)) from None
    except SimulationFailed as error:
        raise ApiError(503, "simulation_failed", str(error)) from None

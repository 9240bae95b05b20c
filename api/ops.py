"""Operations: health and Prometheus metrics, without credentials."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep
from api.errors import ApiError, error_responses

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """The API is up and its store answers."""

    status: Literal["ok"] = "ok"
    store: Literal["ok"] = "ok"


@router.get("/healthz", summary="Health", responses=error_responses(503))
async def healthz(state: StateDep) -> Health:
    """200 when the store answers, else 503."""
    try:
        await run_in_threadpool(state.store.ping)
    except Exception as error:
        raise ApiError(503, "store_unavailable", f"the store does not answer: {error}") from None
    return Health()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(state: StateDep) -> Response:
    """Every metric of the app's registry, in the Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

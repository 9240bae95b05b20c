"""Broadcasts: one message to every member of a segment, sent by its own workflow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import MANAGEMENT, Publisher
from api.body import JsonModel
from api.deps import RoutingDep, StoreDep
from api.errors import ApiError, error_responses, problems_error
from journeys.broadcasts import (
    BROADCAST_NODE,
    FINAL_STATUSES,
    Broadcast,
    BroadcastStatus,
    broadcast_workflow_id,
)
from journeys.errors import Conflict, NotFound
from journeys.model import SLUG_PATTERN
from journeys.store import BroadcastRecord, Store, utcnow
from journeys.validation import Problem, message_problems

router = APIRouter(
    prefix="/v1/broadcasts",
    tags=["broadcasts"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401, 404, 422),
)

BroadcastId = Annotated[str, Path(pattern=SLUG_PATTERN, description="a slug")]

AT_MOST_AHEAD = timedelta(days=366)
"""How far ahead `at` may be: a year and a day; further is taken for a typo (a wrong year)."""
AT_MOST_PAST = timedelta(hours=1)
"""How long ago `at` may be (it is then sent at once): a form filled in slowly, or a clock a
little behind; earlier is taken for a mistake rather than sent now."""


class BroadcastOut(BaseModel):
    """A broadcast as asked, its status and its progress: members taken from the segment so
    far (`targeted`) and their messages by outcome (`pending`: not sent yet, e.g. held by a
    rate limit or the member's quiet hours)."""

    id: str
    segment: str
    message: dict[str, Any]
    at: datetime | None
    rate: str | None
    quiet_hours: dict[str, Any] | None
    status: BroadcastStatus
    targeted: int
    sent: int
    skipped: int
    failed: int
    pending: int
    workflow_id: str = Field(description="the broadcast's Temporal workflow")
    created_at: datetime
    finished_at: datetime | None


def _out(store: Store, record: BroadcastRecord) -> BroadcastOut:
    broadcast = Broadcast.model_validate(record.definition)
    workflow_id = broadcast_workflow_id(record.id)
    counts = store.message_counts(workflow_id).get(BROADCAST_NODE, {})
    status: BroadcastStatus = record.status  # type: ignore[assignment]  # written by us only
    return BroadcastOut(
        id=record.id,
        segment=broadcast.segment,
        message=broadcast.message.model_dump(mode="json", exclude_none=True),
        at=broadcast.at,
        rate=broadcast.rate,
        quiet_hours=None
        if broadcast.quiet_hours is None
        else broadcast.quiet_hours.model_dump(mode="json"),
        status=status,
        targeted=record.targeted,
        sent=counts.get("sent", 0),
        skipped=counts.get("skipped", 0),
        failed=counts.get("failed", 0),
        pending=counts.get("pending", 0) + counts.get("sending", 0),
        workflow_id=workflow_id,
        created_at=record.created_at,
        finished_at=record.finished_at,
    )


def _broadcast(store: Store, broadcast_id: str) -> BroadcastRecord:
    record = store.get_broadcast(broadcast_id)
    if record is None:
        raise NotFound(f"no broadcast '{broadcast_id}'")
    return record


def _problems(store: Store, broadcast: Broadcast) -> list[Problem]:
    problems = _at_problems(broadcast.at, utcnow())
    if store.get_segment(broadcast.segment) is None:
        problems.append(Problem(path="segment", message=f"unknown segment '{broadcast.segment}'"))
    templates = {template.id for template in store.list_templates()}
    return problems + message_problems("message", broadcast.message, templates)


def _at_problems(at: datetime | None, now: datetime) -> list[Problem]:
    if at is not None and at > now + AT_MOST_AHEAD:
        return [Problem(path="at", message="at most 366 days ahead")]
    if at is not None and at < now - AT_MOST_PAST:
        return [Problem(path="at", message="in the past (more than an hour ago)")]
    return []


@router.post(
    "",
    status_code=201,
    summary="Send a broadcast",
    responses=error_responses(400, 409, 503),
)
async def create_broadcast(
    who: Publisher,
    body: Annotated[Broadcast, Depends(JsonModel(Broadcast))],
    store: StoreDep,
    routing: RoutingDep,
) -> BroadcastOut:
    """Send the message to every member of the segment, at `at` (or now), at most `rate`.

    422 for an unknown segment, a message that is not valid (content validated and its
    templates trial-rendered, as in a journey) or an `at` more than 366 days ahead or more
    than an hour ago (within the hour: sent at once); 409 when the id was used before; 503 when
    Temporal cannot be reached (nothing is recorded then: the request may be retried).
    """
    if await run_in_threadpool(store.get_broadcast, body.id) is not None:
        raise Conflict(f"broadcast '{body.id}' exists: a broadcast id is used once")
    problems = await run_in_threadpool(_problems, store, body)
    if problems:
        raise problems_error("validation_error", "the broadcast is invalid", problems)
    # The workflow first: it records the broadcast itself if this request stops before the
    # store does, and a second start with this id fails (two racing requests: one 409).
    if not await routing.start_broadcast(body):
        raise Conflict(f"broadcast '{body.id}' was started before: a broadcast id is used once")
    status = "scheduled" if body.at is not None and body.at > utcnow() else "sending"
    definition = body.model_dump(mode="json", exclude_none=True)
    await run_in_threadpool(store.add_broadcast, body.id, definition, status)
    detail = {"segment": body.segment}
    await run_in_threadpool(store.record_audit, who, "broadcast.created", body.id, detail)
    return await run_in_threadpool(_out, store, _broadcast(store, body.id))


@router.get("", summary="List broadcasts")
def list_broadcasts(store: StoreDep) -> list[BroadcastOut]:
    """Every broadcast with its progress, newest first."""
    return [_out(store, record) for record in store.list_broadcasts()]


@router.get("/{broadcast_id}", summary="A broadcast and its progress")
def get_broadcast(broadcast_id: BroadcastId, store: StoreDep) -> BroadcastOut:
    """The broadcast: status, members targeted so far, messages sent, skipped, failed."""
    return _out(store, _broadcast(store, broadcast_id))


@router.post(
    "/{broadcast_id}/cancel",
    summary="Cancel a broadcast",
    responses=error_responses(409, 503),
)
async def cancel_broadcast(
    who: Publisher, broadcast_id: BroadcastId, store: StoreDep, routing: RoutingDep
) -> BroadcastOut:
    """Stop sending: messages already sent stay sent, members not reached yet get none
    (a batch being handed to providers at that moment still finishes). 409 when the
    broadcast has already ended."""
    record = await run_in_threadpool(_broadcast, store, broadcast_id)
    if record.status in FINAL_STATUSES:
        raise ApiError(409, "conflict", f"broadcast '{broadcast_id}' is {record.status} already")
    # The store first: the sending activities check it before each batch. Recorded then, as
    # the cancel holds from there even if telling the workflow fails (a 503).
    await run_in_threadpool(store.set_broadcast_status, broadcast_id, "cancelled")
    await run_in_threadpool(store.record_audit, who, "broadcast.cancelled", broadcast_id)
    await routing.cancel_broadcast(broadcast_id)
    return await run_in_threadpool(_out, store, _broadcast(store, broadcast_id))

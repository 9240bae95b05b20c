"""Ingest: the Segment HTTP Tracking API (`/v1/track`, `identify`, `page`, `screen`, `batch`)
and `POST /trigger`, all with the write key.

An accepted event is stored (the events table is the routing outbox) and the router is woken;
no request waits for Temporal. Profiles are keyed by `userId`, else `anon:{anonymousId}`.
Engagement events an app reports about a delivery (`Push Notification Opened` with the
`delivery_id` of the push's data, in-app views, clicks and dismissals) are attributed to it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from starlette.concurrency import run_in_threadpool

from api.auth import WRITE_KEY
from api.body import BATCH_LIMIT, EVENT_LIMIT, JsonModel, RawJson, too_large
from api.deps import ROW_ID, RoutingDep, StateDep
from api.errors import ApiError, error_responses, problems_from_errors
from journeys.contracts import EventType
from journeys.engagement import DELIVERY_ID, EVENTS, MACHINE
from journeys.routing import TriggerResult
from journeys.store import NewEvent, Store
from journeys.validation import Problem, format_path

ANONYMOUS_PREFIX = "anon:"
_EVENT_TYPES: dict[str, EventType] = {
    "track": "track",
    "identify": "identify",
    "page": "page",
    "screen": "screen",
}
BATCH_TYPES = (*_EVENT_TYPES, "alias", "group")

router = APIRouter(
    tags=["ingest"],
    dependencies=[WRITE_KEY],
    responses=error_responses(400, 401, 413, 422),
)


def _blank_is_none(value: Any) -> Any:
    # Segment SDKs send null (or "") for an id they do not have, and some send numeric ids.
    if value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


OptionalId = Annotated[
    Annotated[str, Field(min_length=1, max_length=200)] | None, BeforeValidator(_blank_is_none)
]
OptionalName = Annotated[
    Annotated[str, Field(min_length=1, max_length=200)] | None, BeforeValidator(_blank_is_none)
]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_null_is_empty)]


def _in_utc_range(value: datetime | None) -> datetime | None:
    """A time that exists in UTC (0001-01-01T00:00:00+14:00 would be in year 0)."""
    if value is not None and value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once in UTC") from None
    return value


class SegmentMessage(BaseModel):
    """One Segment call. Segment's other fields (`sentAt`, `integrations`, `channel`,
    `version`, `writeKey`…) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    type: str | None = Field(default=None, description="in a batch: the kind of call")
    user_id: OptionalId = Field(default=None, alias="userId")
    anonymous_id: OptionalId = Field(default=None, alias="anonymousId")
    event: OptionalName = Field(default=None, description="track: the event name")
    name: OptionalName = Field(default=None, description="page and screen: their name")
    properties: JsonObject = Field(default_factory=dict)
    traits: JsonObject = Field(default_factory=dict, description="identify")
    timestamp: Annotated[datetime | None, AfterValidator(_in_utc_range)] = Field(
        default=None, description="ISO-8601; default now, UTC"
    )
    message_id: OptionalId = Field(
        default=None, alias="messageId", description="deduplicates; assigned when missing"
    )
    context: JsonObject = Field(default_factory=dict)
    previous_id: OptionalId = Field(default=None, alias="previousId", description="alias")


class SegmentBatch(BaseModel):
    """A batch of Segment calls, stored all or nothing."""

    model_config = ConfigDict(extra="ignore")

    batch: list[SegmentMessage]
    context: JsonObject = Field(default_factory=dict)


class Success(BaseModel):
    """The answer to an accepted call: every event in it is durably stored."""

    success: Literal[True] = True


class TriggerRequest(BaseModel):
    """Start a user in every live journey entered by `trigger_type`."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[str, Field(min_length=1, max_length=200)]
    trigger_type: Annotated[str, Field(min_length=1, max_length=200)]
    content: dict[str, Any] = Field(
        default_factory=dict, description="the journey's entry.* context"
    )


class TriggerResponse(BaseModel):
    """The journeys the trigger named; `started` is false when the user could not enter."""

    journeys: list[TriggerResult]


@dataclass(frozen=True)
class Alias:
    """A Segment alias: the anonymous profile `source` is now `target`."""

    source: str
    target: str


@dataclass(frozen=True)
class Group:
    """A Segment group call: accepted, since SDKs batch it with the rest, and not used."""


Call = NewEvent | Alias | Group


class _Problems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems


def _profile_key(message: SegmentMessage) -> str | None:
    if message.user_id is not None:
        return message.user_id
    if message.anonymous_id is not None:
        return ANONYMOUS_PREFIX + message.anonymous_id
    return None


def _timestamp(message: SegmentMessage, now: datetime) -> datetime:
    if message.timestamp is None:
        return now
    if message.timestamp.tzinfo is None:
        return message.timestamp.replace(tzinfo=UTC)
    return message.timestamp


def parse_call(raw: Any, kind: str | None, at: Sequence[str | int], now: datetime) -> Call:
    """One Segment call as stored; `kind` None means the call's own `type` (a batch item).

    Raises `_Problems` locating every problem below `at`.
    """
    try:
        message = SegmentMessage.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as error:
        raise _Problems(problems_from_errors(error.errors(), format_path(at))) from None

    def problem(field: str, text: str) -> _Problems:
        return _Problems([Problem(path=format_path([*at, field]), message=text)])

    kind = kind or message.type
    if kind is None or kind not in BATCH_TYPES:
        known = ", ".join(BATCH_TYPES)
        what = "required" if kind is None else f"unknown type '{kind}'"
        raise problem("type", f"{what}: use one of {known}")
    if kind == "group":
        return Group()
    if kind == "alias":
        if message.user_id is None or message.previous_id is None:
            raise problem("previousId", "alias needs userId and previousId")
        return Alias(source=ANONYMOUS_PREFIX + message.previous_id, target=message.user_id)
    user_id = _profile_key(message)
    if user_id is None:
        raise problem("userId", "userId or anonymousId is required")
    if kind == "track" and message.event is None:
        raise problem("event", "track needs an event name")
    event_type = _EVENT_TYPES[kind]
    merge_from = None
    if message.user_id is not None and message.anonymous_id is not None:
        # The visitor identified: what they did anonymously becomes the user's.
        merge_from = ANONYMOUS_PREFIX + message.anonymous_id
    return NewEvent(
        message_id=message.message_id or str(uuid.uuid4()),
        user_id=user_id,
        type=event_type,
        name=message.event if kind == "track" else message.name,
        # Identify events keep their traits as properties: see NewEvent.
        properties=message.traits if kind == "identify" else message.properties,
        timestamp=_timestamp(message, now),
        received_at=now,
        traits=message.traits if kind == "identify" else {},
        merge_from=merge_from,
        consent=message.context.get("consent") is True,
    )


def parse_calls(items: list[Any], kind: str | None, at: Sequence[str | int]) -> list[Call]:
    """Every call, or a 400 listing the problems of every call."""
    now = datetime.now(UTC)
    calls: list[Call] = []
    problems: list[Problem] = []
    for index, raw in enumerate(items):
        where = [*at, index] if kind is None else list(at)
        try:
            calls.append(parse_call(raw, kind, where, now))
        except _Problems as error:
            problems += error.problems
    if problems:
        details = [p.model_dump() for p in problems]
        raise ApiError(400, "invalid_event", "the request holds invalid calls", details)
    return calls


def _reported(event: NewEvent) -> tuple[int, str] | None:
    """The delivery an engagement event reported by an app names, and the channel the event
    is about; None for other events."""
    if event.type != "track" or event.name not in EVENTS:
        return None
    value = event.properties.get(DELIVERY_ID)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)  # push data carries strings only
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ROW_ID:
        return value, EVENTS[event.name][0]
    return None


def _attribute(
    store: Store, events: list[NewEvent], ids: set[int]
) -> tuple[list[NewEvent], list[NewEvent]]:
    """The events, each engagement event about a delivery of the same user and channel
    completed with the delivery's attribution (`DeliveryRecord.attribution`), others as sent;
    and the completed ones."""
    deliveries = store.get_deliveries(ids)
    events = list(events)
    attributed = []
    for index, event in enumerate(events):
        reported = _reported(event)
        if reported is None:
            continue
        delivery = deliveries.get(reported[0])
        if delivery is None or (delivery.user_id, delivery.channel) != (event.user_id, reported[1]):
            continue
        machine = event.properties.get(MACHINE) is True
        properties = {**event.properties, **delivery.attribution(), MACHINE: machine}
        events[index] = replace(event, properties=properties)
        attributed.append(events[index])
    return events, attributed


async def accept(calls: list[Call], state: StateDep) -> Success:
    """Store the events in one transaction, apply aliases, count them, wake the router.

    Engagement events that name a delivery are attributed to it and mark it opened or
    clicked; only they cost a look-up."""
    events = [call for call in calls if isinstance(call, NewEvent)]
    aliases = [call for call in calls if isinstance(call, Alias)]
    ids = {reported[0] for event in events if (reported := _reported(event)) is not None}
    attributed: list[NewEvent] = []
    if ids:
        events, attributed = await run_in_threadpool(_attribute, state.store, events, ids)
    new = await run_in_threadpool(state.store.append_events, events)
    if attributed:
        # Duplicates too (idempotent): a retry after a failure here completes the marks.
        await run_in_threadpool(state.store.mark_engaged, attributed)
    for alias in aliases:
        # After the events: a failure here answers 500, the SDK retries, the events are
        # duplicates by then and the merge (idempotent) runs again.
        await run_in_threadpool(state.store.merge_profiles, alias.source, alias.target)
    metrics = state.metrics
    for event, stored in zip(events, new, strict=True):
        if stored:
            metrics.events_accepted.labels(event.type).inc()
        else:
            metrics.events_duplicate.inc()
    if aliases:
        metrics.events_accepted.labels("alias").inc(len(aliases))
    if any(new):
        state.wake_routing()
    return Success()


def _single(kind: EventType) -> Any:
    async def endpoint(
        body: Annotated[Any, Depends(RawJson(SegmentMessage, limit=EVENT_LIMIT))],
        state: StateDep,
    ) -> Success:
        return await accept(parse_calls([body], kind, []), state)

    endpoint.__name__ = kind
    endpoint.__doc__ = f"Segment `{kind}`: store one event (200 once stored)."
    return endpoint


for _kind in ("track", "identify", "page", "screen"):
    router.post(f"/v1/{_kind}", summary=f"Segment {_kind}")(_single(_kind))


@router.post("/v1/batch", summary="Segment batch")
async def batch(
    body: Annotated[Any, Depends(RawJson(SegmentBatch, limit=BATCH_LIMIT))],
    state: StateDep,
) -> Success:
    """Segment `batch`: validate every call, then store them all in one transaction."""
    items = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(items, list):
        problem = {"path": "batch", "message": "must be a list of calls"}
        raise ApiError(400, "invalid_event", "'batch' must be a list of calls", [problem])
    oversize = [
        {"path": f"batch[{index}]", "message": f"over {EVENT_LIMIT // 1024} KB"}
        for index, item in enumerate(items)
        if len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()) > EVENT_LIMIT
    ]
    if oversize:
        error = too_large(EVENT_LIMIT, "a call")
        raise ApiError(error.status, error.code, error.message, oversize)
    return await accept(parse_calls(items, None, ["batch"]), state)


@router.post(
    "/trigger",
    status_code=202,
    summary="Start a user in the journeys entered by an API trigger",
    responses=error_responses(404, 503),
)
async def trigger(
    body: Annotated[TriggerRequest, Depends(JsonModel(TriggerRequest, limit=EVENT_LIMIT))],
    routing: RoutingDep,
) -> TriggerResponse:
    """Start the user in every live journey whose entry is `{"api": trigger_type}`.

    404 when no live journey has that trigger; 503 when Temporal is unreachable.
    """
    results = await routing.trigger(body.user_id, body.trigger_type, body.content)
    return TriggerResponse(journeys=results)

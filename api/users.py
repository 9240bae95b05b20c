"""Users: profile, journeys and deliveries, events, timeline (every role reads them); erasure
and export (admin). The inbox is `api.inbox`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import MANAGEMENT, Admin
from api.deps import RoutingDep, StateDep, StoreDep, UserId
from api.errors import error_responses
from journeys.access import audit_user_reference
from journeys.contracts import EnrollmentStatus, EventType, FinalDeliveryStatus
from journeys.errors import NotFound
from journeys.store import DeliveryRecord, Store, UserData
from journeys.timeline import Timeline, parse_place, user_timeline

router = APIRouter(
    prefix="/v1/users",
    tags=["users"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401, 404),
)

DELIVERY_LIMIT = 100
"""Most recent deliveries shown with a user."""


class UserJourney(BaseModel):
    """One run of the user through a journey."""

    journey_id: str
    version: int
    workflow_id: str
    status: EnrollmentStatus
    current_node: str | None
    entered_at: datetime
    ended_at: datetime | None


class Delivery(BaseModel):
    """One message to the user, with its rendered content."""

    id: int
    journey_id: str
    node_id: str
    channel: str
    status: FinalDeliveryStatus | Literal["waiting"] = Field(
        description="waiting: its channel's rate limit holds it back until `waits_until`"
    )
    reason: str | None
    content: dict[str, Any]
    variant: str | None
    locale: str | None = Field(
        default=None,
        description="the language of `content.locales` it was sent in; null: the base content",
    )
    created_at: datetime
    opened_at: datetime | None = Field(description="first opened (machine opens never count)")
    clicked_at: datetime | None = Field(description="first clicked (machine clicks never count)")
    waits_until: datetime | None = Field(
        default=None, description="while waiting: when its turn under the rate limit comes"
    )

    @classmethod
    def shown(cls, record: DeliveryRecord) -> Delivery | None:
        """The delivery as a user's page shows it: with its outcome, or waiting for a rate
        limit; None while it is being sent right now."""
        if record.finished:
            return cls(**record.model_dump(exclude={"waits_until"}))
        if record.waits_until is not None:
            return cls(**{**record.model_dump(), "status": "waiting"})
        return None


class UserDetail(BaseModel):
    """A user: traits, journeys and deliveries, newest first."""

    user_id: str
    traits: dict[str, Any]
    journeys: list[UserJourney]
    deliveries: list[Delivery]


class UserEvent(BaseModel):
    """An ingested event; `routed_at` is null until it reached its journeys."""

    message_id: str
    type: EventType
    name: str | None
    properties: dict[str, Any]
    timestamp: datetime
    received_at: datetime
    routed_at: datetime | None


class Erasure(BaseModel):
    """An accepted erasure: the user's runs told to leave (reason `erased`)."""

    user_id: str
    runs_ended: int = Field(description="runs of the user told to end, reason `erased`")


class ExportedProfile(BaseModel):
    """The user's profile."""

    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ExportedRun(UserJourney):
    """One run of the user, with the nodes it reached and when."""

    variant: str | None
    converted_at: datetime | None
    holdout: str | None
    reached: dict[str, datetime] = Field(description="node id: when the run first reached it")


class ExportedAdmission(BaseModel):
    """A run's admission under its journey's entry limit."""

    journey_id: str
    workflow_id: str
    admitted: bool
    at: datetime


class ExportedDelivery(BaseModel):
    """One message to the user, whatever its state, with its content."""

    id: int
    journey_id: str
    version: int
    node_id: str
    channel: str
    status: str
    reason: str | None
    content: dict[str, Any]
    variant: str | None
    transactional: bool
    provider: str | None
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None


class UserExport(BaseModel):
    """Everything stored about a user."""

    user_id: str
    profile: ExportedProfile | None
    events: list[UserEvent] = Field(description="oldest first")
    journeys: list[ExportedRun] = Field(description="oldest first")
    admissions: list[ExportedAdmission]
    deliveries: list[ExportedDelivery] = Field(
        description="oldest first; in-app messages are the inbox, engagement is in the times"
    )

    @classmethod
    def of(cls, user_id: str, data: UserData) -> UserExport:
        """The export of what the store holds."""
        reached: dict[str, dict[str, datetime]] = {}
        for visit in data.visits:
            reached.setdefault(visit.enrollment_id, {})[visit.node_id] = visit.reached_at
        profile = data.profile
        return cls(
            user_id=user_id,
            profile=None if profile is None else ExportedProfile(**profile.model_dump()),
            events=[UserEvent(**e.model_dump()) for e in data.events],
            journeys=[
                ExportedRun(**e.model_dump(), reached=reached.get(e.id, {}))
                for e in data.enrollments
            ],
            admissions=[ExportedAdmission(**a.model_dump()) for a in data.admissions],
            deliveries=[ExportedDelivery(**d.model_dump()) for d in data.deliveries],
        )


@router.get("/{user_id}", summary="Get a user")
def get_user(user_id: UserId, store: StoreDep) -> UserDetail:
    """The user's traits, journeys and latest deliveries, newest first."""
    profile = store.get_user(user_id)
    enrollments = store.enrollments_for_user(user_id)
    deliveries = store.deliveries_for_user(user_id, limit=DELIVERY_LIMIT)
    if profile is None and not enrollments and not deliveries:
        raise NotFound(f"no user '{user_id}'")
    return UserDetail(
        user_id=user_id,
        traits=profile.traits if profile is not None else {},
        journeys=[UserJourney(**e.model_dump()) for e in enrollments],
        deliveries=[shown for d in deliveries if (shown := Delivery.shown(d)) is not None],
    )


@router.get("/{user_id}/events", summary="A user's events")
def user_events(
    user_id: UserId,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 50,
) -> list[UserEvent]:
    """The user's events, newest first."""
    _known(store, user_id)
    return [UserEvent(**e.model_dump()) for e in store.events_for_user(user_id, limit=limit)]


def _place(text: str | None) -> str | None:
    """Refuse a place that is neither a cursor nor a time with its zone (422, located)."""
    if text is not None:
        parse_place(text)
    return text


PlaceQuery = Annotated[str | None, AfterValidator(_place)]
PLACE_HELP = "a cursor from a page (`next`, `previous`, an entry's `cursor`), or an ISO 8601 time"


@router.get("/{user_id}/timeline", summary="A user's timeline")
def user_timeline_page(
    user_id: UserId,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many entries")] = 200,
    after: Annotated[PlaceQuery, Query(description=f"entries after: {PLACE_HELP}")] = None,
    before: Annotated[
        PlaceQuery, Query(description=f"entries before (the latest ones): {PLACE_HELP}")
    ] = None,
) -> Timeline:
    """What happened to the user and why, oldest first: their events; each run's entry (or
    why it did not enter), the steps it reached, what ended its waits and delays, its messages
    with their outcome and engagement, its conversion and its end. A page holds the first
    `limit` entries after `after` (or from the beginning), or, given only `before`, the last
    ones before it; `next` and `previous` lead on."""
    page = user_timeline(
        store,
        user_id,
        limit=limit,
        after=None if after is None else parse_place(after),
        before=None if before is None else parse_place(before),
    )
    if page is None:
        raise NotFound(f"no user '{user_id}'")
    return page


@router.delete(
    "/{user_id}", status_code=202, summary="Erase a user", responses=error_responses(503)
)
async def erase_user(
    who: Admin, user_id: UserId, state: StateDep, store: StoreDep, routing: RoutingDep
) -> Erasure:
    """Erase everything stored about the user and end their runs (reason `erased`). Their
    later events are dropped until they are identified again with `context.consent: true`.
    Deliveries and enrollments stay, without content or user id, for the statistics.

    The user is suppressed first (so nothing arriving meanwhile recreates them; the audit
    log records the erasure from then on), then their runs are told to leave and given a
    moment to end, then the store is erased. 503 when Temporal is unreachable: the user stays
    suppressed, and erasing again finishes it. The audit log names the user by a keyed hash
    (`journeys.access.audit_user_reference`), never by their id."""
    if not await run_in_threadpool(store.holds_user, user_id):
        raise NotFound(f"no user '{user_id}'")
    await run_in_threadpool(store.suppress, user_id)
    target = audit_user_reference(state.link_secret, user_id)
    await run_in_threadpool(store.record_audit, who, "user.erased", target)
    ended = await routing.erase(user_id)
    await run_in_threadpool(store.erase_user, user_id)
    return Erasure(user_id=user_id, runs_ended=ended)


@router.get("/{user_id}/export", summary="Export a user's data")
def export_user(who: Admin, user_id: UserId, state: StateDep, store: StoreDep) -> UserExport:
    """Everything stored about the user, as one document: profile, events, runs with the nodes
    they reached, entry admissions, and deliveries with their content and engagement (the
    in-app ones are the inbox). The audit log records the export, naming the user as an
    erasure's entry would."""
    data = store.export_user(user_id)
    if data is None:
        raise NotFound(f"no user '{user_id}'")
    store.record_audit(who, "user.exported", audit_user_reference(state.link_secret, user_id))
    return UserExport.of(user_id, data)


def _known(store: Store, user_id: str) -> None:
    if store.get_user(user_id) is None and not store.events_for_user(user_id, limit=1):
        raise NotFound(f"no user '{user_id}'")

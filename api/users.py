"""Users (admin): profile, journeys and deliveries, events. The inbox is `api.inbox`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field

from api.auth import ADMIN
from api.deps import StoreDep, UserId
from api.errors import error_responses
from journeys.contracts import EnrollmentStatus, EventType, FinalDeliveryStatus
from journeys.errors import NotFound
from journeys.store import DeliveryRecord, Store
from journeys.timeline import Timeline, parse_place, user_timeline

router = APIRouter(
    prefix="/v1/users", tags=["users"], dependencies=[ADMIN], responses=error_responses(401, 404)
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


def _known(store: Store, user_id: str) -> None:
    if store.get_user(user_id) is None and not store.events_for_user(user_id, limit=1):
        raise NotFound(f"no user '{user_id}'")

"""What endpoints share: the app's state and `Annotated` dependencies to reach it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from api.live import InboxFeed
from api.metrics import ApiMetrics
from journeys.routing import Routing, RoutingUnavailable
from journeys.settings import Settings
from journeys.store import Store

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """One app's settings, store, metrics, live inbox feed and router (set by the lifespan
    when not given)."""

    settings: Settings
    store: Store
    metrics: ApiMetrics
    feed: InboxFeed
    routing: Routing | None = None

    @property
    def link_secret(self) -> str:
        """The secret that signs unsubscribe and tracked links (`create_app` refuses to start
        without it)."""
        secret = self.settings.unsubscribe_secret
        assert secret is not None
        return secret

    def wake_routing(self) -> None:
        """Tell the router new events are stored.

        Never fails the request: the events are stored, and the router also finds unrouted
        events on its own.
        """
        if self.routing is None:
            return
        try:
            self.routing.wake()
        except Exception:
            log.exception("could not wake the event router; it will find the events later")


async def app_state(request: Request) -> AppState:
    """The state of the app serving the request."""
    state = request.app.state.journeys
    assert isinstance(state, AppState)
    return state


async def _store(state: Annotated[AppState, Depends(app_state)]) -> Store:
    return state.store


async def _routing(state: Annotated[AppState, Depends(app_state)]) -> Routing:
    if state.routing is None:
        raise RoutingUnavailable("the event router is not running")
    return state.routing


async def _metrics(state: Annotated[AppState, Depends(app_state)]) -> ApiMetrics:
    return state.metrics


StateDep = Annotated[AppState, Depends(app_state)]
StoreDep = Annotated[Store, Depends(_store)]
RoutingDep = Annotated[Routing, Depends(_routing)]
MetricsDep = Annotated[ApiMetrics, Depends(_metrics)]

NO_NUL = r"^[^\x00]+$"
"""Pattern for free-text path parameters (user and journey ids): PostgreSQL text cannot hold
U+0000, so an id with one would fail its query with a 500 instead of a 404 or 422."""

ROW_ID = 2**31 - 1
"""The largest value the store's integer columns hold (ids and versions are INTEGER on
PostgreSQL): a larger path parameter cannot even be bound to a query (a 500, not a 404)."""
UserId = Annotated[
    str,
    Path(pattern=NO_NUL, description="the user's id (userId, or anon:{anonymousId})"),
]
"""A user id in a path: the profile key (`userId`, or `anon:{anonymousId}`)."""

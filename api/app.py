"""The FastAPI application: `create_app` wires settings, store, router, errors and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from api import (
    access,
    broadcasts,
    catalog,
    engagement,
    errors,
    inbox,
    ingest,
    journeys,
    mixpanel,
    openapi,
    ops,
    people,
    predictions,
    sdk,
    simulate,
    unsubscribe,
    users,
)
from api.cors import PublicCors
from api.deps import AppState
from api.live import InboxFeed
from api.metrics import ApiMetrics, RequestMetrics
from journeys.routing import Routing, RoutingFactory
from journeys.settings import Component, Settings
from journeys.store import Store

log = logging.getLogger(__name__)

DESCRIPTION = """\
Segment-compatible ingest, API-triggered entry and management of journeys, segments,
templates and settings. Ingest and inbox endpoints take the write key (HTTP Basic username with
an empty password, or `Authorization: Bearer <write key>`; the live inbox stream, opened by
EventSource, takes it as `?key=`); management endpoints take `Authorization: Bearer <token>`:
the admin token (acting as `admin`) or a personal token from `/v1/tokens`, acting under its
role (`viewer`, `editor`, `publisher`, `admin`, each including the ones before it; each
operation says the role it needs, also as `x-required-role`). Tracked links (`/c/{token}`),
the open pixel (`/o/{token}.gif`) and unsubscribe links take no credential: their signed token
is the authority. Errors are `{"error": {"code", "message", "details"}}`.
"""


@asynccontextmanager
async def _running_relay(state: AppState, relay: RoutingFactory) -> AsyncIterator[None]:
    """Run the relay beside the API for the app's lifetime."""
    router = relay(state.settings, state.store, registry=state.metrics.registry)
    task = asyncio.create_task(router.run(), name="journeys-event-router")
    task.add_done_callback(_report_crash)
    state.routing = router
    try:
        yield
    finally:
        state.routing = None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _report_crash(task: asyncio.Task[None]) -> None:
    # Events stay in the outbox, but nothing routes them until a restart: say so loudly.
    if not task.cancelled() and task.exception() is not None:
        log.error("the event router stopped", exc_info=task.exception())


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    routing: Routing | None = None,
    relay: RoutingFactory | None = None,
) -> FastAPI:
    """The API app. Without `store`, it opens `settings.database_url` (and closes it at
    shutdown). Events and triggers go to `routing`; or, with `relay`, the app's lifespan builds
    that relay (with the app's store and metrics registry) and runs it beside the API. With
    neither, events are stored for another process's relay and `/trigger` answers 503.

    Raises `ConfigurationError` when the write key, the admin token or the unsubscribe secret
    is missing.
    """
    settings.require(Component.API)
    own_store = store is None
    opened = store if store is not None else Store.from_settings(settings)
    state = AppState(
        settings=settings,
        store=opened,
        metrics=ApiMetrics(opened),
        feed=InboxFeed(opened),
        routing=routing,
    )
    state.metrics.count_streams(lambda: state.feed.streams)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if own_store:
                stack.callback(state.store.close)
            stack.push_async_callback(state.feed.close)
            if relay is not None:
                await stack.enter_async_context(_running_relay(state, relay))
            yield

    app = FastAPI(title="journeys", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.journeys = state
    app.state.metrics = state.metrics.registry
    errors.install(app)
    app.add_middleware(RequestMetrics, counter=state.metrics.http_requests)
    app.add_middleware(PublicCors)
    routers = (
        ops.router,
        ingest.router,
        mixpanel.router,
        journeys.router,
        simulate.router,
        catalog.router,
        users.router,
        inbox.router,
        unsubscribe.router,
        engagement.router,
        predictions.router,
        broadcasts.router,
        access.router,
        sdk.router,
        people.people_router,
        people.sessions_router,
    )
    for router in routers:
        app.include_router(router)
    openapi.install(app, routers)
    return app

"""`journeys api`: the API with its relay beside it, served by uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from relay.router import build_router

OPEN_STREAMS_GRACE = 5
"""Seconds a stopping API gives open requests (live inbox streams never end on their own)
before it cuts them; browsers then reconnect, to another replica if there is one."""


def api_with_relay(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The API app that runs the relay beside itself, as `journeys api` serves it."""
    return create_app(settings, store=store, relay=build_router)


def run_api(settings: Settings, port: int, *, host: str = "0.0.0.0") -> None:
    """Serve the API on `host:port` until SIGINT or SIGTERM.

    The app is built first, so missing credentials or a bad database URL stop the command
    with `ConfigurationError` before anything listens. `host` defaults to every interface,
    as a container needs; `journeys up` may pass a loopback address.
    """
    app = api_with_relay(settings)
    # log_config=None and log_level=None: uvicorn logs through the JSON logging the command
    # set up, at its level (JOURNEYS_LOG_LEVEL).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=None,
        log_config=None,
        timeout_graceful_shutdown=OPEN_STREAMS_GRACE,
    )

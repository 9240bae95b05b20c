"""Fixtures for API tests: the app over a real SQLite store, with a recording `Routing`."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from journeys.broadcasts import Broadcast
from journeys.routing import TriggerResult
from journeys.settings import Settings
from journeys.store import Store
from tests.api.helpers import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY, ApiClient


@dataclass
class RecordingRouting:
    """A `Routing` that records what the API asks and answers as told.

    The real router is tested end to end elsewhere; here only the API's side of the contract
    matters: when it wakes the router, and what it passes and answers for trigger, archive and
    broadcasts, erase.
    """

    wakes: int = 0
    wake_error: Exception | None = None
    triggers: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    trigger_answer: list[TriggerResult] | Exception = field(default_factory=list)
    archive_answer: int | Exception = 0
    broadcasts: list[Broadcast] = field(default_factory=list)
    broadcast_answer: bool | Exception = True
    cancelled: list[str] = field(default_factory=list)
    erase_answer: int | Exception = 0

    def wake(self) -> None:
        """Count the wake-up (then raise `wake_error`, if set)."""
        self.wakes += 1
        if self.wake_error is not None:
            raise self.wake_error

    async def trigger(
        self, user_id: str, trigger_type: str, content: dict[str, Any]
    ) -> list[TriggerResult]:
        """Record the trigger; answer or raise `trigger_answer`."""
        self.triggers.append((user_id, trigger_type, content))
        if isinstance(self.trigger_answer, Exception):
            raise self.trigger_answer
        return self.trigger_answer

    async def archive(self, journey_id: str) -> int:
        """Record the archive; answer or raise `archive_answer`."""
        self.archived.append(journey_id)
        if isinstance(self.archive_answer, Exception):
            raise self.archive_answer
        return self.archive_answer

    async def start_broadcast(self, broadcast: Broadcast) -> bool:
        """Record the broadcast; answer or raise `broadcast_answer`."""
        self.broadcasts.append(broadcast)
        if isinstance(self.broadcast_answer, Exception):
            raise self.broadcast_answer
        return self.broadcast_answer

    async def cancel_broadcast(self, broadcast_id: str) -> None:
        """Record the cancel."""
        self.cancelled.append(broadcast_id)

    async def erase(self, user_id: str) -> int:
        """Record the erasure; answer or raise `erase_answer`."""
        self.erased.append(user_id)
        if isinstance(self.erase_answer, Exception):
            raise self.erase_answer
        return self.erase_answer


@pytest.fixture
def settings() -> Settings:
    """Settings with test credentials."""
    return Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )


@pytest.fixture
def routing() -> RecordingRouting:
    """A fresh recording router."""
    return RecordingRouting()


@pytest.fixture
def app(settings: Settings, store: Store, routing: RecordingRouting) -> FastAPI:
    """The API over the test's store and recording router."""
    return create_app(settings, store=store, routing=routing)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[ApiClient]:
    """An HTTP client of the app, in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeys.test") as client:
        yield ApiClient(client)


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app (with its lifespan) served by uvicorn on a loopback port; its base URL."""
    with serving(app) as url:
        yield url


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve the app (with its lifespan) by uvicorn on a loopback port for the block; its
    base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    # Listening before the server starts: the first connection waits in the backlog rather
    # than racing the server's start-up.
    listener.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()

"""Fixtures for designer tests: the real API over a real store, on loopback, and the designer
pointed at it through its environment."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY

APP = Path(__file__).parents[2] / "journey_designer" / "app.py"
TEMPORAL_UI = "http://127.0.0.1:8233"


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveApi:
    """The API serving on loopback, with the store and router behind it."""

    url: str
    store: Store
    routing: RecordingRouting


@pytest.fixture
def live_api(store: Store) -> Iterator[LiveApi]:
    """The real API app under uvicorn on 127.0.0.1, in a background thread."""
    settings = Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )
    routing = RecordingRouting()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store=store, routing=routing),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="designer-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the API stopped while starting"
        assert time.monotonic() < deadline, "the API did not start in 10 s"
        time.sleep(0.01)
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", store, routing)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api(live_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> LiveApi:
    """The live API, with the designer's environment pointing at it."""
    monkeypatch.setenv("JOURNEYS_API_URL", live_api.url)
    monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("JOURNEYS_TEMPORAL_UI_URL", TEMPORAL_UI)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    return live_api

"""Fixtures of the reliability suite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.reliability.app import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database for processes the test starts: PostgreSQL when the tests have one
    (as in production), else a SQLite file."""
    if os.environ.get("JOURNEYS_TEST_POSTGRES_URL"):
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture
def app(store: Store) -> FastAPI:
    """The API over the test's store; a recording router stands in for Temporal."""
    settings = Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )
    return create_app(settings, store=store, routing=RecordingRouting())


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the app (an exception inside the app is a 500, as served)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeys.test") as client:
        yield client

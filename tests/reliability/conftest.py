"""Fixtures of the reliability suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.reliability.app import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY


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

"""The whole system for end-to-end tests: the API with its relay under uvicorn on loopback, and
a worker with real channels, on a real Temporal server (the session's dev server)::

    async with running_system(dev_server, store, executor, smtp_url=smtp.url) as system:
        await system.publish(document)
        await system.http.post("/v1/track", json=..., headers=system.write_auth)

`temporal` is the session's dev server or a client of another Temporal server. Each system has
its own task queue and API port; extra keyword arguments are `Settings` fields (channels,
secrets, the task queue), over the test credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.channels import build_channels, closing_channels
from cli.serve import OPEN_STREAMS_GRACE, api_with_relay
from journeys.contracts import JourneyOutcome, workflow_id
from journeys.settings import Settings
from journeys.store import Store
from journeys.unsubscribe import Links
from tests.receivers import free_port
from worker.main import build_worker

WRITE_KEY = "test-write-key"
ADMIN_TOKEN = "test-admin-token"
UNSUBSCRIBE_SECRET = "test-unsubscribe-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}


@dataclass
class System:
    """A running system, its settings, and an HTTP client of its API."""

    api_url: str
    settings: Settings
    temporal: Client
    store: Store
    http: httpx.AsyncClient

    async def publish(self, document: dict[str, Any]) -> int:
        """Save and publish a journey document; its published version."""
        journey_id = document["id"]
        saved = await self.http.put(f"/v1/journeys/{journey_id}", json=document, headers=ADMIN)
        assert saved.status_code == 200, saved.text
        published = await self.http.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)
        assert published.status_code == 200, published.text
        version: int = published.json()["version"]
        return version

    async def outcome(self, journey_id: str, user_id: str) -> JourneyOutcome:
        """The run's outcome, once the router has started it and it has ended (30 s at most)."""
        handle = self.temporal.get_workflow_handle(
            workflow_id(journey_id, user_id), result_type=JourneyOutcome
        )
        async with asyncio.timeout(30):
            while True:
                try:
                    outcome: JourneyOutcome = await handle.result()
                    return outcome
                except Exception as error:  # not started yet: routing is asynchronous
                    if "not found" not in str(error).lower():
                        raise
                await asyncio.sleep(0.05)

    async def user(self, user_id: str) -> dict[str, Any]:
        """`GET /v1/users/{user_id}`: traits, journeys and deliveries."""
        response = await self.http.get(f"/v1/users/{user_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        profile: dict[str, Any] = response.json()
        return profile


@asynccontextmanager
async def running_system(
    temporal: WorkflowEnvironment | Client,
    store: Store,
    executor: ThreadPoolExecutor,
    *,
    worker: bool = True,
    **settings: Any,
) -> AsyncIterator[System]:
    """Serve the API (with its relay) and run a worker until the block ends (without
    `worker`, the test runs its own, e.g. worker processes it kills)."""
    client = temporal.client if isinstance(temporal, WorkflowEnvironment) else temporal
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    configured = Settings(
        **{
            "temporal_address": client.service_client.config.target_host,
            "task_queue": f"e2e-{uuid.uuid4().hex[:8]}",
            "write_key": WRITE_KEY,
            "admin_token": ADMIN_TOKEN,
            "unsubscribe_secret": UNSUBSCRIBE_SECRET,
            "public_url": api_url,
            **settings,
        }
    )
    assert configured.unsubscribe_secret is not None
    server = uvicorn.Server(
        uvicorn.Config(
            api_with_relay(configured, store=store), host="127.0.0.1", port=port,
            log_level="warning", timeout_graceful_shutdown=OPEN_STREAMS_GRACE,
        )
    )  # fmt: skip
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), "the API stopped while starting"
                await asyncio.sleep(0.02)
        links = Links(configured.links_base_url, configured.unsubscribe_secret)
        with closing_channels(build_channels(configured)) as channels:
            async with (
                build_worker(
                    client, store, configured.task_queue, executor,
                    channels=channels, links=links,
                ) if worker else contextlib.nullcontext(),
                httpx.AsyncClient(base_url=api_url, follow_redirects=False) as http,
            ):  # fmt: skip
                yield System(api_url, configured, client, store, http)
    finally:
        server.should_exit = True
        await serving

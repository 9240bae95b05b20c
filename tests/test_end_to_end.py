"""The whole system over real HTTP: the API on loopback, its event router, a worker and a real
Temporal dev server; events sent with the official Segment Python library."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from segment.analytics.client import Client as SegmentClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.serve import api_with_relay
from cli.up import search_attribute_flags
from journeys.contracts import JourneyOutcome, workflow_id
from journeys.settings import Settings
from journeys.store import Store
from tests.conftest import installed_binary
from worker.main import build_worker

WRITE_KEY = "test-write-key"
ADMIN_TOKEN = "test-admin-token"
UNSUBSCRIBE_SECRET = "test-unsubscribe-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cart_journey(
    journey_id: str, body: str = "Your {{ entry.product }} is waiting"
) -> dict[str, Any]:
    """An abandoned cart with second-scale durations."""
    return {
        "id": journey_id,
        "name": "Abandoned cart",
        "entry": {
            "event": "Added to Cart",
            "where": {"field": "event.total", "op": "gt", "value": 0},
        },
        "exit": [{"event": "Order Completed"}],
        "goal": {"event": "Order Completed", "within": "1h"},
        "start": "wait_checkout",
        "nodes": {
            "wait_checkout": {
                "type": "wait_for_event",
                "timeout": "3s",
                "on_timeout": "nudge",
                "paths": [{"event": "Checkout Started", "next": None}],
            },
            "nudge": {
                "type": "message",
                "channel": "email",
                "content": {"subject": "Hi {{ user.first_name }}", "body": body},
            },
        },
    }


@dataclass
class Stack:
    """A running system and ways to talk to it."""

    api_url: str
    temporal: Client
    store: Store
    http: httpx.AsyncClient
    segment: SegmentClient

    async def publish(self, document: dict[str, Any]) -> int:
        journey_id = document["id"]
        saved = await self.http.put(f"/v1/journeys/{journey_id}", json=document, headers=ADMIN)
        assert saved.status_code == 200, saved.text
        published = await self.http.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)
        assert published.status_code == 200, published.text
        version: int = published.json()["version"]
        return version

    async def outcome(self, journey_id: str, user_id: str) -> JourneyOutcome:
        """The run's outcome, once the router has started it."""
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
        response = await self.http.get(f"/v1/users/{user_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        profile: dict[str, Any] = response.json()
        return profile


@pytest.fixture
async def stack(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> AsyncIterator[Stack]:
    settings = Settings(
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=f"e2e-{uuid.uuid4().hex[:8]}",
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        unsubscribe_secret=UNSUBSCRIBE_SECRET,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            api_with_relay(settings, store=store), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.02)
    api_url = f"http://127.0.0.1:{port}"
    segment = SegmentClient(WRITE_KEY, host=api_url, sync_mode=True, max_retries=1)
    try:
        async with (
            build_worker(dev_server.client, store, settings.task_queue, executor),
            httpx.AsyncClient(base_url=api_url) as http,
        ):
            yield Stack(api_url, dev_server.client, store, http, segment)
    finally:
        server.should_exit = True
        await serving


Call = tuple[str, str, dict[str, Any]]


def identify(user_id: str, **traits: Any) -> Call:
    return ("identify", user_id, {"traits": traits})


def track(user_id: str, event: str, **properties: Any) -> Call:
    return ("track", user_id, {"event": event, "properties": properties})


async def send(stack: Stack, *calls: Call) -> None:
    """Send events through the Segment library (its synchronous mode, off the event loop)."""

    def run() -> None:
        for kind, user_id, fields in calls:
            getattr(stack.segment, kind)(user_id, **fields)

    await asyncio.to_thread(run)


async def test_abandoned_cart_through_the_segment_library(stack: Stack) -> None:
    journey = f"cart-{uuid.uuid4().hex[:6]}"
    assert await stack.publish(cart_journey(journey)) == 1
    await send(
        stack,
        identify("abandoner", email="a@example.com", first_name="Ada"),
        identify("buyer", email="b@example.com", first_name="Bo"),
        identify("converter", email="c@example.com", first_name="Cy"),
        identify("browser", email="d@example.com"),
        track("abandoner", "Added to Cart", total=40, product="lamp"),
        track("buyer", "Added to Cart", total=25, product="desk"),
        track("converter", "Added to Cart", total=90, product="sofa"),
        track("browser", "Added to Cart", total=0),
        track("buyer", "Checkout Started"),
        track("converter", "Order Completed", total=90),
    )

    assert (await stack.outcome(journey, "abandoner")).path == ["wait_checkout", "nudge"]
    assert (await stack.outcome(journey, "buyer")).path == ["wait_checkout"]
    converted = await stack.outcome(journey, "converter")
    assert converted.status == "exited"

    [delivery] = (await stack.user("abandoner"))["deliveries"]
    assert delivery["channel"] == "email"
    assert delivery["content"] == {"subject": "Hi Ada", "body": "Your lamp is waiting"}
    for quiet in ("buyer", "converter", "browser"):
        assert (await stack.user(quiet))["deliveries"] == []
    assert (await stack.user("browser"))["journeys"] == []  # where total > 0 kept them out
    stats = (await stack.http.get(f"/v1/journeys/{journey}/stats", headers=ADMIN)).json()
    assert (stats["entered"], stats["converted"], stats["exited"]) == (3, 1, 1)
    assert stats["messages"]["nudge"] == {
        "sent": 1, "skipped": 0, "failed": 0, "opened": 0, "clicked": 0, "open_rate": 0.0,
        "click_rate": 0.0,
    }  # fmt: skip

    listed = subprocess.run(
        [
            installed_binary("temporal"), "workflow", "list",
            "--address", stack.temporal.service_client.config.target_host,
            "--query", f"JourneyId='{journey}'", "--output", "json",
        ],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    found = {run["execution"]["workflowId"] for run in json.loads(listed.stdout)}
    assert found == {workflow_id(journey, u) for u in ("abandoner", "buyer", "converter")}


async def test_trigger_content_reaches_the_rendered_message(stack: Stack) -> None:
    journey = f"api-{uuid.uuid4().hex[:6]}"
    document = {
        "id": journey,
        "name": "Triggered",
        "entry": {"api": f"cart_abandonment_{journey}"},
        "start": "offer",
        "nodes": {
            "offer": {
                "type": "message",
                "channel": "in_app",
                "content": {"body": "{{ entry.message }} Use {{ entry.discount_code }}."},
            }
        },
    }
    await stack.publish(document)
    response = await stack.http.post(
        "/trigger",
        json={
            "user_id": "12345",
            "trigger_type": f"cart_abandonment_{journey}",
            "content": {"discount_code": "SAVE20", "message": "Still thinking?"},
        },
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "journeys": [
            {"journey_id": journey, "workflow_id": workflow_id(journey, "12345"), "started": True}
        ]
    }
    await stack.outcome(journey, "12345")
    [delivery] = (await stack.user("12345"))["deliveries"]
    assert delivery["content"]["body"] == "Still thinking? Use SAVE20."


async def test_publish_while_running_keeps_users_on_their_version(stack: Stack) -> None:
    journey = f"cart-{uuid.uuid4().hex[:6]}"
    await stack.publish(cart_journey(journey, body="v1 copy"))
    await send(
        stack,
        identify("first", email="f@example.com"),
        track("first", "Added to Cart", total=5),
    )
    await asyncio.sleep(0.5)  # let the router start the first user on v1 (real time)
    assert await stack.publish(cart_journey(journey, body="v2 copy")) == 2
    await send(
        stack,
        identify("second", email="s@example.com"),
        track("second", "Added to Cart", total=5),
    )
    await stack.outcome(journey, "first")
    await stack.outcome(journey, "second")
    first, second = await stack.user("first"), await stack.user("second")
    assert [j["version"] for j in first["journeys"]] == [1]
    assert [j["version"] for j in second["journeys"]] == [2]
    assert first["deliveries"][0]["content"]["body"] == "v1 copy"
    assert second["deliveries"][0]["content"]["body"] == "v2 copy"


async def test_events_accepted_while_temporal_is_down_reach_their_journeys(
    tmp_path: Path, store: Store, executor: ThreadPoolExecutor
) -> None:
    temporal_port = free_port()
    database = tmp_path / "temporal.db"

    def start_temporal() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                installed_binary("temporal"), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(temporal_port),
                "--db-filename", str(database), *search_attribute_flags(),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def connected() -> Client:
        async with asyncio.timeout(30):
            while True:
                try:
                    return await Client.connect(
                        f"127.0.0.1:{temporal_port}", data_converter=pydantic_data_converter
                    )
                except RuntimeError:
                    await asyncio.sleep(0.1)

    temporal = start_temporal()
    try:
        client = await connected()
        settings = Settings(
            temporal_address=f"127.0.0.1:{temporal_port}",
            task_queue="durability",
            write_key=WRITE_KEY,
            admin_token=ADMIN_TOKEN,
            unsubscribe_secret=UNSUBSCRIBE_SECRET,
        )
        app = api_with_relay(settings, store=store)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    await asyncio.sleep(0.02)
            api_url = f"http://127.0.0.1:{port}"
            async with (
                build_worker(client, store, settings.task_queue, executor),
                httpx.AsyncClient(base_url=api_url) as http,
            ):
                stack = Stack(
                    api_url,
                    client,
                    store,
                    http,
                    SegmentClient(WRITE_KEY, host=api_url, sync_mode=True),
                )
                journey = "durable-cart"
                await stack.publish(cart_journey(journey))

                temporal.terminate()
                temporal.wait(timeout=30)
                users = [f"user-{i}" for i in range(10)]
                await send(
                    stack,
                    *[identify(u, email=f"{u}@example.com") for u in users],
                    *[track(u, "Added to Cart", total=9) for u in users],
                )
                assert len(store.unrouted_events()) == 2 * len(users)  # accepted, waiting

                temporal = start_temporal()
                for user in users:
                    assert (await stack.outcome(journey, user)).path == ["wait_checkout", "nudge"]
                    assert len((await stack.user(user))["deliveries"]) == 1
                assert store.unrouted_events() == []
        finally:
            server.should_exit = True
            await serving
    finally:
        temporal.terminate()
        temporal.wait(timeout=30)

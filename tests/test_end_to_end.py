"""The whole system over real HTTP: the API on loopback, its event router, a worker and a real
Temporal dev server; events sent with the official Segment Python library."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from segment.analytics.client import Client as SegmentClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.up import search_attribute_flags
from journeys.contracts import workflow_id
from journeys.store import Store
from tests.conftest import installed_binary
from tests.receivers import free_port
from tests.system import ADMIN, WRITE_KEY, System, running_system


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
    """A running system and the Segment library pointed at it."""

    system: System
    segment: SegmentClient


@pytest.fixture
async def stack(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> AsyncIterator[Stack]:
    async with running_system(dev_server, store, executor) as system:
        yield Stack(
            system, SegmentClient(WRITE_KEY, host=system.api_url, sync_mode=True, max_retries=1)
        )


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
    assert await stack.system.publish(cart_journey(journey)) == 1
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

    assert (await stack.system.outcome(journey, "abandoner")).path == ["wait_checkout", "nudge"]
    assert (await stack.system.outcome(journey, "buyer")).path == ["wait_checkout"]
    converted = await stack.system.outcome(journey, "converter")
    assert converted.status == "exited"

    [delivery] = (await stack.system.user("abandoner"))["deliveries"]
    assert delivery["channel"] == "email"
    assert delivery["content"] == {"subject": "Hi Ada", "body": "Your lamp is waiting"}
    for quiet in ("buyer", "converter", "browser"):
        assert (await stack.system.user(quiet))["deliveries"] == []
    assert (await stack.system.user("browser"))["journeys"] == []  # where total > 0 kept them out
    stats = (await stack.system.http.get(f"/v1/journeys/{journey}/stats", headers=ADMIN)).json()
    assert (stats["entered"], stats["converted"], stats["exited"]) == (3, 1, 1)
    assert stats["messages"]["nudge"] == {
        "sent": 1, "skipped": 0, "failed": 0, "opened": 0, "clicked": 0, "open_rate": 0.0,
        "click_rate": 0.0,
    }  # fmt: skip

    listed = subprocess.run(
        [
            installed_binary("temporal"), "workflow", "list",
            "--address", stack.system.temporal.service_client.config.target_host,
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
    await stack.system.publish(document)
    response = await stack.system.http.post(
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
    await stack.system.outcome(journey, "12345")
    [delivery] = (await stack.system.user("12345"))["deliveries"]
    assert delivery["content"]["body"] == "Still thinking? Use SAVE20."


async def test_publish_while_running_keeps_users_on_their_version(stack: Stack) -> None:
    journey = f"cart-{uuid.uuid4().hex[:6]}"
    await stack.system.publish(cart_journey(journey, body="v1 copy"))
    await send(
        stack,
        identify("first", email="f@example.com"),
        track("first", "Added to Cart", total=5),
    )
    await asyncio.sleep(0.5)  # let the router start the first user on v1 (real time)
    assert await stack.system.publish(cart_journey(journey, body="v2 copy")) == 2
    await send(
        stack,
        identify("second", email="s@example.com"),
        track("second", "Added to Cart", total=5),
    )
    await stack.system.outcome(journey, "first")
    await stack.system.outcome(journey, "second")
    first, second = await stack.system.user("first"), await stack.system.user("second")
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
        async with running_system(client, store, executor, task_queue="durability") as system:
            stack = Stack(system, SegmentClient(WRITE_KEY, host=system.api_url, sync_mode=True))
            journey = "durable-cart"
            await stack.system.publish(cart_journey(journey))

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
                assert (await stack.system.outcome(journey, user)).path == [
                    "wait_checkout",
                    "nudge",
                ]
                assert len((await stack.system.user(user))["deliveries"]) == 1
            assert store.unrouted_events() == []
    finally:
        temporal.terminate()
        temporal.wait(timeout=30)

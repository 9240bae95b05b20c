"""A user's timeline through the whole system: events sent over HTTP, routed by the API's relay
to a run on the real Temporal dev server, then `GET /v1/users/{id}/timeline` tells the story."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.api.test_timeline import CAP, capped_and_converted, cart
from tests.system import ADMIN, WRITE, System, running_system

CART = cart("cart-e2e", checkout="2s", goal="1h")


async def post(system: System, path: str, body: dict[str, Any]) -> None:
    """An ingest call, accepted."""
    response = await system.http.post(path, json=body, headers=WRITE)
    assert response.status_code == 200, response.text


async def waiting_at(system: System, node_id: str) -> None:
    """Wait (real time, 20 s at most) until the user's run waits at `node_id`."""
    async with asyncio.timeout(20):
        while True:
            journeys = (await system.user("ada"))["journeys"]
            if journeys and journeys[0]["current_node"] == node_id:
                return
            await asyncio.sleep(0.1)


async def test_the_timeline_of_a_user_who_entered_waited_was_capped_and_converted(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    async with running_system(dev_server, store, executor) as system:
        assert (await system.http.put("/v1/settings", json=CAP, headers=ADMIN)).is_success
        await system.publish(CART)
        await post(system, "/v1/identify", {"userId": "ada", "traits": {"email": "a@b.example"}})
        await post(system, "/v1/track", {"userId": "ada", "event": "Added to Cart"})
        await waiting_at(system, "wait_order")
        await post(system, "/v1/track", {"userId": "ada", "event": "Order Completed"})
        assert (await system.outcome("cart-e2e", "ada")).status == "completed"

        response = await system.http.get("/v1/users/ada/timeline", headers=ADMIN)
        assert response.status_code == 200, response.text
        entries = response.json()["entries"]
    assert [(e["kind"], e["what"], e["why"]) for e in entries] == capped_and_converted(
        checkout="2s", goal="1h"
    )
    assert {e["workflow_id"] for e in entries if e["kind"] != "event"} == {"journey:cart-e2e:ada"}

"""An entry limit is exact across API replicas and workers: 1,000 users race for 100
places through two `journeys api` processes (each with its router) and two `journeys worker`
processes, on one PostgreSQL store and one Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.relay.test_replicas import api_replicas, journeys_processes
from tests.system import ADMIN, WRITE

USERS = 1_000
PLACES = 100
BATCH = 50
"""Events per `/v1/batch` call."""


@pytest.mark.store_backends("postgresql")
async def test_a_thousand_users_race_for_a_hundred_places(
    postgres_url: str,
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
) -> None:
    journey_id = f"limited-{uuid.uuid4().hex[:6]}"
    document = {
        "id": journey_id,
        "name": "Limited offer",
        "entry": {"event": "Coupon Requested", "limit": {"count": PLACES, "per": "1d"}},
        "start": "done",
        "nodes": {"done": {"type": "exit"}},
    }
    store = Store(postgres_url)
    try:
        with (
            api_replicas(2, postgres_url, dev_server, tmp_path, task_queue) as replicas,
            journeys_processes(
                ["worker"],
                2,
                postgres_url=postgres_url,
                dev_server=dev_server,
                tmp_path=tmp_path,
                task_queue=task_queue,
            ),
        ):
            async with (
                httpx.AsyncClient(base_url=replicas[0].url) as first,
                httpx.AsyncClient(base_url=replicas[1].url) as second,
            ):
                saved = await first.put(f"/v1/journeys/{journey_id}", json=document, headers=ADMIN)
                assert saved.status_code == 200, saved.text
                published = await first.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)
                assert published.status_code == 200, published.text

                async def request(n: int) -> None:
                    users = range(n * BATCH, (n + 1) * BATCH)
                    batch = [
                        {"type": "track", "userId": f"racer-{u}", "event": "Coupon Requested"}
                        for u in users
                    ]
                    http = (first, second)[n % 2]  # alternate batches between the replicas
                    response = await http.post("/v1/batch", json={"batch": batch}, headers=WRITE)
                    assert response.status_code == 200, response.text

                await asyncio.gather(*map(request, range(USERS // BATCH)))

                # Minutes on a busy two-core machine: 1,000 runs start, a few a second.
                async with asyncio.timeout(600):
                    while True:
                        counts = store.journey_counts(journey_id)
                        if counts["entered"] + counts["limited"] >= USERS:
                            break
                        await asyncio.sleep(0.5)
                await asyncio.sleep(1)  # a place taken twice would show up now
                counts = store.journey_counts(journey_id)
                assert (counts["entered"], counts["limited"]) == (PLACES, USERS - PLACES)

                stats = await second.get(f"/v1/journeys/{journey_id}/stats", headers=ADMIN)
                assert (stats.json()["entered"], stats.json()["limited"]) == (100, 900)
    finally:
        store.close()

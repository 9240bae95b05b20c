"""Several `journeys worker` processes on one task queue share a population's runs, and every
message still goes out exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.receivers import HttpReceiver, Reply, free_port
from tests.reliability.helpers import WorkerProcess
from tests.workflows.helpers import make_journey, start

USERS = 40


@pytest.fixture
def webhooks() -> Iterator[HttpReceiver]:
    """The webhook target: a real HTTP server on loopback."""
    with HttpReceiver(Reply.json({"ok": True})) as receiver:
        yield receiver


async def stopped_cleanly(worker: WorkerProcess) -> None:
    """Stop the worker with SIGTERM, if it was started: it must then exit 0."""
    if worker.process is not None:
        assert await worker.stop() == 0, worker.tail()


async def test_two_workers_share_a_population_and_deliver_each_message_once(
    dev_server: WorkflowEnvironment, database_url: str, webhooks: HttpReceiver, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 50
    task_queue = f"scale-{uuid.uuid4().hex[:8]}"
    store = Store(database_url)
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_UNSUBSCRIBE_SECRET": "scale-out-test",
        "JOURNEYS_WEBHOOK_ALLOW": "127.0.0.1",
        "JOURNEYS_WORKER_MAX_CONCURRENT_ACTIVITIES": "8",
        "JOURNEYS_WORKER_CACHE_SIZE": "50",
    }
    journey = make_journey(
        "hook",
        {
            "hook": {
                "type": "message",
                "channel": "webhook",
                "content": {"url": f"{webhooks.url}/hook", "body": {"user": "{{ user.id }}"}},
            }
        },
        id="scale-out",
    )
    users = [f"user-{n:02d}" for n in range(USERS)]
    async with AsyncExitStack() as stack:
        workers: list[WorkerProcess] = []
        for name in ("worker-1", "worker-2"):
            metrics = {"JOURNEYS_WORKER_METRICS": f"127.0.0.1:{free_port()}"}
            worker = WorkerProcess(name, {**environment, **metrics}, tmp_path)
            stack.push_async_callback(stopped_cleanly, worker)
            await worker.run(timeout=deadline - time.monotonic())
            workers.append(worker)
        handles = [await start(dev_server, task_queue, journey, user) for user in users]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(handle.result() for handle in handles)),
            timeout=deadline - time.monotonic(),
        )
        assert [outcome.path for outcome in outcomes] == [["hook"]] * USERS

        # Each user's message arrived once: one request per delivery key, one key per user.
        requests = webhooks.requests
        assert len(requests) == USERS
        assert len(webhooks.unique_idempotency_keys()) == USERS
        assert sorted(request.json()["user"] for request in requests) == users
        assert all(
            [d.status for d in store.deliveries_for_user(user)] == ["sent"] for user in users
        )

        # Both processes ran tasks: histories name the worker (pid@host) that started each.
        identities: set[str] = set()
        for handle in handles:
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_task_started_event_attributes"):
                    identities.add(event.workflow_task_started_event_attributes.identity)
                if event.HasField("activity_task_started_event_attributes"):
                    identities.add(event.activity_task_started_event_attributes.identity)
        pids = {int(identity.split("@")[0]) for identity in identities}
        assert pids == {worker.pid for worker in workers}

        # Each serves the SDK's metrics for Prometheus.
        async with httpx.AsyncClient() as http:
            for worker in workers:
                address = worker.environment["JOURNEYS_WORKER_METRICS"]
                scraped = await http.get(f"http://{address}/metrics")
                assert scraped.status_code == 200
                assert f'task_queue="{task_queue}"' in scraped.text
    store.close()

    for worker in workers:
        # Structured logs: every line one JSON object; the tuning came from the environment.
        lines = worker.log.read_text(encoding="utf-8").splitlines()
        logged = [json.loads(line) for line in lines]
        assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logged)
        [polling] = [entry for entry in logged if "polling task queue" in entry["message"]]
        assert "max_concurrent_activities=8" in polling["message"]
        assert "max_cached_workflows=50" in polling["message"]
        assert any("finishing in-flight tasks" in entry["message"] for entry in logged)

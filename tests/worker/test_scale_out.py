"""Several `journeys worker` processes on one task queue share a population's runs, and every
message still goes out exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.conftest import installed_binary
from tests.receivers import HttpReceiver, Reply, free_port
from tests.workflows.helpers import make_journey, start

USERS = 40


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database both workers share: PostgreSQL when the tests have one, else a SQLite
    file (then the workers take turns at its write lock)."""
    if os.environ.get("JOURNEYS_TEST_POSTGRES_URL"):
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture
def webhooks() -> Iterator[HttpReceiver]:
    """The webhook target: a real HTTP server on loopback."""
    with HttpReceiver(Reply.json({"ok": True})) as receiver:
        yield receiver


@dataclass
class WorkerProcess:
    """A running `journeys worker` and where it logs and serves metrics."""

    process: asyncio.subprocess.Process
    log: Path
    metrics_port: int

    def lines(self) -> list[str]:
        """What it has logged so far."""
        return self.log.read_text(encoding="utf-8").splitlines()


@asynccontextmanager
async def worker_process(
    name: str, environment: dict[str, str], folder: Path
) -> AsyncIterator[WorkerProcess]:
    """A worker process, stopped with SIGTERM at the end (it must then exit 0)."""
    log = folder / f"{name}.log"
    port = free_port()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            installed_binary("journeys"),
            "worker",
            env={**environment, "JOURNEYS_WORKER_METRICS": f"127.0.0.1:{port}"},
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    running = WorkerProcess(process, log, port)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        assert code == 0, "\n".join(running.lines()[-20:])


async def until_polling(worker: WorkerProcess, deadline: float) -> None:
    """Wait until the worker says it polls its task queue."""
    while not any("polling task queue" in line for line in worker.lines()):
        assert worker.process.returncode is None, "\n".join(worker.lines()[-20:])
        assert time.monotonic() < deadline, "the worker did not start in time"
        await asyncio.sleep(0.1)


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
        workers = [
            await stack.enter_async_context(worker_process(name, environment, tmp_path))
            for name in ("worker-1", "worker-2")
        ]
        for worker in workers:
            await until_polling(worker, deadline)
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
        assert pids == {worker.process.pid for worker in workers}

        # Each serves the SDK's metrics for Prometheus.
        async with httpx.AsyncClient() as http:
            for worker in workers:
                scraped = await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")
                assert scraped.status_code == 200
                assert f'task_queue="{task_queue}"' in scraped.text
    store.close()

    for worker in workers:
        # Structured logs: every line one JSON object; the tuning came from the environment.
        logged = [json.loads(line) for line in worker.lines()]
        assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logged)
        [polling] = [entry for entry in logged if "polling task queue" in entry["message"]]
        assert "max_concurrent_activities=8" in polling["message"]
        assert "max_cached_workflows=50" in polling["message"]
        assert any("finishing in-flight tasks" in entry["message"] for entry in logged)

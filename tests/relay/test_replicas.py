"""Three `journeys api` processes on one PostgreSQL store and one Temporal dev server: each
event, whichever replica took it, is signalled to its run exactly once (counted in the runs'
Temporal histories), and when a replica is killed the others route its partitions; nothing is
lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import workflow_id
from journeys.store import Store
from tests.conftest import installed_binary
from tests.receivers import free_port, wait_until_serving
from tests.system import ADMIN, ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE, WRITE_KEY
from worker.main import build_worker

USERS = 24
PARTITIONS = 12


@dataclass
class Replica:
    """One `journeys api` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def journeys_processes(
    command: list[str],
    count: int,
    *,
    postgres_url: str,
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
) -> Iterator[list[Replica]]:
    """`count` `journeys <command>` processes (`{port}` in it: a free port each) on one
    PostgreSQL store and the dev server, running until the block ends; not waited for."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_DATABASE_URL": postgres_url,
        "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_WRITE_KEY": WRITE_KEY,
        "JOURNEYS_ADMIN_TOKEN": ADMIN_TOKEN,
        "JOURNEYS_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
        "JOURNEYS_ROUTER_PARTITIONS": str(PARTITIONS),
    }
    Store(postgres_url).close()  # migrated once, before the processes race to it
    with ExitStack() as stack:
        started = []
        for n in range(count):
            port, log = free_port(), tmp_path / f"{command[0]}-{n}.log"
            process = subprocess.Popen(
                [installed_binary("journeys"), *(a.format(port=port) for a in command)],
                env=env,
                stdout=stack.enter_context(log.open("w")),
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop, process)
            started.append(Replica(f"http://127.0.0.1:{port}", process, log))
        yield started


@contextmanager
def api_replicas(
    count: int, postgres_url: str, dev_server: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> Iterator[list[Replica]]:
    """`count` `journeys api` processes on one PostgreSQL store, serving until the block ends."""
    api = ["api", "--host", "127.0.0.1", "--port", "{port}"]
    with journeys_processes(
        api,
        count,
        postgres_url=postgres_url,
        dev_server=dev_server,
        tmp_path=tmp_path,
        task_queue=task_queue,
    ) as started:
        for replica in started:
            # Processes starting together on a busy machine import slowly.
            wait_until_serving(f"{replica.url}/healthz", replica.process, replica.log, timeout=90)
        yield started


@pytest.fixture
def replicas(
    postgres_url: str, dev_server: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> Iterator[list[Replica]]:
    """Three API replicas."""
    with api_replicas(3, postgres_url, dev_server, tmp_path, task_queue) as started:
        yield started


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def journey(journey_id: str) -> dict[str, object]:
    """Every user waits for an order; each product view is signalled to the run (the goal)."""
    return {
        "id": journey_id,
        "name": "Replicated",
        "entry": {"event": "Added to Cart"},
        "goal": {"event": "Product Viewed", "within": "1d"},
        "start": "wait",
        "nodes": {
            "wait": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": None,
                "paths": [{"event": "Order Completed", "next": None}],
            }
        },
    }


async def signals(env: WorkflowEnvironment, run_id: str) -> list[str]:
    """The message ids of the events signalled to a run, in its history's order."""
    handle = env.client.get_workflow_handle(run_id)
    found = []
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            [payload] = event.workflow_execution_signaled_event_attributes.input.payloads
            found.append(json.loads(payload.data)["message_id"])
    return found


@pytest.mark.store_backends("postgresql")
async def test_each_event_is_signalled_once_across_replicas_even_when_one_dies(
    replicas: list[Replica],
    postgres_url: str,
    dev_server: WorkflowEnvironment,
    executor: ThreadPoolExecutor,
    task_queue: str,
) -> None:
    store = Store(postgres_url)
    journey_id = f"replicated-{uuid.uuid4().hex[:6]}"
    users = [f"shopper-{n}" for n in range(USERS)]
    sent: dict[str, list[str]] = {user: [] for user in users}

    async def send(replica: Replica, user: str, event: str) -> None:
        message_id = f"{user}:{event}:{uuid.uuid4().hex[:8]}"
        body = {"userId": user, "event": event, "messageId": message_id}
        async with httpx.AsyncClient(base_url=replica.url) as http:
            response = await http.post("/v1/track", json=body, headers=WRITE)
        assert response.status_code == 200, response.text
        sent[user].append(message_id)

    async def routed() -> None:
        async with asyncio.timeout(30):
            while store.unrouted_count():
                await asyncio.sleep(0.1)

    try:
        async with (
            build_worker(dev_server.client, store, task_queue, executor),
            httpx.AsyncClient(base_url=replicas[0].url) as admin,
        ):
            saved = await admin.put(
                f"/v1/journeys/{journey_id}", json=journey(journey_id), headers=ADMIN
            )
            assert saved.status_code == 200, saved.text
            published = await admin.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)
            assert published.status_code == 200, published.text

            # Every user enters and views a product, each call through another replica.
            for n, user in enumerate(users):
                await send(replicas[n % 3], user, "Added to Cart")
            for n, user in enumerate(users):
                await send(replicas[(n + 1) % 3], user, "Product Viewed")
            await routed()

            # One replica dies without a word; the others take its partitions over.
            replicas[2].process.send_signal(signal.SIGKILL)
            replicas[2].process.wait()
            for n, user in enumerate(users):
                await send(replicas[n % 2], user, "Product Viewed")
                await send(replicas[(n + 1) % 2], user, "Product Viewed")
            await routed()

            for user in users:
                received = await signals(dev_server, workflow_id(journey_id, user))
                assert received == sent[user], user  # each once, in the order sent
    finally:
        store.close()

"""`journeys worker` as operators run it: a process against a real dev server."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from journeys.store import Store
from tests.conftest import installed_binary, run_journeys
from tests.workflows.helpers import make_journey, start


async def test_worker_process_runs_journeys_and_stops_cleanly_on_sigterm(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'journeys.db'}"
    task_queue = f"worker-{uuid.uuid4().hex[:8]}"
    store = Store(database)
    store.merge_traits("u1", {"email": "ada@example.com", "first_name": "Ada"})
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATABASE_URL": database,
    }
    process = await asyncio.create_subprocess_exec(
        installed_binary("journeys"),
        "worker",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        journey = make_journey(
            "hello",
            {
                "hello": {
                    "type": "message",
                    "channel": "email",
                    "content": {"subject": "Hi {{ user.first_name }}", "body": "Welcome"},
                }
            },
        )
        handle = await start(dev_server, task_queue, journey)
        outcome = await asyncio.wait_for(handle.result(), timeout=30)
        assert outcome.path == ["hello"]
        [delivery] = store.deliveries_for_user("u1")
        assert (delivery.status, delivery.content["subject"]) == ("sent", "Hi Ada")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    log = output.decode()
    assert process.returncode == 0, log
    assert "stopping: finishing in-flight tasks" in log
    store.close()


def test_worker_without_a_server_says_where_it_looked(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
    }
    result = run_journeys("worker", env=environment)
    assert result.returncode == 2
    assert "journeys: cannot reach Temporal at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr

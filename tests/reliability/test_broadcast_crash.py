"""A broadcast to 5,000 members at 200/s survives its worker's SIGKILL: every member gets the
message exactly once, and its progress shows in the API and the Temporal UI while it runs.

The API (with its relay) is served as in production; the worker is a `journeys worker`
process, killed with SIGKILL mid-broadcast and replaced by another. The cut-off batch goes to
the new worker once its heartbeat times out; the delivery records and the `Idempotency-Key` of
each webhook request keep every member's message single from the receiver's point of view.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from journeys.store import NewEvent, Store
from tests.receivers import HttpReceiver, Reply
from tests.reliability.helpers import WorkerProcess, webhook_worker_environment
from tests.system import ADMIN, running_system

MEMBERS = 5000
KILL_AFTER = 1500
"""Requests the receiver has had when the worker is killed."""
FINISH_WITHIN = 300.0


def add_members(store: Store) -> None:
    """`MEMBERS` users of the `everyone-vip` segment, and some who are not in it."""
    now = datetime.now(UTC)
    store.append_events(
        [
            NewEvent(
                message_id=f"identify-{n}",
                user_id=f"user-{n:05d}",
                type="identify",
                name=None,
                properties={},
                timestamp=now,
                traits={"plan": "vip" if n < MEMBERS else "free"},
            )
            for n in range(MEMBERS + 50)
        ]
    )
    store.put_segment("everyone-vip", "VIPs", {"field": "user.plan", "op": "eq", "value": "vip"})


async def test_a_broadcast_delivers_once_to_every_member_through_a_worker_kill(
    dev_server: WorkflowEnvironment, database_url: str, tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    store = Store(database_url)  # migrated here, before any worker starts
    add_members(store)
    task_queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    environment = webhook_worker_environment(dev_server.client, task_queue, database_url)
    first, second = (WorkerProcess(name, environment, tmp_path) for name in ("first", "second"))
    broadcast_id = f"vip-{uuid.uuid4().hex[:8]}"
    with HttpReceiver(Reply.json({"ok": True}), idempotent=True) as receiver:
        message = {
            "channel": "webhook",
            "content": {"url": f"{receiver.url}/hook", "body": {"user": "{{ user.id }}"}},
        }
        body = {"id": broadcast_id, "segment": "everyone-vip", "message": message, "rate": "200/s"}
        async with running_system(
            dev_server, store, executor, worker=False, task_queue=task_queue,
            webhook_allow="127.0.0.1",
        ) as system:  # fmt: skip
            try:
                await first.run()
                created = await system.http.post("/v1/broadcasts", json=body, headers=ADMIN)
                assert created.status_code == 201, created.text

                async def progress() -> dict[str, Any]:
                    response = await system.http.get(
                        f"/v1/broadcasts/{broadcast_id}", headers=ADMIN
                    )
                    assert response.status_code == 200, response.text
                    shown: dict[str, Any] = response.json()
                    return shown

                # Mid-run, the API and the run's details show how far it got.
                deadline = time.monotonic() + 120
                while len(receiver.requests) < KILL_AFTER:
                    assert time.monotonic() < deadline, first.tail()
                    await asyncio.sleep(0.05)
                midway = await progress()
                assert midway["status"] == "sending", midway
                assert 0 < midway["sent"] < MEMBERS, midway
                handle = system.temporal.get_workflow_handle(f"broadcast:{broadcast_id}")
                metadata = await handle.query(
                    "__temporal_workflow_metadata", result_type=WorkflowMetadata
                )
                assert "members taken" in metadata.current_details, metadata
                assert " sent · " in metadata.current_details, metadata

                await first.kill()
                at_kill = len(receiver.requests)
                await second.run()
                deadline = time.monotonic() + FINISH_WITHIN
                while (shown := await progress())["status"] != "completed":
                    assert time.monotonic() < deadline, (shown, second.tail())
                    await asyncio.sleep(0.5)
            finally:
                for worker in (first, second):
                    if worker.process is not None and worker.process.returncode is None:
                        await worker.stop()

    context = f"requests at the kill: {at_kill}, in all: {len(receiver.requests)}"
    assert at_kill < MEMBERS, context  # the kill came mid-broadcast
    assert (shown["targeted"], shown["sent"], shown["skipped"], shown["failed"]) == (
        MEMBERS,
        MEMBERS,
        0,
        0,
    ), context
    # Every member's message arrived, under its own key, and no key was acted on twice.
    keys = receiver.unique_idempotency_keys()
    assert len(keys) == MEMBERS, context
    acted = receiver.deliveries()
    assert len(acted) == MEMBERS, context
    assert sorted(r.json()["user"] for r in acted) == [f"user-{n:05d}" for n in range(MEMBERS)]
    store.close()

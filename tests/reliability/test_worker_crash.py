"""A worker killed with SIGKILL mid-journey, three times: nothing stalls, nothing is sent twice.

300 users go through a journey of two webhook messages with a delay between them. The only
worker process is killed at random moments while they are in it (in the middle of workflow
tasks, store activities and sends) and restarted each time. Temporal hands the cut-off tasks to
the next worker once their timeouts pass; the delivery records and the `Idempotency-Key` each
request carries keep every message exactly once from the receiver's point of view.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import JourneyOutcome
from journeys.store import Store
from tests.receivers import HttpReceiver, Reply
from tests.reliability.helpers import WorkerProcess, webhook_worker_environment
from tests.workflows.helpers import make_journey, start

USERS = 300
KILL_WINDOWS = ((0.05, 0.2), (0.25, 0.4), (0.45, 0.6))
"""Each kill happens once a random share of the messages, within its window, has arrived."""
MESSAGES = ("hello", "follow_up")
FINISH_WITHIN = 300.0
"""Seconds for every run to end after the last restart: a delivery cut off by a kill is retried
after its 60 s start-to-close timeout, and the machine is shared."""

log = logging.getLogger(__name__)


def webhook(url: str, message: str, next_node: str | None) -> dict[str, object]:
    """A webhook message node naming its user and message in the body."""
    return {
        "type": "message",
        "channel": "webhook",
        "content": {"url": url, "body": {"user": "{{ user.id }}", "message": message}},
        "next": next_node,
    }


async def until_received(receiver: HttpReceiver, count: int, worker: WorkerProcess) -> None:
    """Wait until the receiver has had `count` requests (at most a minute: then kill anyway)."""
    deadline = time.monotonic() + 60
    while len(receiver.requests) < count and time.monotonic() < deadline:
        assert worker.process is not None
        assert worker.process.returncode is None, worker.tail()
        await asyncio.sleep(0.01)


async def test_sigkilled_worker_delivers_every_message_exactly_once(
    dev_server: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    moments = random.Random(seed)
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    store = Store(database_url)  # migrated here, before any worker starts
    environment = webhook_worker_environment(dev_server.client, task_queue, database_url)
    worker = WorkerProcess("worker", environment, tmp_path)
    with HttpReceiver(Reply.json({"ok": True}), idempotent=True) as receiver:
        journey = make_journey(
            "hello",
            {
                "hello": webhook(f"{receiver.url}/hook", "hello", "pause"),
                "pause": {"type": "delay", "duration": "2s", "next": "follow_up"},
                "follow_up": webhook(f"{receiver.url}/hook", "follow_up", None),
            },
            id=f"crash-{uuid.uuid4().hex[:6]}",
        )
        users = [f"user-{n:03d}" for n in range(USERS)]
        began = time.monotonic()
        try:
            await worker.run()
            gate = asyncio.Semaphore(32)

            async def enter(user: str) -> WorkflowHandle[object, JourneyOutcome]:
                async with gate:
                    return await start(dev_server, task_queue, journey, user)

            handles = await asyncio.gather(*(enter(user) for user in users))
            progress: list[int] = []
            for low, high in KILL_WINDOWS:
                # A random moment while users are mid-journey (first sends, delays and
                # follow-ups overlap throughout), so each kill cuts off work in flight.
                target = int(moments.uniform(low, high) * USERS * len(MESSAGES))
                await until_received(receiver, target, worker)
                await worker.kill()
                progress.append(len(receiver.requests))
                await worker.run()
            last_restart = time.monotonic()
            outcomes: list[JourneyOutcome] = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)),
                timeout=FINISH_WITHIN,
            )
            finished = time.monotonic()
        finally:
            if worker.process is not None:
                await worker.stop()

        context = f"seed {seed}, requests seen at each kill {progress}"
        assert [o.path for o in outcomes] == [["hello", "pause", "follow_up"]] * USERS, context
        assert {o.status for o in outcomes} == {"completed"}, context

        # Every message arrived, each under its own key, and no key was acted on twice: a
        # request repeated after a kill carries the key and the body of the first.
        requests = receiver.requests
        keys = receiver.unique_idempotency_keys()
        assert len(keys) == USERS * len(MESSAGES), context
        acted = receiver.deliveries()
        assert len(acted) == len(keys), context
        received = sorted((r.json()["user"], r.json()["message"]) for r in acted)
        assert received == sorted((u, m) for u in users for m in MESSAGES), context
        bodies: dict[str, set[bytes]] = defaultdict(set)
        for request in requests:
            key = request.header("Idempotency-Key")
            assert key is not None
            bodies[key].add(request.body)
        assert all(len(sent) == 1 for sent in bodies.values()), context

        # The store agrees: one delivery per message, all sent.
        for user in users:
            records = store.deliveries_for_user(user)
            assert sorted((d.node_id, d.status) for d in records) == [
                ("follow_up", "sent"),
                ("hello", "sent"),
            ], (user, context)
        store.close()
        log.warning(
            "worker crash: %d users, %d kills (requests seen at each: %s), %d requests for %d "
            "messages (%d resent under their key), %.1f s in all, %.1f s after the last restart",
            USERS,
            len(KILL_WINDOWS),
            progress,
            len(requests),
            len(keys),
            len(requests) - len(keys),
            finished - began,
            finished - last_restart,
        )

from __future__ import annotations

import time

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.store import Store
from tests.workflows.helpers import make_journey, start


async def test_timeout_path(time_skipping: WorkflowEnvironment, worker: Worker, store: Store, task_queue: str) -> None:
    store.merge_traits("u1", {"email": "a@example.com", "first_name": "Ada"})
    journey = make_journey(
        "wait",
        {
            "wait": {"type": "wait_for_event", "timeout": "24h", "on_timeout": "mail",
                     "paths": [{"event": "Checkout Started", "next": None}]},
            "mail": {"type": "message", "channel": "email", "next": None,
                     "content": {"subject": "Hi {{ user.first_name }}", "body": "Come back"}},
        },
    )
    began = time.monotonic()
    handle = await start(time_skipping, task_queue, journey)
    outcome = await handle.result()
    print("elapsed", time.monotonic() - began)
    assert outcome.status == "completed"
    assert outcome.path == ["wait", "mail"]
    [delivery] = store.deliveries_for_user("u1")
    assert delivery.content["subject"] == "Hi Ada"

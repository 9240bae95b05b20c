"""Erasure through the whole system (the API with its relay, a worker with a real SMTP
server, the Temporal dev server), and the logs of all of it: they carry ids, never trait
values, addresses or message content."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import workflow_id
from journeys.logs import JsonFormatter
from journeys.store import Store
from tests.factories import rows_holding
from tests.receivers import SmtpReceiver
from tests.system import ADMIN, WRITE, System, running_system

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

ADDRESS = "zenobia.quill.5521@example.org"
FIRST_NAME = "Zenobia-Quillfeather"
CITY = "Vrbnik-on-Krk"
PRODUCT = "Harpsichord-K7-Walnut"
SUBJECT = "Still thinking about it"
PERSONAL = (ADDRESS, FIRST_NAME, CITY, PRODUCT, SUBJECT)
"""What no log line may carry: the address, trait values, event properties, message content."""

TEST_PARTS = ("mail.log",)
"""Loggers of the test's own servers (aiosmtpd logs what it receives): not the system's."""


class Lines(logging.Handler):
    """Keeps every record as the JSON line `journeys.logs` writes for it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's line, unless it comes from the test's own servers."""
        if not record.name.startswith(TEST_PARTS):
            self.lines.append(self.format(record))


@contextmanager
def captured_logs() -> Iterator[Lines]:
    """Every log record of every component in this process, at every level, as JSON lines."""
    root = logging.getLogger()
    handler, level = Lines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def cart(journey_id: str) -> dict[str, Any]:
    """An email at once, then a wait of an hour for the order."""
    return {
        "id": journey_id,
        "name": "Cart",
        "entry": {"event": "Added to Cart"},
        "start": "nudge",
        "nodes": {
            "nudge": {
                "type": "message",
                "channel": "email",
                "next": "wait_order",
                "content": {
                    "subject": SUBJECT,
                    "body": "Hi {{ user.first_name }} from {{ user.city }}: {{ entry.product }}",
                },
            },
            "wait_order": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": None,
                "paths": [{"event": "Order Completed", "next": None}],
            },
        },
    }


async def post(system: System, path: str, body: dict[str, Any]) -> None:
    """An ingest call, accepted."""
    response = await system.http.post(path, json=body, headers=WRITE)
    assert response.status_code == 200, response.text


async def waiting(system: System, user_id: str) -> None:
    """Until the user's run waits for the order (real time, 30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            response = await system.http.get(f"/v1/users/{user_id}", headers=ADMIN)
            journeys = response.json().get("journeys", []) if response.is_success else []
            if journeys and journeys[0]["current_node"] == "wait_order":
                return
            await asyncio.sleep(0.1)


async def test_an_erased_user_leaves_nothing_and_comes_back_only_with_consent(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    journey_id = f"cart-{uuid.uuid4().hex[:6]}"
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    added = {"userId": user_id, "event": "Added to Cart", "properties": {"product": PRODUCT}}
    with captured_logs() as logs, SmtpReceiver() as smtp:
        async with running_system(
            dev_server, store, executor, smtp_url=smtp.url, email_from="Shop <shop@example.com>"
        ) as system:
            await system.publish(cart(journey_id))
            traits = {"email": ADDRESS, "first_name": FIRST_NAME, "city": CITY}
            await post(system, "/v1/identify", {"userId": user_id, "traits": traits})
            await post(system, "/v1/track", added)
            await waiting(system, user_id)
            [mail] = smtp.messages
            assert list(mail.recipients) == [ADDRESS]
            assert FIRST_NAME in (mail.text() or "")
            handle = system.temporal.get_workflow_handle(workflow_id(journey_id, user_id))
            erased_run = (await handle.describe()).run_id

            response = await system.http.delete(f"/v1/users/{user_id}", headers=ADMIN)
            assert response.status_code == 202, response.text
            assert response.json()["runs_ended"] == 1
            outcome = await system.outcome(journey_id, user_id)
            assert (outcome.status, outcome.reason) == ("exited", "erased")
            gone = await system.http.get(f"/v1/users/{user_id}", headers=ADMIN)
            assert gone.status_code == 404
            assert rows_holding(store, user_id, ADDRESS) == []
            again = await system.http.delete(f"/v1/users/{user_id}", headers=ADMIN)
            assert again.status_code == 404

            # A later entry event starts nothing and is not stored.
            await post(system, "/v1/track", {**added, "messageId": "after-erasure"})
            await post(system, "/v1/identify", {"userId": user_id, "traits": traits})
            # Dropped when stored: nothing waits in the outbox that could start a run.
            assert store.unrouted_count() == 0
            assert (await handle.describe()).run_id == erased_run
            assert rows_holding(store, user_id, ADDRESS) == []

            # Identified again with consent: stored, and the entry event starts a new run.
            consent = {"userId": user_id, "traits": traits, "context": {"consent": True}}
            await post(system, "/v1/identify", consent)
            await post(system, "/v1/track", {**added, "messageId": "with-consent"})
            await waiting(system, user_id)
            described = await handle.describe()
            assert described.run_id != erased_run
            assert described.status == WorkflowExecutionStatus.RUNNING
            await handle.cancel()

    assert logs.lines, "no log line was captured"
    leaks = [line for line in logs.lines if any(value in line for value in PERSONAL)]
    assert leaks == []
    errors = [line for line in logs.lines if '"level": "error"' in line]
    assert errors == []

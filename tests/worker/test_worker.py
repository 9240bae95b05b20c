"""`journeys worker` as operators run it: a process against a real dev server."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import RETENTION_SCHEDULE_ID, RETENTION_WORKFLOW_TYPE
from journeys.store import Store
from tests.conftest import installed_binary, run_journeys
from tests.factories import merge_traits
from tests.receivers import SmtpReceiver
from tests.workflows.helpers import make_journey, start
from worker.main import compile_workflow_modules


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server on loopback."""
    with SmtpReceiver() as receiver:
        yield receiver


async def test_worker_process_delivers_as_configured_and_stops_cleanly_on_sigterm(
    dev_server: WorkflowEnvironment, tmp_path: Path, smtp: SmtpReceiver
) -> None:
    database = f"sqlite:///{tmp_path / 'journeys.db'}"
    task_queue = f"worker-{uuid.uuid4().hex[:8]}"
    store = Store(database)
    merge_traits(store, "u1", {"email": "ada@example.com", "first_name": "Ada"})
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATABASE_URL": database,
        "JOURNEYS_UNSUBSCRIBE_SECRET": "worker-test",
        "JOURNEYS_PUBLIC_URL": "https://shop.example/api",
        "JOURNEYS_SMTP_URL": smtp.url,
        "JOURNEYS_EMAIL_FROM": "shop@example.com",
    }
    retention = dev_server.client.get_schedule_handle(RETENTION_SCHEDULE_ID)
    with contextlib.suppress(RPCError):  # made by another test's worker, or not there
        await retention.delete()
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
        assert (delivery.status, delivery.provider) == ("sent", "smtp")
        [mail] = smtp.messages
        assert (mail.message["Subject"], mail.recipients) == ("Hi Ada", ("ada@example.com",))
        unsubscribe = mail.message["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://shop.example/api/unsubscribe?token=")
        # The worker made its schedules at start, on its own task queue.
        action = (await retention.describe()).schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (RETENTION_WORKFLOW_TYPE, task_queue)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    log = output.decode()
    assert process.returncode == 0, log
    assert "stopping: finishing in-flight tasks" in log
    store.close()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({}, "cannot reach Temporal at 127.0.0.1:1"),
        ({"JOURNEYS_UNSUBSCRIBE_SECRET": ""}, "the worker needs JOURNEYS_UNSUBSCRIBE_SECRET"),
        ({"JOURNEYS_SMTP_URL": "smtp://mail:25"}, "JOURNEYS_EMAIL_FROM is required"),
        ({"JOURNEYS_SMTP_URL": "http://mail", "JOURNEYS_EMAIL_FROM": "a@b.c"}, "JOURNEYS_SMTP_URL"),
        ({"JOURNEYS_WEBHOOK_ALLOW": "10.0.0.0/99"}, "JOURNEYS_WEBHOOK_ALLOW"),
    ],
)
def test_worker_that_cannot_start_says_why(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "JOURNEYS_UNSUBSCRIBE_SECRET": "worker-test",
        **settings,
    }
    result = run_journeys("worker", env=environment)
    assert result.returncode == 2
    assert f"journeys: {says}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_bytecode_of_every_workflow_module_is_written(tmp_path: Path) -> None:
    package = tmp_path / "sandboxed"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text("from sandboxed import helper\n\nclass Flow: ...\n")
    (package / "helper.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        flow = importlib.import_module("sandboxed.flow")
        for cached in package.glob("__pycache__/*"):
            cached.unlink()
        compile_workflow_modules([flow.Flow])
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("sandboxed", "sandboxed.flow", "sandboxed.helper"):
            sys.modules.pop(name, None)
    written = {path.name.split(".")[0] for path in package.glob("__pycache__/*.pyc")}
    assert written == {"__init__", "flow", "helper"}

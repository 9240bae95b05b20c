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


def _workflow_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A package of its own (a name no other test imports) with a workflow module `flow` that
    imports `helper`, importable from `tmp_path`; every finder added to the import system goes
    when the test ends."""
    name = f"sandboxed_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text(f"from {name} import helper\n\nclass Flow: ...\n")
    (package / "helper.py").write_text("VALUES: list[int] = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path])
    for module in (name, f"{name}.flow", f"{name}.helper"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return name, package


def test_the_bytecode_of_every_workflow_module_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, package = _workflow_package(tmp_path, monkeypatch)
    flow = importlib.import_module(f"{name}.flow")
    for cached in package.glob("__pycache__/*"):
        cached.unlink()
    compile_workflow_modules([flow.Flow])
    written = {path.name.split(".")[0] for path in package.glob("__pycache__/*.pyc")}
    assert written == {"__init__", "flow", "helper"}


def test_workflow_modules_run_anew_from_the_code_compiled_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, package = _workflow_package(tmp_path, monkeypatch)
    compile_workflow_modules([importlib.import_module(f"{name}.flow").Flow])
    first = importlib.import_module(f"{name}.helper")
    first.VALUES.append(1)
    # As the sandbox does for every run: the module imported afresh...
    del sys.modules[f"{name}.helper"]
    # ...reads neither the source nor the bytecode again.
    (package / "helper.py").write_text("raise RuntimeError('read from disk')\n")
    for cached in package.glob("__pycache__/*"):
        cached.unlink()
    again = importlib.import_module(f"{name}.helper")
    assert again is not first
    assert again.VALUES == []  # executed anew: no state from the module before
    assert again.__file__ == str(package / "helper.py")


def test_other_modules_are_imported_as_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, package = _workflow_package(tmp_path, monkeypatch)
    compile_workflow_modules([importlib.import_module(f"{name}.flow").Flow])
    (package / "later.py").write_text("ANSWER = 42\n")  # not there when they were compiled
    assert importlib.import_module(f"{name}.later").ANSWER == 42

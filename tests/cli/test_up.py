"""`journeys up`: real Temporal dev servers, workers and designers as child processes.

The stack is tested in two ways: in this process (`Stack`, `run_up`) with the Temporal dev
server, the worker and the designer, and as `journeys up` in a process of its own, API and
relay included.
"""

from __future__ import annotations

import asyncio
import io
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

import cli.up
from cli.up import (
    DEV_ADMIN_TOKEN,
    DEV_UNSUBSCRIBE_SECRET,
    DEV_WRITE_KEY,
    Stack,
    StackConfig,
    StackFailed,
    port_is_free,
    run_up,
    search_attribute_flags,
)
from tests.conftest import installed_binary

JOURNEY_ATTRIBUTES = {
    "JourneyId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "JourneyVersion": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "UserId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "JourneyNode": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}
STARTED = re.compile(r"started (\w+)\s+pid (\d+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def stack_config(data_dir: Path, **options: bool) -> StackConfig:
    """Free ports, a temporary data directory; API and designer only when asked."""
    return StackConfig(
        data_dir=data_dir,
        api_port=free_port(),
        designer_port=free_port(),
        temporal_port=free_port(),
        ui_port=free_port(),
        shop_port=free_port(),
        api=options.get("api", False),
        designer=options.get("designer", False),
        start_timeout=60,
    )


def search_attributes(address: str) -> dict[str, int]:
    async def listed() -> dict[str, int]:
        client = await Client.connect(address)
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        return dict(response.custom_attributes)

    return asyncio.run(asyncio.wait_for(listed(), 30))


def process_state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def processes_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


# --- pieces -----------------------------------------------------------------------------------


def test_the_search_attribute_flags_come_from_the_contracts() -> None:
    assert search_attribute_flags() == [
        "--search-attribute", "JourneyId=Keyword",
        "--search-attribute", "JourneyVersion=Int",
        "--search-attribute", "UserId=Keyword",
        "--search-attribute", "JourneyNode=Keyword",
    ]  # fmt: skip


def test_children_are_pointed_at_the_stack_with_dev_credentials_by_default(
    tmp_path: Path,
) -> None:
    config = StackConfig(data_dir=tmp_path / "data", api_port=1, temporal_port=2, ui_port=3)
    environment = config.environment({"PATH": "/bin", "TEMPORAL_ADDRESS": "elsewhere:7233"})
    assert environment == {
        "PATH": "/bin",
        "TEMPORAL_ADDRESS": "127.0.0.1:2",
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'journeys.db'}",
        "JOURNEYS_API_URL": "http://127.0.0.1:1",
        "JOURNEYS_TEMPORAL_UI_URL": "http://127.0.0.1:3",
        "JOURNEYS_WRITE_KEY": DEV_WRITE_KEY,
        "JOURNEYS_ADMIN_TOKEN": DEV_ADMIN_TOKEN,
        "JOURNEYS_UNSUBSCRIBE_SECRET": DEV_UNSUBSCRIBE_SECRET,
        "PYTHONUNBUFFERED": "1",
    }
    mine = config.environment({"JOURNEYS_WRITE_KEY": "k", "JOURNEYS_ADMIN_TOKEN": "t"})
    assert (mine["JOURNEYS_WRITE_KEY"], mine["JOURNEYS_ADMIN_TOKEN"]) == ("k", "t")


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free(port)
        config = StackConfig(
            data_dir=tmp_path, temporal_port=port, ui_port=free_port(), api=False, designer=False
        )
        stack = Stack(config, out=io.StringIO())
        with pytest.raises(StackFailed, match=rf"port {port} \(--temporal-port\) already in use"):
            stack.start()
    assert stack.children == []


def test_a_temporal_server_that_dies_at_start_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "temporal"
    fake.write_text('#!/bin/sh\necho "called with: $*"\necho "boom: cannot start"\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setattr(cli.up, "find_temporal", lambda: str(fake))
    out = io.StringIO()
    stack = Stack(stack_config(tmp_path / "data"), out=out)
    try:
        with pytest.raises(StackFailed) as failure:
            stack.start()
    finally:
        stack.stop()
    message = str(failure.value)
    assert re.match(r"temporal \(pid \d+\) exited while starting with code 3", message)
    assert f"last lines of {tmp_path / 'data' / 'logs' / 'temporal.log'}:" in message
    assert "    | boom: cannot start" in message
    assert f"--db-filename {tmp_path / 'data' / 'temporal.db'}" in message
    assert "--ip 127.0.0.1" in message
    assert " ".join(search_attribute_flags()) in message
    assert "failed" in out.getvalue()


# --- the stack in this process ----------------------------------------------------------------


def test_temporal_and_worker_start_and_a_dying_child_is_reported(tmp_path: Path) -> None:
    config = stack_config(tmp_path / "data")
    out = io.StringIO()
    stack = Stack(config, environ=dict(os.environ), out=out)
    try:
        assert stack.start()
        children = {child.name: child for child in stack.children}
        assert list(children) == ["temporal", "worker"]
        assert search_attributes(config.temporal_address).items() >= JOURNEY_ATTRIBUTES.items()
        assert (tmp_path / "data" / "temporal.db").exists()

        worker = children["worker"]
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)
        assert stack.watch() is worker
        message = str(worker.died("unexpectedly"))
        assert re.match(rf"worker \(pid {worker.pid}\) exited unexpectedly with code -9", message)
        assert f"last lines of {tmp_path / 'data' / 'logs' / 'worker.log'}" in message
    finally:
        stack.stop()
    assert stack.children == []
    for child in children.values():
        assert child.exit_code() is not None
        assert child.pid is not None
        assert process_state(child.pid) is None
    assert "stopping temporal" in out.getvalue()


def test_a_persisted_temporal_database_gets_missing_search_attributes(tmp_path: Path) -> None:
    config = stack_config(tmp_path)
    # A database from an older stack that registered only one of the four.
    older = subprocess.Popen(
        [
            installed_binary("temporal"), "server", "start-dev", "--headless",
            "--port", str(config.temporal_port), "--ip", "127.0.0.1",
            "--db-filename", str(tmp_path / "temporal.db"),
            "--search-attribute", "JourneyId=Keyword",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while set(_listed_or_empty(config.temporal_address)) < {"JourneyId"}:
            assert time.monotonic() < deadline, "the older server did not start"
            time.sleep(0.2)
    finally:
        older.terminate()
        older.wait(timeout=30)

    out = io.StringIO()
    stack = Stack(config, out=out)
    try:
        assert stack.start()
        assert search_attributes(config.temporal_address).items() >= JOURNEY_ATTRIBUTES.items()
    finally:
        stack.stop()
    assert "registered search attributes JourneyNode, JourneyVersion, UserId" in out.getvalue()


def _listed_or_empty(address: str) -> dict[str, int]:
    try:
        return search_attributes(address)
    except Exception:
        return {}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_up_prints_the_urls_and_stops_every_child_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    config = stack_config(tmp_path / "data", designer=True)
    out, err = io.StringIO(), io.StringIO()
    signalled = threading.Event()

    def signal_once_up() -> None:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in out.getvalue():
            if time.monotonic() > deadline or "stopped" in out.getvalue():
                break
            time.sleep(0.1)
        else:
            signalled.set()
            os.kill(os.getpid(), signum)  # run_up's handler is installed by now

    handler_before = signal.getsignal(signum)
    helper = threading.Thread(target=signal_once_up, daemon=True)
    helper.start()
    code = run_up(config, out=out, err=err)
    helper.join(timeout=5)
    printed = out.getvalue()
    assert signalled.is_set(), printed + err.getvalue()
    assert code == 0, printed + err.getvalue()
    assert err.getvalue() == ""

    assert f"designer           {config.designer_url}" in printed
    assert f"Temporal Web UI    {config.temporal_ui_url}" in printed
    assert f"Temporal frontend  {config.temporal_address}  (namespace default)" in printed
    assert f"logs in {config.logs}/<name>.log" in printed
    started = dict(STARTED.findall(printed))
    assert list(started) == ["temporal", "worker", "designer"]
    stops = re.findall(r"stopping (\w+) \(pid", printed)
    assert stops == ["designer", "worker", "temporal"]
    assert printed.rstrip().endswith("stopped")
    for pid in started.values():
        assert process_state(int(pid)) is None
    # The signal handlers of this process are back as they were.
    assert signal.getsignal(signum) is handler_before


# --- `journeys up` as users run it ------------------------------------------------------------


def read_lines(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    assert stream is not None
    for line in stream:
        lines.put(line)


def wait_for_line(lines: queue.Queue[str], seen: list[str], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} within {timeout} s:\n{''.join(seen)}"
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            continue


def drain(lines: queue.Queue[str], seen: list[str]) -> None:
    """Move the lines read so far into `seen`."""
    while True:
        try:
            seen.append(lines.get_nowait())
        except queue.Empty:
            return


def exit_code_within(process: subprocess.Popen[str], timeout: float) -> int | None:
    """The exit code, or None when the process is still running after `timeout` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def up_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], StackConfig]]:
    pytest.importorskip("cli.serve")
    config = stack_config(tmp_path / "data", api=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    environment.pop("TEMPORAL_ADDRESS", None)
    process = subprocess.Popen(
        [
            installed_binary("journeys"), "up", "--no-designer",
            "--data-dir", str(config.data_dir),
            "--api-port", str(config.api_port),
            "--temporal-port", str(config.temporal_port),
            "--ui-port", str(config.ui_port),
            "--shop-port", str(config.shop_port),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so leftovers are easy to find
    )  # fmt: skip
    try:
        yield process, config
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_journeys_up_runs_the_stack_and_one_sigint_stops_it_all(
    up_process: tuple[subprocess.Popen[str], StackConfig],
) -> None:
    process, config = up_process
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    wait_for_line(lines, seen, "Press Ctrl-C to stop.", timeout=120)
    printed = "".join(seen)

    api = f"http://127.0.0.1:{config.api_port}"
    assert f"API                {api}\n" in printed
    assert f"API docs           {api}/docs\n" in printed
    assert f"Temporal Web UI    http://127.0.0.1:{config.ui_port}\n" in printed
    assert f"Temporal frontend  127.0.0.1:{config.temporal_port}" in printed
    assert f"write key          {DEV_WRITE_KEY}" in printed
    assert f"admin token        {DEV_ADMIN_TOKEN}" in printed
    assert "designer " not in printed
    assert f"storefront         {config.shop_url}/checkout.html" in printed
    assert f"logs in {config.data_dir / 'logs'}" in printed
    shop_config = httpx.get(f"{config.shop_url}/config.js", timeout=15).text
    assert f'"apiUrl": "{api}", "writeKey": "{DEV_WRITE_KEY}"' in shop_config
    assert httpx.get(f"{api}/healthz", timeout=15).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{config.ui_port}", timeout=15).status_code == 200
    attributes = search_attributes(f"127.0.0.1:{config.temporal_port}")
    assert attributes.items() >= JOURNEY_ATTRIBUTES.items()
    children = {name: int(pid) for name, pid in STARTED.findall(printed)}
    assert list(children) == ["temporal", "worker", "api"]
    assert all(process_state(pid) not in (None, "Z") for pid in children.values())

    process.send_signal(signal.SIGINT)
    code = exit_code_within(process, 20)
    if code is not None:
        wait_for_line(lines, seen, "stopped", timeout=5)
    drain(lines, seen)
    assert code == 0, f"exit code {code} (None: still running after 20 s):\n{''.join(seen)}"
    assert re.findall(r"stopping (\w+) \(pid \d+\) done", "".join(seen)) == [
        "api",
        "worker",
        "temporal",
    ]
    assert processes_in_group(process.pid) == []
    assert all(process_state(pid) is None for pid in children.values())
    assert port_is_free(config.shop_port)
    for name in children:
        assert (config.data_dir / "logs" / f"{name}.log").exists()


def test_journeys_up_stops_everything_when_a_child_dies(
    up_process: tuple[subprocess.Popen[str], StackConfig],
) -> None:
    process, _ = up_process
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    wait_for_line(lines, seen, "Press Ctrl-C to stop.", timeout=120)
    children = {name: int(pid) for name, pid in STARTED.findall("".join(seen))}

    os.kill(children["worker"], signal.SIGKILL)
    code = exit_code_within(process, 30)
    if code is not None:
        wait_for_line(lines, seen, "stopped", timeout=10)
    drain(lines, seen)
    assert code == 1, f"exit code {code} (None: still running after 30 s):\n{''.join(seen)}"
    printed = "".join(seen)
    assert f"worker (pid {children['worker']}) exited unexpectedly with code -9" in printed
    assert "last lines of" in printed
    assert processes_in_group(process.pid) == []

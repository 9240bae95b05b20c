"""A webhook receiver on loopback that notes when each message arrives.

An asyncio HTTP/1.1 server in the benchmark's own event loop (so arrival times and send times
come from one clock, `time.perf_counter`). It answers every request 200 with `{}` and records
the JSON body's `user` and `step` with the arrival time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from types import TracebackType

from bench.stack import HOST

_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Receiver:
    """Records `(user, step) → arrival time` for every webhook it receives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, dict[str, float]] = defaultdict(dict)
        """Arrival time per step per user (the first arrival of each)."""
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """Where webhooks should go."""
        assert self._server is not None, "start the receiver first"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}/hook"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, HOST, 0, backlog=1024)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._clients:  # keep-alive connections would hold wait_closed up
            writer.close()
        await self._server.wait_closed()

    def count(self, step: str, users: set[str]) -> int:
        """How many of `users` received `step`."""
        return sum(1 for user in users if step in self.arrivals.get(user, {}))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                arrived = time.perf_counter()
                self._record(body, arrived)
                writer.write(_REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _record(self, body: bytes, arrived: float) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            return
        if isinstance(message, dict):
            user, step = str(message.get("user")), str(message.get("step", "message"))
            self.arrivals[user].setdefault(step, arrived)

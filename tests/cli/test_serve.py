"""`journeys api` as a process: it stops on SIGTERM even while live inbox streams are open."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import httpx

from cli.serve import OPEN_STREAMS_GRACE
from tests.conftest import installed_binary
from tests.receivers import free_port, wait_until_serving

WRITE_KEY = "serve-write-key"


def test_the_api_stops_with_a_stream_open(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_WRITE_KEY": WRITE_KEY,
        "JOURNEYS_ADMIN_TOKEN": "serve-admin-token",
        "JOURNEYS_UNSUBSCRIBE_SECRET": "serve-secret",
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nobody: the relay keeps retrying
    }
    log = (tmp_path / "api.log").open("w")
    api = subprocess.Popen(
        [installed_binary("journeys"), "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/healthz", api, tmp_path / "api.log")

        stream_url = f"{url}/v1/users/ada/inbox/stream"
        with httpx.stream("GET", stream_url, params={"key": WRITE_KEY}, timeout=30) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            api.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            # The server cuts the stream once the grace is over (EventSource then reconnects),
            # and exits.
            with suppress(httpx.RemoteProtocolError):
                for _ in lines:
                    pass
            # uvicorn re-raises the signal once it has shut down.
            assert api.wait(timeout=OPEN_STREAMS_GRACE + 10) in (0, -signal.SIGTERM)
            assert time.monotonic() - stopping < OPEN_STREAMS_GRACE + 5
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()

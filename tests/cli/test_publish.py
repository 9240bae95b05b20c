"""`journeys publish` against a real HTTP server on loopback standing in for the API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_journeys
from tests.journeys.loopback import LoopbackApi, Request, error_body

EXAMPLES = Path(__file__).parents[2] / "examples"
WIN_BACK = EXAMPLES / "win-back.json"
CART = EXAMPLES / "abandoned-cart.json"
SEGMENT = EXAMPLES / "segments" / "inactive-7d.json"
TOKEN = "test-admin-token"


def publish(
    api_url: str, *files: Path | str, token: str | None = TOKEN
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("JOURNEYS_")
    }
    environment["JOURNEYS_API_URL"] = api_url
    if token is not None:
        environment["JOURNEYS_ADMIN_TOKEN"] = token
    return run_journeys("publish", *map(str, files), env=environment)


class FakeApi:
    """Accepts segments and drafts and numbers versions; refuses the journeys in `refuse`."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.refuse: dict[str, tuple[int, dict[str, Any]]] = {}

    def __call__(self, request: Request) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        match request.method, parts:
            case "PUT", ["v1", "segments", _]:
                return 200, request.body
            case "PUT", ["v1", "journeys", journey_id]:
                if journey_id in self.refuse:
                    return self.refuse[journey_id]
                return 200, {"id": journey_id, "status": "draft"}
            case "POST", ["v1", "journeys", journey_id, "publish"]:
                self.versions[journey_id] = self.versions.get(journey_id, 0) + 1
                return 200, {"version": self.versions[journey_id]}
        return 404, error_body("not_found", f"no route {request.method} {request.path}")


@pytest.fixture
def api() -> Iterator[tuple[LoopbackApi, FakeApi]]:
    fake = FakeApi()
    with LoopbackApi(fake) as server:
        yield server, fake


def test_publish_saves_segments_first_then_drafts_and_publishes_each_journey(
    api: tuple[LoopbackApi, FakeApi],
) -> None:
    server, _ = api
    result = publish(server.url, WIN_BACK, SEGMENT, CART, CART)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{SEGMENT}: saved segment inactive-7d",
        f"{WIN_BACK}: published win-back v1",
        f"{CART}: published abandoned-cart v1",
        f"{CART}: published abandoned-cart v2",
    ]
    assert [(r.method, r.path) for r in server.requests] == [
        ("PUT", "/v1/segments/inactive-7d"),
        ("PUT", "/v1/journeys/win-back"),
        ("POST", "/v1/journeys/win-back/publish"),
        ("PUT", "/v1/journeys/abandoned-cart"),
        ("POST", "/v1/journeys/abandoned-cart/publish"),
        ("PUT", "/v1/journeys/abandoned-cart"),
        ("POST", "/v1/journeys/abandoned-cart/publish"),
    ]
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {TOKEN}"}
    assert server.requests[0].body == json.loads(SEGMENT.read_text())
    assert server.requests[1].body == json.loads(WIN_BACK.read_text())


def test_invalid_files_are_reported_locally_and_the_others_still_published(
    api: tuple[LoopbackApi, FakeApi], tmp_path: Path
) -> None:
    server, _ = api
    broken = tmp_path / "broken.json"
    document = json.loads(CART.read_text())
    document["start"] = "nowhere"
    broken.write_text(json.dumps(document))
    not_json = tmp_path / "not.json"
    not_json.write_text("{ nope")

    result = publish(server.url, broken, not_json, WIN_BACK)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{broken}: start: unknown node 'nowhere'" in lines
    assert any(line.startswith(f"{not_json}: $: invalid JSON at line 1") for line in lines)
    assert lines[-1] == f"{WIN_BACK}: published win-back v1"
    assert [r.path for r in server.requests] == [
        "/v1/journeys/win-back",
        "/v1/journeys/win-back/publish",
    ]


def test_api_errors_are_printed_with_their_details_and_fail_the_run(
    api: tuple[LoopbackApi, FakeApi],
) -> None:
    server, fake = api
    fake.refuse["win-back"] = (
        422,
        error_body(
            "invalid_journey",
            "the journey is not valid",
            [{"path": "entry.segment", "message": "unknown segment 'inactive-7d'"}],
        ),
    )

    result = publish(server.url, WIN_BACK, CART)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{WIN_BACK}: the journey is not valid (HTTP 422 invalid_journey)",
        f"{WIN_BACK}: entry.segment: unknown segment 'inactive-7d'",
        f"{CART}: published abandoned-cart v1",
    ]
    assert ("POST", "/v1/journeys/win-back/publish") not in [
        (r.method, r.path) for r in server.requests
    ]


def test_a_refused_token_is_an_api_error(api: tuple[LoopbackApi, FakeApi]) -> None:
    server, fake = api
    fake.refuse["abandoned-cart"] = (401, error_body("unauthorized", "invalid admin token"))
    result = publish(server.url, CART)
    assert result.returncode == 1
    assert result.stdout == f"{CART}: invalid admin token (HTTP 401 unauthorized)\n"


def test_without_the_admin_token_nothing_is_sent(api: tuple[LoopbackApi, FakeApi]) -> None:
    server, _ = api
    result = publish(server.url, CART, token=None)
    assert result.returncode == 2
    assert "journeys: publishing needs JOURNEYS_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.requests == []


def test_an_unreachable_api_says_where_it_looked() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = publish(f"http://127.0.0.1:{port}", CART)
    assert result.returncode == 2
    assert f"journeys: cannot reach the API at http://127.0.0.1:{port} (JOURNEYS_API_URL)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr

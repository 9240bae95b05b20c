"""The placeholder designer page, run by Streamlit's app tester against a loopback API."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from journeys.cli import designer_argv
from tests.conftest import run_journeys
from tests.journeys.loopback import LoopbackApi, Request, error_body

APP = Path(__file__).parents[2] / "journey_designer" / "app.py"
JOURNEYS = [
    {
        "id": "abandoned-cart",
        "name": "Abandoned cart recovery",
        "status": "live",
        "version": 3,
        "updated_at": "2025-01-02T03:04:05Z",
    },
    {
        "id": "onboarding",
        "name": "New user onboarding",
        "status": "draft",
        "version": None,
        "updated_at": "2025-01-01T00:00:00Z",
    },
]


def serve_journeys(request: Request) -> tuple[int, Any]:
    if request.headers.get("authorization") != "Bearer admin":
        return 401, error_body("unauthorized", "invalid admin token")
    if (request.method, request.path) == ("GET", "/v1/journeys"):
        return 200, JOURNEYS
    return 404, error_body("not_found", "no such thing")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackApi]:
    with LoopbackApi(serve_journeys) as server:
        monkeypatch.setenv("JOURNEYS_API_URL", server.url)
        monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "admin")
        monkeypatch.setenv("JOURNEYS_TEMPORAL_UI_URL", "http://127.0.0.1:8233")
        yield server


def run_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def test_lists_the_journeys_with_status_and_version(api: LoopbackApi) -> None:
    app = run_app()
    assert app.title[0].value == "journeys designer"
    assert "later release" in app.info[0].value
    assert not app.error
    table = app.dataframe[0].value
    assert list(table["id"]) == ["abandoned-cart", "onboarding"]
    assert list(table["status"]) == ["live", "draft"]
    assert table["version"].iloc[0] == 3
    assert table["runs"].iloc[0] == (
        "http://127.0.0.1:8233/namespaces/default/workflows?query=JourneyId%3D%27abandoned-cart%27"
    )
    assert api.requests[0].headers["authorization"] == "Bearer admin"


def test_a_refused_token_is_a_message(api: LoopbackApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "wrong")
    app = run_app()
    assert "refused the admin token" in app.error[0].value
    assert not app.dataframe


def test_an_unreachable_api_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("JOURNEYS_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "admin")
    app = run_app()
    assert f"cannot reach the API at http://127.0.0.1:{port}" in app.error[0].value
    assert "journeys up" in app.error[0].value


def test_without_the_admin_token_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_ADMIN_TOKEN", raising=False)
    app = run_app()
    assert "JOURNEYS_ADMIN_TOKEN is not set" in app.error[0].value


def test_no_journeys_yet_says_how_to_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackApi(lambda request: (200, [])) as server:
        monkeypatch.setenv("JOURNEYS_API_URL", server.url)
        monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "admin")
        app = run_app()
    assert "journeys publish" in app.markdown[0].value


def test_journeys_designer_without_the_admin_token_refuses_to_start() -> None:
    result = run_journeys("designer", "--port", "1", clean=True)
    assert result.returncode == 2
    assert "journeys: JOURNEYS_ADMIN_TOKEN is not set: the designer needs" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_designer_command_line_serves_streamlit_headless_on_loopback() -> None:
    argv = designer_argv(8765)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == APP
    assert argv[5:] == [
        "--server.port", "8765",
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip

"""Worker tuning and metrics come from settings, and bad ones stop the worker with a reason."""

from __future__ import annotations

import socket

import pytest

from journeys.errors import ConfigurationError
from journeys.settings import Settings, load_settings
from worker.main import Tuning, serve_metrics


def test_tuning_comes_from_the_settings() -> None:
    settings = Settings(
        JOURNEYS_WORKER_MAX_CONCURRENT_ACTIVITIES="64",
        JOURNEYS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS="20",
        JOURNEYS_WORKER_CACHE_SIZE="0",
    )
    assert Tuning.from_settings(settings) == Tuning(64, 20, 0)
    assert Tuning.from_settings(Settings()) == Tuning()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("JOURNEYS_WORKER_MAX_CONCURRENT_ACTIVITIES", "0", "greater than 0"),
        ("JOURNEYS_WORKER_CACHE_SIZE", "lots", "valid integer"),
        ("JOURNEYS_WORKER_METRICS", "9464", "expected host:port"),
        ("JOURNEYS_WORKER_METRICS", "0.0.0.0:99999", "expected host:port"),
        ("JOURNEYS_LOG_LEVEL", "chatty", "expected DEBUG, INFO"),
    ],
)
def test_bad_worker_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"{variable}: .*{says}"):
        load_settings()


def test_metrics_on_a_taken_port_are_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigurationError, match=f"cannot serve worker metrics on {address}"):
            serve_metrics(address)

"""Fixtures of the reliability suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database for processes the test starts: PostgreSQL when the tests have one
    (as in production), else a SQLite file."""
    if os.environ.get("JOURNEYS_TEST_POSTGRES_URL"):
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'journeys.db'}"

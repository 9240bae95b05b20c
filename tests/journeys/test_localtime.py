"""Local-time arithmetic: frequency-cap periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from journeys.localtime import period_start

PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")


def test_whole_days_are_calendar_days_in_the_users_zone() -> None:
    now = datetime(2025, 3, 1, 22, 30, tzinfo=UTC)  # 23:30 in Paris, 07:30 next day in Tokyo
    assert period_start(now, timedelta(days=1), PARIS) == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)
    assert period_start(now, timedelta(days=1), TOKYO) == datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
    week = period_start(now, timedelta(weeks=1), PARIS)
    assert week == datetime(2025, 2, 22, 23, 0, tzinfo=UTC)  # today and the six days before


def test_shorter_periods_roll_back_from_now() -> None:
    now = datetime(2025, 3, 1, 22, 30, tzinfo=UTC)
    assert period_start(now, timedelta(hours=12), PARIS) == now - timedelta(hours=12)
    assert period_start(now, timedelta(hours=36), PARIS) == now - timedelta(hours=36)

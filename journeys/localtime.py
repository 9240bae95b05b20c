"""Local-time arithmetic for delays and quiet hours, as pure functions of `now`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from journeys.durations import as_written
from journeys.model import WEEKDAYS, DelayNode, QuietHours, Weekday, find_zone

ACTIVE_HOUR_HISTORY = timedelta(days=90)
"""How far back send-time optimisation looks for the hour a user is most active."""
ACTIVE_HOUR_MIN_EVENTS = 5
"""Fewer events than this in that history say too little: the fallback time applies."""


def parse_clock(text: str) -> time:
    """`"HH:MM"` as a time of day."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def user_timezone(choice: str, traits: dict[str, Any], journey_timezone: str) -> ZoneInfo:
    """The zone `choice` names; `"user"` is the `timezone` trait, else the journey's zone."""
    if choice != "user":
        return ZoneInfo(choice)
    trait = traits.get("timezone")
    # A bad trait must not stall the journey: fall back to the journey's zone.
    found = find_zone(trait) if isinstance(trait, str) else None
    return found or ZoneInfo(journey_timezone)


def next_local_time(
    now: datetime, clock: time, zone: ZoneInfo, weekdays: list[Weekday] | None = None
) -> datetime:
    """The first moment strictly after `now` when the wall clock in `zone` shows `clock`."""
    local_now = now.astimezone(zone)
    for days in range(8):
        day = local_now.date() + timedelta(days=days)
        if weekdays is not None and WEEKDAYS[day.weekday()] not in weekdays:
            continue
        candidate = datetime.combine(day, clock, tzinfo=zone)
        if candidate > local_now:
            return candidate.astimezone(now.tzinfo)
    raise AssertionError("a weekday within eight days always matches")


def quiet_hours_end(now: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around `now` end, or None when `now` is outside them."""
    start, end = parse_clock(quiet.start), parse_clock(quiet.end)
    local = now.astimezone(zone).time()
    if start == end:
        return None
    inside = start <= local < end if start < end else (local >= start or local < end)
    return next_local_time(now, end, zone) if inside else None


def period_start(now: datetime, length: timedelta, zone: ZoneInfo) -> datetime:
    """Where a period of `length` that ends `now` begins, in UTC.

    A whole number of days counts calendar days in `zone` (today and the days before it),
    as people count "3 a day"; a shorter or uneven period rolls back from `now`.
    """
    days, rest = divmod(length, timedelta(days=1))
    if rest:
        return now - length
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time(), tzinfo=zone).astimezone(UTC)


def delay_summary(node: DelayNode, ends: datetime, zone: ZoneInfo | None) -> str:
    """How a timer names a delay ending at `ends`: `4h delay`, or the local time it ends in
    `zone` (`until tue 10:00 Europe/London`; the zone of a delay `until` a time)."""
    if node.duration is not None:
        return f"{as_written(node.duration)} delay"
    assert node.until is not None  # without a duration, a delay waits until a time
    assert zone is not None
    local = ends.astimezone(zone)
    day = f"{WEEKDAYS[local.weekday()]} " if node.until.weekdays else ""
    return f"until {day}{local:%H:%M} {zone}"

"""Durations in both notations of the journey format: `"90s"`, `"24h"`, `"7d"` or ISO-8601."""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=365)

_SHORT = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError with a readable message when it is not one."""
    short = _SHORT.match(text)
    iso = None if short or text.strip().upper().endswith("T") else _ISO.match(text.strip().upper())
    if short:
        seconds = float(int(short.group(1)) * _UNIT_SECONDS[short.group(2)])
    elif iso and any(iso.groupdict().values()):
        parts = {unit: float(value) for unit, value in iso.groupdict().items() if value}
        seconds = sum(parts.get(unit, 0.0) * _UNIT_SECONDS[unit] for unit in "wdhms")
    else:
        raise ValueError(
            f"bad duration '{text}': use <n><unit> with unit s, m, h, d or w "
            "(e.g. '24h'), or ISO-8601 (e.g. 'PT24H')"
        )
    # Compared as a number first: a huge value would overflow timedelta.
    if seconds <= 0:
        raise ValueError(f"bad duration '{text}': must be greater than 0")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"bad duration '{text}': must be at most 365 days")
    return timedelta(seconds=seconds)


def as_written(text: str) -> str:
    """A duration for people to read (a timer's summary): as its author wrote it (`24h`), an
    ISO-8601 one in that notation too (`PT1H30M` → `1h 30m`)."""
    if not text.strip().upper().startswith("P"):
        return text.strip()
    rest = parse_duration(text).total_seconds()
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count:g}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return " ".join(parts)

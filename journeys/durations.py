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
    if short:
        value = timedelta(seconds=int(short.group(1)) * _UNIT_SECONDS[short.group(2)])
    else:
        iso = _ISO.match(text.strip().upper())
        if not iso or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
            raise ValueError(
                f"bad duration {text!r}: use <n><unit> with unit s, m, h, d or w "
                "(e.g. '24h'), or ISO-8601 (e.g. 'PT24H')"
            )
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        value = timedelta(
            weeks=parts.get("w", 0),
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    if value <= timedelta(0):
        raise ValueError(f"bad duration {text!r}: must be greater than 0")
    if value > MAX_DURATION:
        raise ValueError(f"bad duration {text!r}: must be at most 365 days")
    return value


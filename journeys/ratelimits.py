"""Send rates: `"50/s"`, `"600/m"`, `"1000/h"`: at most that many messages in any window of that
length, across every worker (`journeys.store.ratelimits` keeps the count)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
_WINDOWS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1)}
MAX_COUNT = 1_000_000
"""More than this in one window is no limit anyone needs, and would make the count's log huge."""


@dataclass(frozen=True)
class Rate:
    """At most `count` sends in any `window`; `label` as written in the settings (`20/s`)."""

    count: int
    window: timedelta
    label: str

    @property
    def spacing(self) -> timedelta:
        """The time one send takes of the window: how far apart queued sends are woken."""
        return self.window / self.count


def parse_rate(text: str) -> Rate:
    """Parse `N/s`, `N/m` or `N/h`; raise ValueError with a readable message when it is not."""
    found = _RATE.match(text)
    if found is None:
        raise ValueError(f"bad rate '{text}': use <count>/<s, m or h>, e.g. '20/s'")
    count = int(found.group(1))
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"bad rate '{text}': the count must be from 1 to {MAX_COUNT}")
    unit = found.group(2)
    return Rate(count=count, window=_WINDOWS[unit], label=f"{count}/{unit}")


def _check_rate(text: str) -> str:
    return parse_rate(text).label


RateText = Annotated[str, AfterValidator(_check_rate)]
"""A rate as settings hold it, normalised (`" 20 / s "` → `"20/s"`); `parse_rate` reads it."""

"""Event retention: which routed events may be deleted, given `events_retention_days` and the
event windows that live journeys and segments still read.

An event is read again after it was routed only through a window over the user's past events:

- an `event_count` condition (with or without `within`) anywhere in a segment, or in a journey
  a run may still evaluate: its entry `where` and `audience`, exit rules, goal, branch paths
  and wait paths, and inside another `event_count`'s `where`;
- a delay `until` the `optimal` time, which looks at the user's events of the last
  `ACTIVE_HOUR_HISTORY` (send-time optimisation), whatever their name.

The plan keeps, for every event name, the longest of the retention period and every window over
that name (or over every name, `"*"`); a window without `within` keeps its events for good.
Unrouted events are not the plan's business: the store never offers them for deletion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Field

from journeys.localtime import ACTIVE_HOUR_HISTORY
from journeys.model import (
    Condition,
    DelayNode,
    EventCountCondition,
    Journey,
    to_timedelta,
)
from journeys.validation import conditions_of, leaf_conditions

RETENTION_DAYS = 400
"""How long routed events are kept by default (`events_retention_days`)."""
RETENTION_DAYS_MAX = 3650
"""The longest retention the setting takes: ten years."""
RetentionDays = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=RETENTION_DAYS_MAX,
        description=(
            f"days a routed event is kept (1 to {RETENTION_DAYS_MAX}); events a live journey's "
            "or a segment's window still reads are kept longer"
        ),
    ),
]
EVERY_EVENT = "*"
"""An `event_count` over every event name."""

Windows = dict[str, timedelta | None]
"""Event name (or `EVERY_EVENT`) → the longest window over it in use; None: no bound."""


@dataclass(frozen=True)
class RetentionPlan:
    """What one retention run deletes: routed events older than `cutoff`, except those named
    in `kept`, which have a cutoff of their own (None: kept for good)."""

    cutoff: datetime | None
    """None when a window in use reads every event with no bound: nothing is deleted."""
    kept: Mapping[str, datetime | None] = field(default_factory=dict)

    @property
    def kept_for_good(self) -> list[str]:
        """The names a window in use reads with no bound."""
        return sorted(name for name, cutoff in self.kept.items() if cutoff is None)

    def expired(self, name: str | None, timestamp: datetime) -> bool:
        """Whether an event of this name and time may go."""
        if self.cutoff is None:
            return False
        cutoff = self.kept[name] if name is not None and name in self.kept else self.cutoff
        return cutoff is not None and timestamp < cutoff


def retention_plan(days: int, now: datetime, windows: Windows) -> RetentionPlan:
    """The plan at `now` for a retention of `days` with these windows in use."""
    base = timedelta(days=days)
    if EVERY_EVENT in windows:
        every = windows[EVERY_EVENT]
        if every is None:
            return RetentionPlan(cutoff=None)
        base = max(base, every)
    kept = {
        name: None if window is None else now - window
        for name, window in windows.items()
        if name != EVERY_EVENT and (window is None or window > base)
    }
    return RetentionPlan(cutoff=now - base, kept=kept)


def windows_in_use(journeys: Iterable[Journey], segments: Iterable[Condition]) -> Windows:
    """The longest window over each event name that these journeys (the versions runs may
    still evaluate) and segment conditions read."""
    windows: Windows = {}
    for name, window in _each_window(journeys, segments):
        if name not in windows:
            windows[name] = window
        else:
            known = windows[name]
            windows[name] = None if known is None or window is None else max(known, window)
    return windows


def _each_window(
    journeys: Iterable[Journey], segments: Iterable[Condition]
) -> Iterator[tuple[str, timedelta | None]]:
    conditions: list[Condition] = list(segments)
    for journey in journeys:
        conditions.extend(condition for _, condition in conditions_of(journey))
        for node in journey.nodes.values():
            if isinstance(node, DelayNode) and node.until and node.until.time == "optimal":
                yield EVERY_EVENT, ACTIVE_HOUR_HISTORY
    for condition in conditions:
        for _, leaf in leaf_conditions("", condition):
            if isinstance(leaf, EventCountCondition):
                count = leaf.event_count
                yield count.event, None if count.within is None else to_timedelta(count.within)

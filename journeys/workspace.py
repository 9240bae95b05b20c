"""Workspace settings: global frequency caps, the default time zone, the global holdout,
channel rate limits and how long events are kept.

They are stored as one store setting per field (`frequency_caps`, `timezone`), so each can be
read on its own; a field never set reads as its default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field

from journeys.holdouts import GLOBAL_HOLDOUT_MAX
from journeys.localtime import period_start
from journeys.model import Channel, Duration, Strict, TimeZoneName, to_timedelta
from journeys.ratelimits import Rate, RateText, parse_rate
from journeys.retention import RETENTION_DAYS, RetentionDays
from journeys.store import CapWindow, Store


class FrequencyCap(Strict):
    """At most `max` non-transactional messages per user per `per`, on `channel` or all."""

    max: Annotated[int, Field(ge=1)]
    per: Duration
    channel: Channel | None = None

    def window(self, now: datetime, zone: ZoneInfo) -> CapWindow:
        """The cap as it applies at `now` to a user in `zone` (see `period_start`)."""
        label = f"{self.max} per {self.per}" + (f" on {self.channel}" if self.channel else "")
        since = period_start(now, to_timedelta(self.per), zone)
        return CapWindow(max=self.max, since=since, channel=self.channel, label=label)


class GlobalHoldout(Strict):
    """A share of all users who get no non-transactional message from any journey."""

    percent: Annotated[
        float,
        Field(
            ge=0,
            le=GLOBAL_HOLDOUT_MAX,
            description="percent of all users held out (0 to 20), chosen by a stable hash",
        ),
    ]


class WorkspaceSettings(Strict):
    """Settings that hold across journeys (HTTP API: `/v1/settings`)."""

    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    timezone: TimeZoneName = "UTC"
    holdout: GlobalHoldout | None = None
    rate_limits: dict[Channel, RateText] = Field(default_factory=dict)
    """The most messages each channel sends, across every worker (`"20/s"`)."""
    events_retention_days: RetentionDays = RETENTION_DAYS
    """Routed events older than this are deleted, unless a window in use still reads them
    (`journeys.retention`)."""

    def rate_limit(self, channel: Channel) -> Rate | None:
        """The channel's rate limit, if it has one."""
        text = self.rate_limits.get(channel)
        return None if text is None else parse_rate(text)


def load_workspace_settings(store: Store) -> WorkspaceSettings:
    """The stored settings, with defaults for those never set."""
    return _from_stored(store.get_settings())


def save_workspace_settings(store: Store, settings: WorkspaceSettings) -> WorkspaceSettings:
    """Replace every workspace setting; the settings as stored."""
    return _from_stored(store.put_settings(settings.model_dump(mode="json", exclude_none=True)))


def _from_stored(stored: dict[str, Any]) -> WorkspaceSettings:
    # The store may hold other settings too; only ours are read.
    values = {name: stored[name] for name in WorkspaceSettings.model_fields if name in stored}
    return WorkspaceSettings.model_validate(values)

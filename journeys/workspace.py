"""Workspace settings: global frequency caps and the default time zone.

They are stored as one store setting per field (`frequency_caps`, `timezone`), so each can be
read on its own; a field never set reads as its default.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from journeys.model import Channel, Duration, Strict, TimeZoneName
from journeys.store import Store


class FrequencyCap(Strict):
    """At most `max` non-transactional messages per user per `per`, on `channel` or all."""

    max: Annotated[int, Field(ge=1)]
    per: Duration
    channel: Channel | None = None


class WorkspaceSettings(Strict):
    """Settings that hold across journeys (HTTP API: `/v1/settings`)."""

    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    timezone: TimeZoneName = "UTC"


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

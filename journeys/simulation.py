"""What a journey simulation is asked and answers (`POST /v1/journeys/{id}/simulate`,
`journeys simulate`): one described user, an entry, events scripted at offsets after entry, a
horizon; the path the user took with its times, and every message rendered.

The `simulator` package runs it; the API, the command line and the designer share these models.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from journeys.model import Channel, Duration, to_timedelta

DEFAULT_HORIZON = "30d"
SIMULATED_USER = "simulated-user"
"""The user id of a simulation whose user has no `id` trait."""

LAST_VERSION = 2**31 - 1
SimulationStatus = Literal["completed", "exited", "active", "not_entered"]


class ScriptedEvent(BaseModel):
    """What the simulated user does `at` after entering: a track `event` (with `properties`),
    or a change of their traits (`traits`, as an identify call makes it)."""

    model_config = ConfigDict(extra="forbid")

    at: Duration = Field(description='after entry: "30m", "2d", "PT1H"')
    event: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] | None = Field(
        default=None, description="traits the user's profile takes then (an identify call)"
    )

    @model_validator(mode="after")
    def _event_or_traits(self) -> ScriptedEvent:
        if (self.event is None) == (self.traits is None):
            raise ValueError("give either event (a track event) or traits (an identify)")
        return self

    @property
    def what(self) -> str:
        """The event's name, or which traits change."""
        return self.event or "traits: " + ", ".join(self.traits or {})


class SimulationRequest(BaseModel):
    """Which version to run, for whom, and what the user does meanwhile."""

    model_config = ConfigDict(extra="forbid")

    version: int | Literal["draft"] = Field(
        default="draft", description='a published version number, or "draft"'
    )
    user: dict[str, Any] = Field(
        default_factory=dict,
        description=f"the user's traits; `id` names the user (default {SIMULATED_USER!r})",
    )
    entry: dict[str, Any] = Field(
        default_factory=dict,
        description="the `entry.*` context: the entry event's properties, or /trigger content",
    )
    events: list[ScriptedEvent] = Field(default_factory=list, max_length=200)
    horizon: Duration = Field(
        default=DEFAULT_HORIZON, description="how long after entry to follow the user (≤ 365d)"
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_or_draft(cls, value: Any) -> Any:
        number = isinstance(value, int) and not isinstance(value, bool)
        if value != "draft" and not (number and 1 <= value <= LAST_VERSION):
            raise ValueError('a published version number (1 or more), or "draft"')
        return value

    @property
    def user_id(self) -> str:
        """The simulated user's id: the `id` trait, else `SIMULATED_USER`."""
        given = self.user.get("id")
        return str(given) if given not in (None, "") else SIMULATED_USER

    @property
    def traits(self) -> dict[str, Any]:
        """The user's traits without `id`."""
        return {name: value for name, value in self.user.items() if name != "id"}

    def within_horizon(self) -> tuple[list[ScriptedEvent], list[ScriptedEvent]]:
        """The scripted events in order of their offsets: those up to the horizon, and those
        beyond it (ignored)."""
        horizon = to_timedelta(self.horizon)
        ordered = sorted(self.events, key=lambda scripted: to_timedelta(scripted.at))
        kept = [e for e in ordered if to_timedelta(e.at) <= horizon]
        return kept, [e for e in ordered if to_timedelta(e.at) > horizon]


class PathStep(BaseModel):
    """A node the user reached, and when (simulated time)."""

    node: str
    at: datetime


class SimulatedMessage(BaseModel):
    """A message node the user reached: what it rendered and whether it would have gone."""

    node: str
    channel: Channel
    at: datetime
    status: Literal["sent", "skipped", "failed"]
    content: dict[str, Any] = Field(description="rendered as the user would receive it")
    skipped: str | None = Field(default=None, description="why it would not be sent")
    failed: str | None = Field(default=None, description="why it could not be delivered")
    variant: str | None = None
    locale: str | None = Field(
        default=None, description="the content's language picked by the `locale` trait"
    )


class SimulationResult(BaseModel):
    """Where the simulated user went, what they got and how the run stood at the horizon."""

    status: SimulationStatus = Field(
        description="completed or exited (the run ended), active (still inside at the "
        "horizon), not_entered (the entry's conditions or limit kept the user out)"
    )
    ended: str | None = Field(
        default=None, description="why the run exited or did not enter (e.g. exit event ...)"
    )
    entered_at: datetime
    horizon_at: datetime
    path: list[PathStep]
    messages: list[SimulatedMessage]
    ended_at: datetime | None = Field(default=None, description="when the run ended, if it did")
    converted_at: datetime | None = Field(default=None, description="when the goal was met")
    variant: str | None = Field(default=None, description="the experiment variant taken")
    ignored_events: list[ScriptedEvent] = Field(
        default_factory=list, description="scripted events beyond the horizon, not delivered"
    )
    duration: float = Field(description="seconds the simulation took (real time)")


def after_entry(span: timedelta) -> str:
    """A time after entry as people write it: `+0s`, `+30m`, `+1d 2h`."""
    seconds = round(span.total_seconds())
    if seconds < 60:
        return f"+{seconds}s"
    minutes = seconds // 60
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "+" + " ".join(parts)

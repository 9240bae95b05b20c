"""What the API asks of the event router (implemented by `api.router.EventRouter`)."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from journeys.errors import JourneysError, NotFound


class TriggerResult(BaseModel):
    """One journey a `POST /trigger` named: the run, and whether it started now."""

    journey_id: str
    workflow_id: str
    started: bool


class NoLiveJourney(NotFound):
    """No live journey enters on that trigger type."""


class Routing(Protocol):
    """Routes stored events to journeys and starts or ends runs on request."""

    def wake(self) -> None:
        """New events are stored: route them soon (returns at once)."""

    async def trigger(
        self, user_id: str, trigger_type: str, content: dict[str, Any]
    ) -> list[TriggerResult]:
        """Start the user in every live journey entered by `trigger_type`.

        Raises `NoLiveJourney` when there is none, `RoutingUnavailable` when Temporal is down.
        """

    async def archive(self, journey_id: str) -> int:
        """Make every user inside the (already archived) journey exit at once; how many."""


class RoutingUnavailable(JourneysError):
    """Temporal cannot be reached now; the request may be retried."""

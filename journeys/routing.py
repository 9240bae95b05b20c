"""What the API asks of the relay, the process that routes events to runs: the contract between
`api/` and `relay/`, kept in the core so that neither imports the other."""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from journeys.broadcasts import Broadcast
from journeys.errors import JourneysError, NotFound
from journeys.settings import Settings
from journeys.store import Store


class TriggerResult(BaseModel):
    """One journey a `POST /trigger` named: the run, and whether it started now."""

    journey_id: str
    workflow_id: str
    started: bool


class NoLiveJourney(NotFound):
    """No live journey enters on that trigger type."""


class Routing(Protocol):
    """Routes stored events to journeys and starts or ends runs (and broadcasts) on request."""

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

    async def start_broadcast(self, broadcast: Broadcast) -> bool:
        """Start the broadcast's workflow; False when a broadcast with its id was started
        before. Raises `RoutingUnavailable` when Temporal is down."""

    async def cancel_broadcast(self, broadcast_id: str) -> None:
        """Tell the broadcast's workflow to stop sending (nothing when it is not running)."""

    async def erase(self, user_id: str) -> int:
        """End every run of the (already suppressed) user, reason `erased`, and wait a while
        for them to end; how many were told. Raises `RoutingUnavailable` when Temporal is
        down."""


class RoutingUnavailable(JourneysError):
    """Temporal cannot be reached now; the request may be retried."""


class RunningRouting(Routing, Protocol):
    """A `Routing` that routes the outbox while `run` is awaited (until cancelled)."""

    async def run(self) -> None:
        """Route stored events until cancelled."""


class RoutingFactory(Protocol):
    """Builds the relay an API process runs beside itself, on the app's store and metrics."""

    def __call__(
        self, settings: Settings, store: Store, registry: CollectorRegistry | None = None
    ) -> RunningRouting:
        """The relay for these settings."""

"""The project's exceptions, all rooted in one class.

    JourneysError
    ├── ConfigurationError      settings missing or invalid at start-up
    ├── InvalidJourney          a journey document failed validation (carries the problems)
    ├── NotFound                a journey, version, user, segment or template does not exist
    │   └── NoLiveJourney       (journeys.routing) no live journey enters on a trigger type
    ├── Conflict                the operation does not fit the current state (e.g. publish archived)
    ├── RoutingUnavailable      (journeys.routing) Temporal cannot be reached now; retry later
    ├── TemplateError           (journeys.templates) a template does not parse or render
    ├── InvalidLink             (journeys.signing) a link not signed with our secret
    ├── DeliveryError           (activities.channels) a provider did not take a message
    │   ├── PermanentDeliveryError   it never will (4xx, invalid address, refused target)
    │   └── TransientDeliveryError   it may later (timeout, 5xx, 429): retry with backoff
    ├── ApiError                (api_client) the API answered with an error status
    ├── ApiUnreachable          (api_client) no answer from the API
    └── StackFailed             (cli.up) the local stack could not start, or a child died

Edges (CLI, API, designer) map these to exit codes, HTTP statuses and messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from journeys.validation import Problem


class JourneysError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigurationError(JourneysError):
    """A setting is missing or invalid; the component cannot start."""


class InvalidJourney(JourneysError):
    """A journey document is invalid; `problems` lists every problem with its JSON path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


class NotFound(JourneysError):
    """The named object does not exist."""


class Conflict(JourneysError):
    """The operation does not fit the object's current state."""


class InvalidLink(JourneysError):
    """A signed link (unsubscribe, click, open) whose signature does not verify, or that is
    malformed."""

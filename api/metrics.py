"""Prometheus metrics of the API, in a registry of each app's own (never the global one, so
several apps in one process, as in tests, count separately)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    """The API's counters; other components (the event router) add theirs to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_accepted = Counter(
            "journeys_events_accepted",
            "Events stored by ingest, by type",
            ["type"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "journeys_events_duplicate",
            "Events answered but not stored again: their messageId was already stored",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "journeys_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware counting every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self._app = app
        self._counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, then count it."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception escaped

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            # The route template ("/v1/journeys/{journey_id}"), never the raw path, so that
            # user and journey ids cannot blow up the number of series.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._counter.labels(scope["method"], route, str(status)).inc()

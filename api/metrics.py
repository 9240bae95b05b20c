"""Prometheus metrics of the API, in a registry of each app's own (never the global one, so
several apps in one process, as in tests, count separately).

    journeys_events_accepted_total{type}     ingest             journeys_http_requests_total
    journeys_events_duplicate_total          ingest             {method, route, status}
    journeys_events_routed_total             event router       journeys_routing_lag_seconds
    journeys_events_unrouted                 store, at scrape   journeys_deliveries
    journeys_inbox_streams                   live inbox feed    {channel, status}: store, at scrape
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeys.store import Store

logger = logging.getLogger(__name__)


class ApiMetrics:
    """The API's counters, and the store's counts when given a store; other components (the
    event router) add theirs to `registry`."""

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        if store is not None:
            self.registry.register(StoreCounts(store))
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

    def count_streams(self, open_streams: Callable[[], int]) -> None:
        """Report how many live inbox streams are open (`open_streams()` at each scrape)."""
        gauge = Gauge(
            "journeys_inbox_streams",
            "Live in-app inbox streams (Server-Sent Events) open on this API process",
            registry=self.registry,
        )
        gauge.set_function(open_streams)


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


class StoreCounts(Collector):
    """Counts read from the store when Prometheus scrapes: deliveries by channel and status, and
    the events waiting in the outbox.

    One grouped count each; the answer is reused for `max_age` seconds, so frequent scrapes and
    many API replicas cost the database little. A store that does not answer leaves these
    series out of the scrape (and is logged) rather than failing it.
    """

    def __init__(
        self, store: Store, max_age: float = 15.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._counted_at: float | None = None
        self._deliveries: dict[tuple[str, str], int] = {}
        self._unrouted = 0

    def collect(self) -> Iterator[Metric]:
        """The gauges, counted now or at most `max_age` seconds ago."""
        with self._lock:
            now = self._clock()
            if self._counted_at is None or now - self._counted_at >= self._max_age:
                try:
                    self._deliveries = self._store.delivery_counts()
                    self._unrouted = self._store.unrouted_count()
                except Exception:
                    logger.warning("cannot count deliveries for /metrics", exc_info=True)
                    return
                self._counted_at = now
            deliveries, unrouted = dict(self._deliveries), self._unrouted
        family = GaugeMetricFamily(
            "journeys_deliveries",
            "Deliveries in the store, by channel and status",
            labels=["channel", "status"],
        )
        for (channel, status), count in sorted(deliveries.items()):
            family.add_metric([channel, status], count)
        yield family
        yield GaugeMetricFamily(
            "journeys_events_unrouted",
            "Events stored but not yet routed to journeys (the outbox backlog)",
            value=unrouted,
        )

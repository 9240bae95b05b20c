"""What operators watch: the API's store-backed metrics and the JSON log lines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from api.app import create_app
from api.metrics import StoreCounts
from journeys.logs import JsonFormatter, journey_ids
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY
from tests.factories import append_event

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def deliver(store: Store, key: str, channel: str, status: str | None) -> None:
    """A delivery on `channel`, finished with `status` (None: left pending)."""
    store.begin_delivery(
        idempotency_key=key, journey_id="welcome", version=1, node_id=key, user_id="u1",
        channel=channel, variant=None, content={},
    )  # fmt: skip
    if status == "sent":
        store.finish_delivery(key, "sent")
    elif status == "failed":
        store.finish_delivery(key, "failed", "refused")


async def test_metrics_count_deliveries_by_channel_and_status_and_the_outbox(store: Store) -> None:
    deliver(store, "a", "email", "sent")
    deliver(store, "b", "email", "sent")
    deliver(store, "c", "email", "failed")
    deliver(store, "d", "push", None)
    for message_id in ("m1", "m2"):
        append_event(
            store, message_id=message_id, user_id="u1", type="track", name="Viewed",
            properties={}, timestamp=T0,
        )  # fmt: skip
    settings = Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )
    app = create_app(settings, store=store, routing=RecordingRouting())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeys.test") as http:
        text = (await http.get("/metrics")).text
    assert 'journeys_deliveries{channel="email",status="sent"} 2.0' in text
    assert 'journeys_deliveries{channel="email",status="failed"} 1.0' in text
    assert 'journeys_deliveries{channel="push",status="pending"} 1.0' in text
    assert "journeys_events_unrouted 2.0" in text


def test_store_counts_are_reused_for_a_while_and_a_silent_store_fails_nothing(
    store: Store,
) -> None:
    now = [0.0]
    registry = CollectorRegistry()
    registry.register(StoreCounts(store, max_age=15, clock=lambda: now[0]))
    deliver(store, "a", "sms", "sent")
    assert b'journeys_deliveries{channel="sms",status="sent"} 1.0' in generate_latest(registry)
    deliver(store, "b", "sms", "sent")
    now[0] = 14.0
    assert b'status="sent"} 1.0' in generate_latest(registry)  # the answer of 14 s ago
    now[0] = 15.0
    assert b'status="sent"} 2.0' in generate_latest(registry)
    broken = CollectorRegistry()
    broken.register(StoreCounts(Store.__new__(Store)))  # never opened: every query raises
    assert b"journeys_deliveries" not in generate_latest(broken)


def record(**extra: object) -> logging.LogRecord:
    """A log record as a logger would make it, with `extra` attributes."""
    made = logging.makeLogRecord(
        {"name": "journeys.test", "levelname": "WARNING", "msg": "sent %s", "args": ("x",)}
    )
    made.created = T0.timestamp()
    made.__dict__.update(extra)
    return made


def test_log_lines_are_json_with_the_ids_they_know() -> None:
    formatter = JsonFormatter()
    plain = json.loads(formatter.format(record()))
    assert plain == {
        "time": "2025-03-01T12:00:00.000Z",
        "level": "warning",
        "logger": "journeys.test",
        "message": "sent x",
    }
    given = json.loads(formatter.format(record(journey_id="welcome", user_id="ada")))
    assert (given["journey_id"], given["user_id"]) == ("welcome", "ada")
    # What temporalio's activity.logger attaches: the run's ids follow from its workflow id.
    details = {"workflow_id": "journey:welcome:ada:1", "activity_type": "deliver"}
    activity = json.loads(formatter.format(record(temporal_activity=details)))
    assert activity["workflow_id"] == "journey:welcome:ada:1"
    assert (activity["journey_id"], activity["user_id"]) == ("welcome", "ada:1")
    assert activity["activity"] == "deliver"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = json.loads(formatter.format(record(exc_info=sys.exc_info())))
    assert failed["exception"].endswith("RuntimeError: boom")
    assert journey_ids("journeys-segment-sweep") == {}

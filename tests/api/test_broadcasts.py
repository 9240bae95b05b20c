"""Broadcasts through the HTTP API: a valid one is recorded and its workflow started once;
every bad input is refused with its status and located problems; progress comes from the
broadcast's deliveries; cancelling marks it and tells its workflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from journeys.routing import RoutingUnavailable
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ApiClient, assert_error, paths_of
from tests.factories import broadcast_delivery


def broadcast(broadcast_id: str = "spring-sale", **changes: Any) -> dict[str, Any]:
    """A valid broadcast body to the `vips` segment."""
    return {
        "id": broadcast_id,
        "segment": "vips",
        "message": {
            "channel": "email",
            "content": {"subject": "Spring sale, {{ user.first_name }}", "body": "20% off"},
        },
        "rate": "200/s",
        **changes,
    }


@pytest.fixture(autouse=True)
def vips(store: Store) -> None:
    """The `vips` segment."""
    store.put_segment("vips", "VIPs", {"field": "user.plan", "op": "eq", "value": "vip"})


async def test_a_broadcast_is_started_once_and_shows_its_progress(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    created = await api.admin("POST", "/v1/broadcasts", broadcast())
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("id", "segment", "status", "rate", "workflow_id")} == {
        "id": "spring-sale",
        "segment": "vips",
        "status": "sending",
        "rate": "200/s",
        "workflow_id": "broadcast:spring-sale",
    }
    assert (body["targeted"], body["sent"], body["skipped"], body["failed"]) == (0, 0, 0, 0)
    [started] = routing.broadcasts
    assert (started.id, started.message.channel) == ("spring-sale", "email")

    # Progress is the broadcast's deliveries, by status.
    for user, status in (("a", "sent"), ("b", "sent"), ("c", "skipped")):
        broadcast_delivery(store, "spring-sale", user, status)  # type: ignore[arg-type]
    store.set_broadcast_status("spring-sale", "sending", targeted=4)
    shown = (await api.admin("GET", "/v1/broadcasts/spring-sale")).json()
    assert {k: shown[k] for k in ("targeted", "sent", "skipped", "failed", "pending")} == {
        "targeted": 4,
        "sent": 2,
        "skipped": 1,
        "failed": 0,
        "pending": 0,
    }
    listed = (await api.admin("GET", "/v1/broadcasts")).json()
    assert [b["id"] for b in listed] == ["spring-sale"]
    # No journey counts a broadcast's messages.
    assert store.message_counts("spring-sale") == {}


async def test_a_broadcast_at_a_later_time_is_scheduled(api: ApiClient) -> None:
    at = (datetime.now(UTC) + timedelta(days=365)).astimezone(timezone(timedelta(hours=1)))
    created = await api.admin("POST", "/v1/broadcasts", broadcast(at=at.isoformat()))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "scheduled"
    assert datetime.fromisoformat(created.json()["at"]) == at
    # A few minutes ago (a form filled in slowly): sent at once.
    just = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    created = await api.admin("POST", "/v1/broadcasts", broadcast("now-sale", at=just))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "sending"


@pytest.mark.parametrize(
    "at",
    [
        timedelta(days=367),  # a year and more ahead
        timedelta(days=365 * 1000),  # thousands of years
        -timedelta(hours=2),  # in the past
    ],
)
async def test_an_at_too_far_ahead_or_in_the_past_is_422_located(
    api: ApiClient, routing: RecordingRouting, at: timedelta
) -> None:
    body = broadcast(at=(datetime.now(UTC) + at).isoformat())
    error = assert_error(await api.admin("POST", "/v1/broadcasts", body), 422, "validation_error")
    assert paths_of(error) == ["at"], error
    assert routing.broadcasts == []


async def test_an_id_used_before_is_409(api: ApiClient, routing: RecordingRouting) -> None:
    assert (await api.admin("POST", "/v1/broadcasts", broadcast())).status_code == 201
    again = await api.admin("POST", "/v1/broadcasts", broadcast())
    assert_error(again, 409, "conflict")
    assert len(routing.broadcasts) == 1  # no second workflow asked for

    # Temporal knows the id though the store does not (a crash after the start): 409 too.
    routing.broadcast_answer = False
    assert_error(await api.admin("POST", "/v1/broadcasts", broadcast("other")), 409, "conflict")


async def test_temporal_down_is_503_and_records_nothing(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    routing.broadcast_answer = RoutingUnavailable("connection refused")
    response = await api.admin("POST", "/v1/broadcasts", broadcast())
    assert_error(response, 503, "temporal_unavailable")
    assert store.get_broadcast("spring-sale") is None
    routing.broadcast_answer = True
    assert (await api.admin("POST", "/v1/broadcasts", broadcast())).status_code == 201


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (broadcast(segment="nobody"), "segment"),
        (broadcast(rate="fast"), "rate"),
        (broadcast(rate="0/s"), "rate"),
        (broadcast(id="Not A Slug"), "id"),
        (broadcast(at="tomorrow"), "at"),
        (broadcast(at="2030-01-01T09:00:00"), "at"),  # no offset: which 9:00?
        (broadcast(message={"channel": "email", "content": {"body": "no subject"}}), None),
        (broadcast(message={"channel": "fax", "content": {"body": "Hi"}}), "message.channel"),
        (
            broadcast(message={"channel": "sms", "content": {"body": "{{ user.name | nope }}"}}),
            "message.content.body",
        ),
        (broadcast(message={"channel": "sms", "template": "missing"}), "message.template"),
        (broadcast(message={"channel": "sms"}), "message"),
        (broadcast(quiet_hours={"start": "22:00", "end": "25:00"}), "quiet_hours.end"),
        (broadcast(extra=True), "extra"),
    ],
)
async def test_bad_broadcasts_are_422_located(
    api: ApiClient, routing: RecordingRouting, body: dict[str, Any], path: str | None
) -> None:
    error = assert_error(await api.admin("POST", "/v1/broadcasts", body), 422, "validation_error")
    assert paths_of(error) == [path or "message.content.subject"], error
    assert routing.broadcasts == []


async def test_unknown_broadcasts_are_404(api: ApiClient) -> None:
    assert_error(await api.admin("GET", "/v1/broadcasts/nothing"), 404, "not_found")
    assert_error(await api.admin("POST", "/v1/broadcasts/nothing/cancel"), 404, "not_found")


async def test_cancel_marks_the_broadcast_and_tells_its_workflow(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    await api.admin("POST", "/v1/broadcasts", broadcast())
    cancelled = await api.admin("POST", "/v1/broadcasts/spring-sale/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert routing.cancelled == ["spring-sale"]
    # Ended: cancelling again is a conflict, and the workflow's own close keeps the status.
    assert_error(await api.admin("POST", "/v1/broadcasts/spring-sale/cancel"), 409, "conflict")
    store.set_broadcast_status("spring-sale", "completed", targeted=3)
    shown = (await api.admin("GET", "/v1/broadcasts/spring-sale")).json()
    assert (shown["status"], shown["targeted"]) == ("cancelled", 3)


async def test_broadcasts_need_the_admin_token(api: ApiClient) -> None:
    response = await api.http.post("/v1/broadcasts", json=broadcast())
    assert_error(response, 401, "unauthorized")

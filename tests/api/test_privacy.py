"""Erasure and export of one end user through the API (the relay's side is a recording
`Routing`; the runs ending through Temporal are tested end to end)."""

from __future__ import annotations

import logging

import pytest

from journeys.routing import RoutingUnavailable
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ApiClient, assert_error, bearer
from tests.factories import rows_holding

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

ADA = "ada-7781"
ADDRESS = "ada.7781@example.org"


async def _known_user(api: ApiClient) -> None:
    identify = {"userId": ADA, "traits": {"email": ADDRESS, "plan": "pro"}}
    assert (await api.ingest("/v1/identify", identify)).status_code == 200
    track = {"userId": ADA, "event": "Cart Updated", "properties": {"sku": "ABC"}}
    assert (await api.ingest("/v1/track", track)).status_code == 200


async def test_erasure_then_404(
    api: ApiClient, store: Store, routing: RecordingRouting, caplog: pytest.LogCaptureFixture
) -> None:
    await _known_user(api)
    routing.erase_answer = 1
    response = await api.admin("DELETE", f"/v1/users/{ADA}")
    assert response.status_code == 202, response.text
    assert response.json() == {"user_id": ADA, "runs_ended": 1}
    assert routing.erased == [ADA]
    assert_error(await api.admin("GET", f"/v1/users/{ADA}"), 404, "not_found")
    assert_error(await api.admin("GET", f"/v1/users/{ADA}/export"), 404, "not_found")
    assert rows_holding(store, ADA, ADDRESS) == []

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = await api.admin("DELETE", f"/v1/users/{ADA}")
    assert_error(again, 404, "not_found")
    assert routing.erased == [ADA]  # nothing to end the second time
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_later_events_are_dropped_unless_the_user_consents(
    api: ApiClient, store: Store
) -> None:
    await _known_user(api)
    assert (await api.admin("DELETE", f"/v1/users/{ADA}")).status_code == 202
    late = {"userId": ADA, "event": "Cart Updated", "messageId": "late"}
    assert (await api.ingest("/v1/track", late)).status_code == 200  # accepted, dropped
    batch = {"batch": [{"type": "identify", "userId": ADA, "traits": {"email": ADDRESS}}]}
    assert (await api.ingest("/v1/batch", batch)).status_code == 200
    assert_error(await api.admin("GET", f"/v1/users/{ADA}"), 404, "not_found")
    assert rows_holding(store, ADA, ADDRESS) == []

    consent = {"userId": ADA, "traits": {"plan": "free"}, "context": {"consent": True}}
    assert (await api.ingest("/v1/identify", consent)).status_code == 200
    user = await api.admin("GET", f"/v1/users/{ADA}")
    assert user.status_code == 200
    assert user.json()["traits"] == {"plan": "free"}
    assert (await api.ingest("/v1/track", late)).status_code == 200
    events = (await api.admin("GET", f"/v1/users/{ADA}/events")).json()
    assert events[0]["message_id"] == "late"


async def test_unknown_user_and_credentials(api: ApiClient, routing: RecordingRouting) -> None:
    assert_error(await api.admin("DELETE", "/v1/users/nobody"), 404, "not_found")
    assert_error(await api.admin("GET", "/v1/users/nobody/export"), 404, "not_found")
    assert routing.erased == []
    for method, path in (("DELETE", f"/v1/users/{ADA}"), ("GET", f"/v1/users/{ADA}/export")):
        response = await api.http.request(method, path, headers=bearer("wrong"))
        assert_error(response, 401, "unauthorized")
        assert_error(await api.http.request(method, path), 401, "unauthorized")
    assert_error(await api.admin("DELETE", "/v1/users/a%00b"), 422, "validation_error")


async def test_temporal_down_keeps_the_user_suppressed(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    await _known_user(api)
    routing.erase_answer = RoutingUnavailable("connection refused")
    assert_error(await api.admin("DELETE", f"/v1/users/{ADA}"), 503, "temporal_unavailable")
    assert store.suppressed({ADA}) == {ADA}
    assert (await api.admin("GET", f"/v1/users/{ADA}")).status_code == 200  # not erased yet
    routing.erase_answer = 0
    assert (await api.admin("DELETE", f"/v1/users/{ADA}")).status_code == 202
    assert rows_holding(store, ADA, ADDRESS) == []


async def test_export(api: ApiClient, store: Store) -> None:
    await _known_user(api)
    store.begin_delivery(
        idempotency_key="k1",
        journey_id="cart",
        version=1,
        node_id="hello",
        user_id=ADA,
        channel="in_app",
        variant=None,
        content={"title": "Hi Ada"},
    )
    response = await api.admin("GET", f"/v1/users/{ADA}/export")
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["user_id"] == ADA
    assert export["profile"]["traits"] == {"email": ADDRESS, "plan": "pro"}
    assert [(e["type"], e["name"]) for e in export["events"]] == [
        ("identify", None),
        ("track", "Cart Updated"),
    ]
    assert [(d["channel"], d["content"]) for d in export["deliveries"]] == [
        ("in_app", {"title": "Hi Ada"})
    ]
    assert export["journeys"] == []
    assert export["admissions"] == []

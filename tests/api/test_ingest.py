"""Segment-compatible ingest and `POST /trigger`."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from journeys.routing import NoLiveJourney, RoutingUnavailable, TriggerResult
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import SDK_AUTH, ApiClient, assert_error, paths_of

KB = 1024


async def test_track_is_stored_and_wakes_the_router(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    response = await api.ingest(
        "/v1/track",
        {
            "userId": "u1",
            "event": "Added to Cart",
            "properties": {"total_price": 120},
            "timestamp": "2025-03-01T12:00:00+02:00",
            "messageId": "m-1",
            "context": {"ip": "10.0.0.1"},
            # Segment fields the API accepts and ignores.
            "sentAt": "2025-03-01T12:00:01Z",
            "integrations": {"All": True},
            "channel": "server",
            "version": 2,
            "writeKey": "ignored",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [event] = store.events_for_user("u1")
    assert (event.message_id, event.type, event.name) == ("m-1", "track", "Added to Cart")
    assert event.properties == {"total_price": 120}
    assert event.timestamp == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert event.routed_at is None  # the outbox: routing follows
    assert routing.wakes == 1
    assert store.get_user("u1") is not None  # every event has a profile


async def test_page_screen_and_defaults(api: ApiClient, store: Store) -> None:
    before = datetime.now(UTC)
    await api.ingest("/v1/page", {"anonymousId": "a1", "name": "Pricing", "properties": {"x": 1}})
    await api.ingest("/v1/screen", {"userId": 42, "name": "Home"})
    await api.ingest("/v1/page", {"userId": "u2", "timestamp": "2025-03-01T12:00:00"})
    [page] = store.events_for_user("anon:a1")
    assert (page.type, page.name, page.properties) == ("page", "Pricing", {"x": 1})
    assert before <= page.timestamp <= datetime.now(UTC)  # missing timestamp: now
    assert len(page.message_id) == 36  # missing messageId: a uuid4 is assigned
    [screen] = store.events_for_user("42")  # numeric ids become strings
    assert (screen.type, screen.name) == ("screen", "Home")
    [unnamed] = store.events_for_user("u2")
    assert unnamed.name is None
    assert unnamed.timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # naive is UTC


async def test_identify_merges_traits_and_stores_them_as_properties(
    api: ApiClient, store: Store
) -> None:
    await api.ingest("/v1/identify", {"userId": "u1", "traits": {"plan": "free", "a": 1}})
    await api.ingest("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}})
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"plan": "pro", "a": 1}
    newest = store.events_for_user("u1")[0]
    assert (newest.type, newest.name, newest.properties) == ("identify", None, {"plan": "pro"})


async def test_identify_with_both_ids_merges_the_anonymous_profile(
    api: ApiClient, store: Store
) -> None:
    await api.ingest("/v1/track", {"anonymousId": "a1", "event": "Viewed", "messageId": "m1"})
    await api.ingest("/v1/identify", {"anonymousId": "a1", "traits": {"plan": "free", "x": 1}})
    await api.ingest("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}})
    await api.ingest(
        "/v1/identify",
        {"userId": "u1", "anonymousId": "a1", "traits": {"email": "u1@example.com"}},
    )
    assert store.get_user("anon:a1") is None
    user = store.get_user("u1")
    assert user is not None
    # The user's own traits win over the anonymous ones; the identify's own apply last.
    assert user.traits == {"plan": "pro", "x": 1, "email": "u1@example.com"}
    assert {e.message_id for e in store.events_for_user("u1")} >= {"m1"}
    assert len(store.events_for_user("u1")) == 4
    assert store.events_for_user("anon:a1") == []


async def test_track_with_both_ids_merges_too(api: ApiClient, store: Store) -> None:
    await api.ingest("/v1/page", {"anonymousId": "a1", "name": "Home"})
    await api.ingest("/v1/track", {"userId": "u1", "anonymousId": "a1", "event": "Signed Up"})
    assert store.get_user("anon:a1") is None
    assert [e.type for e in store.events_for_user("u1")] == ["track", "page"]


async def test_duplicates_by_message_id_are_answered_and_not_stored_again(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    body = {"userId": "u1", "event": "Viewed", "messageId": "m-1"}
    for _ in range(2):
        response = await api.ingest("/v1/track", body)
        assert response.status_code == 200
        assert response.json() == {"success": True}
    repeat = {"userId": "u1", "traits": {"plan": "pro"}, "messageId": "m-1"}
    assert (await api.ingest("/v1/identify", repeat)).status_code == 200
    assert len(store.events_for_user("u1")) == 1
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {}  # a duplicate has no effect at all
    assert routing.wakes == 1  # nothing new to route


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("/v1/track", {"event": "Viewed"}, "userId"),
        ("/v1/track", {"userId": None, "anonymousId": "", "event": "Viewed"}, "userId"),
        ("/v1/identify", {"traits": {"a": 1}}, "userId"),
        ("/v1/track", {"userId": "u1"}, "event"),
        ("/v1/track", {"userId": "u1", "event": ""}, "event"),
        ("/v1/track", {"userId": "u1", "event": "x", "properties": [1]}, "properties"),
        ("/v1/track", {"userId": "u1", "event": "x", "timestamp": "yesterday"}, "timestamp"),
        # A time with no UTC equivalent (year 0 once in UTC).
        (
            "/v1/track",
            {"userId": "u1", "event": "x", "timestamp": "0001-01-01T00:00:00+14:00"},
            "timestamp",
        ),
        ("/v1/track", {"userId": "u1", "event": "x", "messageId": "m" * 201}, "messageId"),
        ("/v1/page", {"userId": "u1" * 101}, "userId"),
        ("/v1/identify", ["not", "an", "object"], ""),
    ],
)
async def test_invalid_calls_are_400_with_located_problems(
    api: ApiClient, store: Store, path: str, body: object, problem: str
) -> None:
    error = assert_error(await api.ingest(path, body), 400, "invalid_event")
    assert paths_of(error) == [problem]
    assert store.unrouted_events() == []


@pytest.mark.parametrize("path", ["/v1/track", "/v1/identify", "/v1/batch", "/trigger"])
@pytest.mark.parametrize("content", [b"{not json", b"", b'{"userId": NaN}', b"\xff\xfe{"])
async def test_invalid_json_is_400(api: ApiClient, path: str, content: bytes) -> None:
    response = await api.http.post(path, content=content, headers=SDK_AUTH)
    assert_error(response, 400, "invalid_json")


def _padded(size: int) -> dict[str, object]:
    """A track call of about `size` bytes of JSON."""
    return {"userId": "u1", "event": "Big", "properties": {"pad": "x" * size}}


async def test_an_event_over_32_kb_is_413(api: ApiClient, store: Store) -> None:
    assert (await api.ingest("/v1/track", _padded(31 * KB))).status_code == 200
    assert_error(await api.ingest("/v1/track", _padded(32 * KB)), 413, "payload_too_large")
    assert len(store.unrouted_events()) == 1


async def test_size_is_checked_while_streaming_without_content_length(
    api: ApiClient, store: Store
) -> None:
    raw = json.dumps(_padded(40 * KB)).encode()

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length
        for start in range(0, len(raw), 4 * KB):
            yield raw[start : start + 4 * KB]

    response = await api.http.post("/v1/track", content=chunks(), headers=SDK_AUTH)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")
    assert store.unrouted_events() == []


async def test_gzip_bodies_are_accepted_and_bounded_once_inflated(
    api: ApiClient, store: Store
) -> None:
    headers = {**SDK_AUTH, "Content-Encoding": "gzip"}
    small = gzip.compress(json.dumps({"userId": "u1", "event": "Zipped"}).encode())
    assert (await api.http.post("/v1/track", content=small, headers=headers)).status_code == 200
    # A few hundred bytes that inflate past the limit: refused without inflating it all.
    bomb = gzip.compress(json.dumps(_padded(10 * 1024 * KB)).encode())
    assert len(bomb) < 32 * KB
    response = await api.http.post("/v1/track", content=bomb, headers=headers)
    assert_error(response, 413, "payload_too_large")
    response = await api.http.post("/v1/track", content=b"not gzip", headers=headers)
    assert_error(response, 400, "invalid_body")
    response = await api.http.post("/v1/track", content=small[:-8], headers=headers)
    assert_error(response, 400, "invalid_body")
    response = await api.http.post(
        "/v1/track", content=small, headers={**SDK_AUTH, "Content-Encoding": "br"}
    )
    assert_error(response, 415, "unsupported_media_type")
    assert [e.name for e in store.events_for_user("u1")] == ["Zipped"]


async def test_batch_stores_every_type_in_one_request(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "b1"},
            {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "b2"},
            {"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "b3"},
            {"type": "screen", "userId": "u1", "name": "Cart", "messageId": "b4"},
            {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "b2"},
        ],
        "context": {"library": {"name": "analytics-python"}},
        "sentAt": "2025-03-01T12:00:00Z",
    }
    response = await api.ingest("/v1/batch", batch)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert sorted(e.message_id for e in store.unrouted_events()) == ["b1", "b2", "b3", "b4"]
    assert routing.wakes == 1
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"plan": "pro"}
    response = await api.ingest("/v1/batch", batch)  # a retried batch: all duplicates
    assert response.status_code == 200
    assert len(store.unrouted_events()) == 4
    assert routing.wakes == 1


async def test_a_bad_item_refuses_the_whole_batch(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "u1", "event": "Viewed"},
            {"type": "track", "userId": "u1"},
            {"type": "rename", "userId": "u1", "groupId": "g1"},
            {"userId": "u1", "event": "Untyped"},
            {"type": "track", "event": "Anonymous nobody"},
        ]
    }
    error = assert_error(await api.ingest("/v1/batch", batch), 400, "invalid_event")
    assert paths_of(error) == [
        "batch[2].event",
        "batch[3].type",
        "batch[4].type",
        "batch[5].userId",
    ]
    assert "unknown type 'rename'" in error["details"][1]["message"]
    assert store.unrouted_events() == []
    assert store.get_user("u1") is None
    assert routing.wakes == 0


@pytest.mark.parametrize("body", [{}, {"batch": {"type": "track"}}, {"batch": None}, []])
async def test_a_batch_needs_a_list(api: ApiClient, body: object) -> None:
    error = assert_error(await api.ingest("/v1/batch", body), 400, "invalid_event")
    assert paths_of(error) == ["batch"]


def _batch_of(size: int) -> bytes:
    """A valid batch request of exactly `size` bytes, in calls under 32 KB."""
    items = [{"type": "track", **_padded(20 * KB)} for _ in range(size // (20 * KB))]
    raw = json.dumps({"batch": items}).encode()
    items[-1]["properties"] = {"pad": "x" * (20 * KB + size - len(raw))}
    raw = json.dumps({"batch": items}).encode()
    assert len(raw) == size
    return raw


async def test_a_batch_request_over_500_kb_is_413(api: ApiClient, store: Store) -> None:
    response = await api.http.post("/v1/batch", content=_batch_of(500 * KB + 1), headers=SDK_AUTH)
    assert_error(response, 413, "payload_too_large")
    assert store.unrouted_events() == []
    response = await api.http.post("/v1/batch", content=_batch_of(500 * KB), headers=SDK_AUTH)
    assert response.status_code == 200
    assert len(store.unrouted_events()) == 25


async def test_a_batch_item_over_32_kb_is_413(api: ApiClient, store: Store) -> None:
    items = [{"type": "track", **_padded(1 * KB)}, {"type": "track", **_padded(33 * KB)}]
    error = assert_error(await api.ingest("/v1/batch", {"batch": items}), 413, "payload_too_large")
    assert paths_of(error) == ["batch[1]"]
    assert store.unrouted_events() == []


async def test_group_calls_are_accepted_and_ignored(api: ApiClient, store: Store) -> None:
    batch = {
        "batch": [
            {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"size": 10}},
            {"type": "track", "userId": "u1", "event": "Viewed"},
        ]
    }
    response = await api.ingest("/v1/batch", batch)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert [e.name for e in store.unrouted_events()] == ["Viewed"]


async def test_alias_in_a_batch_merges_the_anonymous_profile(api: ApiClient, store: Store) -> None:
    await api.ingest("/v1/identify", {"anonymousId": "a1", "traits": {"x": 1}})
    batch = {"batch": [{"type": "alias", "previousId": "a1", "userId": "u1"}]}
    assert (await api.ingest("/v1/batch", batch)).status_code == 200
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"x": 1}
    assert store.get_user("anon:a1") is None
    error = assert_error(
        await api.ingest("/v1/batch", {"batch": [{"type": "alias", "userId": "u1"}]}),
        400,
        "invalid_event",
    )
    assert paths_of(error) == ["batch[0].previousId"]


async def test_trigger_starts_journeys_through_the_router(
    api: ApiClient, routing: RecordingRouting
) -> None:
    routing.trigger_answer = [
        TriggerResult(journey_id="cart", workflow_id="journey:cart:12345", started=True),
        TriggerResult(journey_id="vip", workflow_id="journey:vip:12345", started=False),
    ]
    body = {
        "user_id": "12345",
        "trigger_type": "cart_abandonment",
        "content": {"discount_code": "SAVE20", "message": "..."},
    }
    response = await api.ingest("/trigger", body)
    assert response.status_code == 202
    assert response.json() == {
        "journeys": [
            {"journey_id": "cart", "workflow_id": "journey:cart:12345", "started": True},
            {"journey_id": "vip", "workflow_id": "journey:vip:12345", "started": False},
        ]
    }
    assert routing.triggers == [("12345", "cart_abandonment", body["content"])]


async def test_trigger_errors(api: ApiClient, routing: RecordingRouting) -> None:
    body = {"user_id": "u1", "trigger_type": "nothing"}
    routing.trigger_answer = NoLiveJourney("no live journey is entered by trigger 'nothing'")
    error = assert_error(await api.ingest("/trigger", body), 404, "no_live_journey")
    assert "nothing" in error["message"]
    routing.trigger_answer = RoutingUnavailable("connection refused")
    assert_error(await api.ingest("/trigger", body), 503, "temporal_unavailable")
    error = assert_error(
        await api.ingest("/trigger", {"trigger_type": "x", "content": []}), 422, "validation_error"
    )
    assert paths_of(error) == ["user_id", "content"]
    big = {**body, "content": {"pad": "x" * 33 * KB}}
    assert_error(await api.ingest("/trigger", big), 413, "payload_too_large")
    assert [t[1] for t in routing.triggers] == ["nothing", "nothing"]


async def test_received_at_is_the_time_of_ingest(api: ApiClient, store: Store) -> None:
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    await api.ingest("/v1/track", {"userId": "u1", "event": "Late", "timestamp": old})
    [event] = store.events_for_user("u1")
    assert datetime.now(UTC) - event.received_at < timedelta(minutes=1)
    assert datetime.now(UTC) - event.timestamp > timedelta(days=2)

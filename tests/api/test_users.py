"""Users: profile, journeys, deliveries, events and the in-app inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from journeys.contracts import FinalDeliveryStatus
from journeys.ratelimits import parse_rate
from journeys.store import Store
from tests.api.helpers import ADMIN, SDK_AUTH, ApiClient, assert_error, bearer
from tests.factories import enroll, finish, move

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _deliver(
    store: Store,
    key: str,
    channel: str,
    status: FinalDeliveryStatus | None,
    content: dict[str, Any],
    *,
    user_id: str = "u1",
) -> int:
    record, _ = store.begin_delivery(
        idempotency_key=key,
        journey_id="cart",
        version=1,
        node_id=key,
        user_id=user_id,
        channel=channel,
        variant="urgency",
        content=content,
    )
    if status is not None:
        record = store.finish_delivery(
            key, status, "no push token" if status == "skipped" else None
        )
    assert record.id is not None
    return record.id


async def test_user_detail(api: ApiClient, store: Store) -> None:
    await api.ingest("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}})
    enroll(
        store,
        enrollment_id="e1",
        user_id="u1",
        journey_id="cart",
        version=1,
        workflow_id="journey:cart:u1",
        entered_at=T0,
    )
    move(store, "e1", "wait_checkout", T0)
    enroll(
        store,
        enrollment_id="e2",
        user_id="u1",
        journey_id="welcome",
        version=2,
        workflow_id="journey:welcome:u1",
        entered_at=T0 + timedelta(days=1),
    )
    finish(store, "e2", "completed", T0 + timedelta(days=2))
    _deliver(store, "d1", "email", "sent", {"subject": "Hi", "body": "There"})
    _deliver(store, "d2", "push", "skipped", {"title": "T", "body": "B"})
    _deliver(store, "d3", "sms", None, {"body": "in flight"})
    _deliver(store, "d4", "sms", None, {"body": "held back"})
    hourly = parse_rate("1/h")
    store.claim_delivery("d3", {"body": "in flight"}, rate=hourly)
    held = store.claim_delivery("d4", {"body": "held back"}, rate=hourly)

    response = await api.admin("GET", "/v1/users/u1")
    assert response.status_code == 200
    user = response.json()
    assert user["user_id"] == "u1"
    assert user["traits"] == {"plan": "pro"}
    assert [
        (j["journey_id"], j["version"], j["workflow_id"], j["status"], j["current_node"])
        for j in user["journeys"]
    ] == [
        ("welcome", 2, "journey:welcome:u1", "completed", None),
        ("cart", 1, "journey:cart:u1", "active", "wait_checkout"),
    ]
    assert user["journeys"][0]["ended_at"] is not None
    assert user["journeys"][1]["ended_at"] is None
    assert all(
        set(j)
        == {
            "journey_id",
            "version",
            "workflow_id",
            "status",
            "current_node",
            "entered_at",
            "ended_at",
        }
        for j in user["journeys"]
    )
    # Newest first; a delivery still being sent has no outcome to show yet, one held back by
    # its channel's rate limit says until when it waits.
    assert [(d["node_id"], d["status"], d["reason"]) for d in user["deliveries"]] == [
        ("d4", "waiting", "sms rate limit 1/h: waiting for a slot"),
        ("d2", "skipped", "no push token"),
        ("d1", "sent", None),
    ]
    assert held.waits_until is not None
    assert datetime.fromisoformat(user["deliveries"][0]["waits_until"]) == held.waits_until
    assert set(user["deliveries"][1]) == {
        "id", "journey_id", "node_id", "channel", "status", "reason", "content", "variant",
        "locale", "created_at", "opened_at", "clicked_at", "waits_until",
    }  # fmt: skip
    assert user["deliveries"][1]["waits_until"] is None
    assert user["deliveries"][2]["content"] == {"subject": "Hi", "body": "There"}
    assert user["deliveries"][2]["variant"] == "urgency"


async def test_unknown_users_are_404(api: ApiClient, store: Store) -> None:
    error = assert_error(await api.admin("GET", "/v1/users/nobody"), 404, "not_found")
    assert "nobody" in error["message"]
    assert_error(await api.admin("GET", "/v1/users/nobody/events"), 404, "not_found")
    # Someone who only entered through POST /trigger is known by their journeys.
    enroll(
        store,
        enrollment_id="e1",
        user_id="triggered",
        journey_id="cart",
        version=1,
        workflow_id="journey:cart:triggered",
        entered_at=T0,
    )
    user = (await api.admin("GET", "/v1/users/triggered")).json()
    assert (user["traits"], len(user["journeys"])) == ({}, 1)


async def test_user_events_newest_first_with_limit(api: ApiClient) -> None:
    calls = [
        {
            "type": "track",
            "userId": "u1",
            "event": f"E{index}",
            "properties": {"i": index},
            "messageId": f"m{index}",
            "timestamp": (T0 + timedelta(minutes=index)).isoformat(),
        }
        for index in range(60)
    ]
    await api.ingest("/v1/batch", {"batch": calls})
    events = (await api.admin("GET", "/v1/users/u1/events")).json()
    assert len(events) == 50
    assert [e["name"] for e in events[:2]] == ["E59", "E58"]
    assert set(events[0]) == {
        "message_id", "type", "name", "properties", "timestamp", "received_at", "routed_at",
    }  # fmt: skip
    assert events[0]["properties"] == {"i": 59}
    events = (await api.admin("GET", "/v1/users/u1/events", params={"limit": 1000})).json()
    assert len(events) == 60
    assert len((await api.admin("GET", "/v1/users/u1/events", params={"limit": 3})).json()) == 3
    for limit in (0, 1001):
        response = await api.admin("GET", "/v1/users/u1/events", params={"limit": limit})
        assert_error(response, 422, "validation_error")


async def test_inbox_read_flow(api: ApiClient, store: Store) -> None:
    first = _deliver(store, "n1", "in_app", "sent", {"title": "Welcome", "body": "Hello"})
    cta = {"label": "Shop", "url": "https://shop.example/"}
    second = _deliver(
        store, "n2", "in_app", "sent", {"body": "Sale!", "kind": "banner", "cta": cta}
    )
    _deliver(store, "n3", "in_app", "failed", {"body": "never shown"})
    _deliver(store, "n4", "email", "sent", {"subject": "s", "body": "not in-app"})
    other = _deliver(store, "n5", "in_app", "sent", {"body": "not yours"}, user_id="u2")

    response = await api.http.get("/v1/users/u1/inbox", headers=SDK_AUTH)
    assert response.status_code == 200
    inbox = response.json()
    assert [(m["id"], m["read"]) for m in inbox] == [(second, False), (first, False)]
    assert inbox[0] == {
        "id": second,
        "title": None,
        "body": "Sale!",
        "kind": "banner",
        "anchor": None,
        "cta": cta,
        "tracked": False,
        "read": False,
        "created_at": inbox[0]["created_at"],
    }
    assert (inbox[1]["title"], inbox[1]["kind"], inbox[1]["cta"]) == ("Welcome", "modal", None)

    response = await api.http.post(f"/v1/users/u1/inbox/{first}/read", headers=SDK_AUTH)
    assert response.status_code == 200
    assert response.json()["id"] == first
    assert response.json()["read"] is True
    again = await api.http.post(
        f"/v1/users/u1/inbox/{first}/read", headers=bearer("test-write-key")
    )
    assert again.json() == response.json()  # reading twice changes nothing
    inbox = (await api.http.get("/v1/users/u1/inbox", headers=SDK_AUTH)).json()
    assert [(m["id"], m["read"]) for m in inbox] == [(second, False), (first, True)]

    for message_id in (other, 999_999):
        response = await api.http.post(f"/v1/users/u1/inbox/{message_id}/read", headers=SDK_AUTH)
        assert_error(response, 404, "not_found")
    response = await api.http.post("/v1/users/u1/inbox/abc/read", headers=SDK_AUTH)
    assert_error(response, 422, "validation_error")
    assert (await api.http.get("/v1/users/nobody/inbox", headers=SDK_AUTH)).json() == []


async def test_inbox_takes_the_write_key_not_the_admin_token(api: ApiClient, store: Store) -> None:
    message = _deliver(store, "n1", "in_app", "sent", {"body": "Hello"})
    assert_error(await api.http.get("/v1/users/u1/inbox", headers=ADMIN), 401, "unauthorized")
    response = await api.http.post(f"/v1/users/u1/inbox/{message}/read", headers=ADMIN)
    assert_error(response, 401, "unauthorized")
    assert store.inbox("u1")[0].read_at is None

"""The in-app inbox for browsers: the live stream (Server-Sent Events, over a real uvicorn on
loopback), identity verification with `user_hash`, CORS, the tracked flag, and the SDK files."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from journeys.tracking import click_token
from tests.api.conftest import RecordingRouting
from tests.api.helpers import (
    ADMIN,
    ADMIN_TOKEN,
    SDK_AUTH,
    UNSUBSCRIBE_SECRET,
    WRITE_KEY,
    ApiClient,
    assert_error,
)
from tests.factories import sent_delivery

INAPP_SECRET = "test-inapp-secret"
ORIGIN = "https://shop.example"


def user_hash(user_id: str, secret: str = INAPP_SECRET) -> str:
    """What the app's backend computes for its signed-in user."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def in_app(store: Store, key: str, user_id: str = "ada", **content: Any) -> int:
    """A sent in-app message; its delivery id."""
    record = sent_delivery(
        store, key, user_id=user_id, channel="in_app", node_id=key,
        content={"body": f"message {key}", **content},
    )  # fmt: skip
    assert record.id is not None
    return record.id


@dataclass
class Event:
    """One Server-Sent Event."""

    id: str | None
    event: str | None
    data: dict[str, Any]


class Stream:
    """An open event stream, read one event at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 3) -> Event:
        """The next event (comments and the retry hint skipped)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "" and "data" in fields:
                    return Event(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
        raise AssertionError("the stream ended")


@pytest.fixture
async def http(served: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        yield client


def open_stream(
    http: httpx.AsyncClient, user_id: str, headers: dict[str, str] | None = None
) -> AbstractAsyncContextManager[httpx.Response]:
    """The user's live inbox, opened with the write key."""
    url = f"/v1/users/{user_id}/inbox/stream"
    return http.stream("GET", url, params={"key": WRITE_KEY}, headers=headers)


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_the_stream_sends_unread_messages_then_each_new_one_once(
    http: httpx.AsyncClient, store: Store
) -> None:
    first = in_app(store, "n1", title="Hi", kind="tooltip", anchor="#pay")
    read = in_app(store, "n2")
    store.mark_read("ada", read)
    in_app(store, "n3", user_id="bea")  # someone else's

    async with open_stream(http, "ada") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-store"
        stream = Stream(response)
        event = await stream.next()
        assert (event.id, event.event) == (str(first), "message")
        assert event.data == {
            "id": first, "title": "Hi", "body": "message n1", "kind": "tooltip",
            "anchor": "#pay", "cta": None, "tracked": False, "read": False,
            "created_at": event.data["created_at"],
        }  # fmt: skip
        second = in_app(store, "n4", kind="banner")
        event = await stream.next(timeout=2)  # announced within a poll, not repeated
        assert (event.id, event.data["kind"]) == (str(second), "banner")
        assert "journeys_inbox_streams 1.0" in (await http.get("/metrics")).text
    async with asyncio.timeout(3):  # the server notices the browser has gone
        while "journeys_inbox_streams 0.0" not in (await http.get("/metrics")).text:
            await asyncio.sleep(0.05)


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_a_reconnecting_stream_gets_the_unread_messages_again(
    http: httpx.AsyncClient, store: Store
) -> None:
    first = in_app(store, "n1")
    async with open_stream(http, "ada") as response:
        assert (await Stream(response).next()).id == str(first)
    second = in_app(store, "n2")  # delivered while the browser was away
    async with open_stream(http, "ada", {"Last-Event-ID": str(first)}) as response:
        stream = Stream(response)
        assert [(await stream.next()).id, (await stream.next()).id] == [str(first), str(second)]
    store.mark_read("ada", first)
    async with open_stream(http, "ada") as response:
        assert (await Stream(response).next()).id == str(second)


@pytest.mark.parametrize("params", [{}, {"key": "wrong"}, {"key": ADMIN_TOKEN}])
async def test_the_stream_needs_the_write_key_in_its_query(
    api: ApiClient, params: dict[str, str]
) -> None:
    response = await api.http.get("/v1/users/ada/inbox/stream", params=params, headers=SDK_AUTH)
    assert_error(response, 401, "unauthorized")


@pytest.fixture
async def verified(store: Store, routing: RecordingRouting) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API with identity verification on (JOURNEYS_INAPP_SECRET set)."""
    settings = Settings(
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        unsubscribe_secret=UNSUBSCRIBE_SECRET,
        inapp_secret=INAPP_SECRET,
    )
    app = create_app(settings, store=store, routing=routing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.mark.parametrize(
    "given",
    [None, "", "0" * 64, user_hash("bea"), user_hash("ada", "another-secret"), "x" * 129],
)
async def test_with_identity_verification_only_the_users_hash_opens_their_inbox(
    verified: httpx.AsyncClient, store: Store, given: str | None
) -> None:
    message = in_app(store, "n1")
    params = {} if given is None else {"user_hash": given}
    for response in (
        await verified.get("/v1/users/ada/inbox", params=params, headers=SDK_AUTH),
        await verified.post(f"/v1/users/ada/inbox/{message}/read", params=params, headers=SDK_AUTH),
        await verified.get("/v1/users/ada/inbox/stream", params={**params, "key": WRITE_KEY}),
    ):
        status = 422 if given is not None and len(given) > 128 else 401
        assert_error(response, status, "unauthorized" if status == 401 else "validation_error")
    assert store.inbox("ada")[0].read_at is None


async def test_with_identity_verification_the_right_hash_reads_the_inbox(
    verified: httpx.AsyncClient, store: Store
) -> None:
    message = in_app(store, "n1")
    params = {"user_hash": user_hash("ada").upper()}  # hex in either case
    response = await verified.get("/v1/users/ada/inbox", params=params, headers=SDK_AUTH)
    assert [m["id"] for m in response.json()] == [message]
    response = await verified.post(
        f"/v1/users/ada/inbox/{message}/read", params=params, headers=SDK_AUTH
    )
    assert response.json()["read"] is True
    # The hash never stands in for the write key.
    response = await verified.get("/v1/users/ada/inbox", params=params)
    assert_error(response, 401, "unauthorized")


async def test_a_tracked_call_to_action_says_so(api: ApiClient, store: Store) -> None:
    plain = in_app(store, "n1", cta={"label": "Shop", "url": "https://shop.example/"})
    record = sent_delivery(store, "n2", user_id="ada", channel="in_app", content={})
    token = click_token(UNSUBSCRIBE_SECRET, record.id or 0, "https://shop.example/help")
    tracked_cta = {"label": "Help", "url": f"https://api.example/c/{token}"}
    with store._write() as session:
        record.content = {"body": "Need help?", "cta": tracked_cta}
        session.add(record)
    forged = in_app(store, "n3", cta={"label": "X", "url": f"https://api.example/c/{token}x"})

    inbox = (await api.http.get("/v1/users/ada/inbox", headers=SDK_AUTH)).json()
    tracked = {message["id"]: message["tracked"] for message in inbox}
    assert tracked == {plain: False, record.id: True, forged: False}


PUBLIC = [
    ("POST", "/v1/batch"),
    ("POST", "/v1/track"),
    ("POST", "/trigger"),
    ("GET", "/v1/users/anon:a1/inbox"),
    ("POST", "/v1/users/ada/inbox/7/read"),
    ("GET", "/v1/users/ada/inbox/stream"),
    ("GET", "/sdk/journeys.js"),
]


@pytest.mark.parametrize(("method", "path"), PUBLIC)
async def test_pages_of_any_origin_may_call_ingest_inbox_and_the_sdk(
    api: ApiClient, method: str, path: str
) -> None:
    preflight = await api.http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "*"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type"} <= {h.strip() for h in allowed.split(",")}
    assert "access-control-allow-credentials" not in preflight.headers


async def test_management_sends_no_cors_headers(api: ApiClient) -> None:
    response = await api.http.get("/v1/journeys", headers={**ADMIN, "Origin": ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await api.http.options(
        "/v1/journeys",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_an_answer_to_a_page_carries_the_cors_header(api: ApiClient) -> None:
    body = {"userId": "ada", "event": "Viewed"}
    response = await api.http.post("/v1/track", json=body, headers={**SDK_AUTH, "Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    refused = await api.http.post("/v1/track", json=body, headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # the page can read why
    assert refused.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("name", "media_type"), [("journeys.js", "text/javascript"), ("journeys.css", "text/css")]
)
async def test_the_sdk_files_are_served_for_caching(
    api: ApiClient, name: str, media_type: str
) -> None:
    response = await api.http.get(f"/sdk/{name}", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content

"""Oversize, deeply nested and unicode-heavy payloads are refused or handled, on every endpoint
that takes a body (as the app lists them), and never answered with a 5xx."""

from __future__ import annotations

import gzip
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import JourneyOutcome, workflow_id
from journeys.settings import Settings
from journeys.store import NewEvent, Store
from journeys.validation import MAX_NESTING, validate
from relay.router import EventRouter
from tests.reliability.app import (
    ADMIN,
    WRITE,
    Endpoint,
    endpoints,
)
from worker.main import build_worker

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")


def with_body(app: FastAPI) -> list[Endpoint]:
    """Every endpoint that reads a body, with its credential."""
    found = [e for e in endpoints(app) if e.body is not None]
    assert len(found) >= 12
    return found


def credential(endpoint: Endpoint) -> dict[str, str]:
    """The headers that let a request to `endpoint` in."""
    return {"write": WRITE, "management": ADMIN}.get(endpoint.credential, {})


def nested(depth: int) -> Any:
    """An object nested `depth` levels deep."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_a_body_over_its_limit_is_413_everywhere(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    for endpoint in with_body(app):
        assert endpoint.body is not None
        padding = "x" * endpoint.body.limit
        oversize = json.dumps({"userId": "u", "event": "e", "properties": {"p": padding}})
        for content, headers in (
            (oversize.encode(), {}),
            # Compressed small, inflated over the limit: refused while inflating.
            (gzip.compress(oversize.encode()), {"Content-Encoding": "gzip"}),
        ):
            response = await http.request(
                endpoint.method,
                endpoint.path,
                content=content,
                headers={**credential(endpoint), **headers},
            )
            assert response.status_code == 413, (str(endpoint), response.text)


async def test_deeply_nested_bodies_are_400_everywhere(
    app: FastAPI, http: httpx.AsyncClient, store: Store
) -> None:
    bodies = {
        "brackets": b"[" * 6_000 + b"]" * 6_000,  # 12 KB, beyond Python's parser recursion
        "objects": json.dumps({"userId": "u", "event": "e", "properties": nested(300)}).encode(),
        "just over": json.dumps({"batch": [nested(MAX_NESTING)]}).encode(),
    }
    for endpoint in with_body(app):
        for name, content in bodies.items():
            response = await http.request(
                endpoint.method, endpoint.path, content=content, headers=credential(endpoint)
            )
            assert response.status_code == 400, (str(endpoint), name, response.text)
            assert "nested deeper than" in response.json()["error"]["message"]
    assert store.events_for_user("u") == []


@pytest.mark.parametrize(
    ("code", "what"), [(0x0000, "NUL"), (0xD800, "lone surrogate"), (0xDFFF, "lone surrogate")]
)
async def test_unstorable_characters_are_400_not_a_database_error(
    app: FastAPI, http: httpx.AsyncClient, store: Store, code: int, what: str
) -> None:
    """PostgreSQL text cannot hold U+0000, nor UTF-8 a lone surrogate; without the check these
    were 500s on PostgreSQL, or stored and then a 500 on every read of them."""
    value = chr(code)
    bodies = {
        "value": {"userId": "u", "event": "e", "name": "n", "properties": {"k": f"a{value}"}},
        "key": {"userId": "u", "event": "e", "name": "n", "traits": {f"k{value}": 1}},
    }
    for endpoint in with_body(app):
        for where, body in bodies.items():
            for content in _encodings(body):
                response = await http.request(
                    endpoint.method, endpoint.path, content=content, headers=credential(endpoint)
                )
                assert response.status_code == 400, (str(endpoint), where, response.text)
                assert what in response.json()["error"]["details"][0]["message"]
    for path in ("/v1/users/u%00", "/v1/users/u%00/events", "/v1/journeys/j%00"):
        assert (await http.get(path, headers=ADMIN)).status_code == 422, path
    assert (await http.get("/v1/users/u%00/inbox", headers=WRITE)).status_code == 422
    assert store.events_for_user("u") == []


def _encodings(body: dict[str, Any]) -> list[bytes]:
    """The body escaped (as most clients send it), in UTF-16 with its characters raw (JSON
    allows UTF-16 bodies) and, but for a NUL (a raw one is invalid JSON), in UTF-8 with them
    raw: a surrogate's three bytes are not valid UTF-8, yet the parser takes them."""
    raw = json.dumps(body, ensure_ascii=False)
    encodings = [json.dumps(body).encode(), raw.encode("utf-16", "surrogatepass")]
    if "\x00" not in raw:
        encodings.append(raw.encode("utf-8", "surrogatepass"))
    return encodings


UNICODE = [
    "Zoë 😀 👩🏽‍💻 🇯🇵",  # emoji with modifiers, ZWJ sequences and flags
    "שלום עולם \u202eevil\u202c",  # right-to-left, with a bidi override
    "e\u0301\u0302\u0303\u0304" * 30,  # stacked combining marks
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𠜎",  # astral planes
    "\u200b\u200d\ufeff",  # zero-width characters, a BOM
    "名前 ✓ ñ ß Ω",
]


async def test_unicode_heavy_events_are_stored_and_read_back_exactly(
    http: httpx.AsyncClient, store: Store
) -> None:
    for n, text in enumerate(UNICODE):
        user = f"{text}-{n}"
        calls = [
            {"type": "identify", "userId": user, "traits": {text: text, "name": text}},
            {"type": "track", "userId": user, "event": text, "properties": {text: [text] * 3}},
        ]
        response = await http.post("/v1/batch", json={"batch": calls}, headers=WRITE)
        assert response.status_code == 200, response.text
        found = await http.get(f"/v1/users/{quote(user, safe='')}", headers=ADMIN)
        assert found.status_code == 200, found.text
        assert found.json()["traits"] == {text: text, "name": text}
        events = await http.get(f"/v1/users/{quote(user, safe='')}/events", headers=ADMIN)
        tracked = [e for e in events.json() if e["type"] == "track"]
        assert [(e["name"], e["properties"]) for e in tracked] == [(text, {text: [text] * 3})]
        count = await http.post(
            "/v1/segments/count",
            json={"condition": {"field": "user.name", "op": "eq", "value": text}},
            headers=ADMIN,
        )
        assert count.json() == {"members": 1}, text
    # Lone surrogates are not text: refused anywhere (see above).
    lone = b'{"userId": "u", "event": "e", "properties": {"k": "\\ud800"}}'
    response = await http.post("/v1/track", content=lone, headers=WRITE)
    assert response.status_code == 400, response.text


def test_a_document_nested_too_deep_is_one_located_problem() -> None:
    condition: Any = {"field": "user.plan", "op": "eq", "value": "pro"}
    for _ in range(MAX_NESTING):
        condition = {"not": condition}
    document = {
        "id": "deep",
        "name": "Deep",
        "entry": {"event": "Signed Up", "where": condition},
        "start": "done",
        "nodes": {"done": {"type": "exit"}},
    }
    [problem] = validate(document)
    assert problem.message == f"nested deeper than {MAX_NESTING} levels"
    assert problem.path.startswith("entry.where.not.not")


@pytest.mark.store_backends("sqlite")
async def test_an_event_temporal_cannot_carry_does_not_hold_up_the_outbox(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    """An event stored before the API refused deep nesting (or by any other way in) that a
    journey cares about: the router logs it and routes the events behind it."""
    task_queue = f"outbox-{uuid.uuid4().hex[:8]}"
    journey_id = f"deep-{uuid.uuid4().hex[:6]}"
    document = {
        "id": journey_id,
        "name": "Deep",
        "entry": {"event": "Signed Up"},
        "start": "done",
        "nodes": {"done": {"type": "exit"}},
    }
    store.save_draft(journey_id, document)
    store.publish(journey_id)
    now = datetime.now(UTC)

    def signed_up(user: str, properties: dict[str, Any]) -> NewEvent:
        return NewEvent(
            message_id=f"{user}-signed-up",
            user_id=user,
            type="track",
            name="Signed Up",
            properties=properties,
            timestamp=now,
            received_at=now,
        )

    store.append_events([signed_up("deep", {"p": nested(300)}), signed_up("next", {})])
    settings = Settings(task_queue=task_queue)
    router = EventRouter(store, settings, connect_temporal=lambda: _client(dev_server))
    async with build_worker(dev_server.client, store, task_queue, executor):
        assert await router.route_pending() == 2
        handle = dev_server.client.get_workflow_handle(
            workflow_id(journey_id, "next"), result_type=JourneyOutcome
        )
        assert (await handle.result()).path == ["done"]
    assert store.unrouted_events() == []


async def _client(env: WorkflowEnvironment) -> Any:
    return env.client

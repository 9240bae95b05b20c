"""Nobody gets in without a key, and hostile values stay data.

Covered elsewhere, and not repeated here (docs/reliability.md lists them):
Liquid cannot reach files or code (tests/journeys/test_templates.py), webhooks cannot reach
refused networks (tests/activities/channels/test_webhook_guard.py,
tests/activities/test_delivery.py), unsubscribe links cannot be forged for another user
(tests/journeys/test_unsubscribe.py, tests/api/test_unsubscribe.py), nor tracked links
(tests/journeys/test_tracking.py, tests/api/test_engagement.py), credentials are checked
before the body is read (tests/api/test_app.py).
"""

from __future__ import annotations

import ast
import hmac
import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy import inspect as inspect_database
from sqlmodel import Session, SQLModel, select

import api.auth
import journeys.signing
from journeys.conditions import evaluate
from journeys.facts import CONDITION
from journeys.store import EventRecord, Store, UserRecord
from journeys.tracking import Tracker
from journeys.unsubscribe import Links
from tests.api.helpers import basic
from tests.reliability.app import (
    ADMIN,
    ADMIN_TOKEN,
    DOCUMENTATION,
    PUBLIC,
    WRITE,
    WRITE_KEY,
    Endpoint,
    endpoints,
)

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")


async def call(http: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]) -> int:
    """The status of one request to the endpoint (with an empty JSON body where it takes one)."""
    body = b"{}" if endpoint.body is not None else None
    response = await http.request(endpoint.method, endpoint.path, content=body, headers=headers)
    return response.status_code


# --- nobody gets in without a key ---------------------------------------------------------------


async def test_every_endpoint_needs_its_credential_but_health_metrics_and_unsubscribe(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    listed = endpoints(app)
    assert len(listed) > 30  # the walk found the routers' routes, not just the app's own
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented <= {(e.method, e.template) for e in listed}

    public = {e.template for e in listed if e.credential == "none"}
    assert public == set(PUBLIC), "an endpoint without a credential: add one, or justify it"
    refusals = {
        "no credentials": {},
        "a wrong key": {"Authorization": "Bearer not-the-key"},
        "an empty bearer": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Basic !!!"},
        "the key as a password": basic("", WRITE_KEY),
    }
    for endpoint in listed:
        if endpoint.credential == "none":
            continue
        for why, headers in refusals.items():
            assert await call(http, endpoint, headers) == 401, (str(endpoint), why)
    for path in DOCUMENTATION - {"/docs/oauth2-redirect"}:
        assert (await http.get(path)).status_code == 200  # documentation only


async def test_the_write_key_cannot_manage_and_the_admin_token_cannot_ingest(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    listed = endpoints(app)
    management = [e for e in listed if e.credential == "management"]
    ingest = [e for e in listed if e.credential == "write"]
    assert len(management) > 20
    assert {"/v1/track", "/v1/batch", "/trigger"} <= {e.template for e in ingest}
    for endpoint in management:
        for headers in (WRITE, basic(WRITE_KEY)):
            assert await call(http, endpoint, headers) == 401, str(endpoint)
    for endpoint in ingest:
        for headers in (ADMIN, basic(ADMIN_TOKEN)):
            assert await call(http, endpoint, headers) == 401, str(endpoint)
    # And with the right credential, none of them answers 401.
    for endpoint in management:
        assert await call(http, endpoint, ADMIN) != 401, str(endpoint)
    for endpoint in ingest:
        assert await call(http, endpoint, WRITE) != 401, str(endpoint)


# --- tokens are compared in constant time ---------------------------------------------------------

SECRET_WORDS = ("key", "token", "secret", "password", "credential", "signature", "mac")


def _secret_comparisons(source: str) -> list[str]:
    """`==`/`!=` comparisons in `source` where an operand names a secret and none is a
    constant (comparing with "" or None reveals nothing)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(operand, ast.Constant) for operand in operands):
            continue
        text = ast.unparse(node)
        if any(word in text.lower() for word in SECRET_WORDS):
            found.append(text)
    return found


@pytest.mark.parametrize("module", [api.auth, journeys.signing], ids=lambda m: m.__name__)
def test_secrets_are_never_compared_with_equality(module: Any) -> None:
    source = inspect.getsource(module)
    assert _secret_comparisons(source) == []
    assert "compare_digest" in source


def test_the_scan_would_catch_a_plain_comparison() -> None:
    assert _secret_comparisons("ok = given == settings.write_key") != []
    assert _secret_comparisons("ok = basic.password == ''") == []


async def test_every_credential_check_goes_through_compare_digest(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # api.auth looks it up per call
    for headers, path in (
        ({"Authorization": "Bearer guess-1"}, "/v1/journeys"),
        ({"Authorization": "Bearer guess-2"}, "/v1/users/u1/inbox"),
        (basic("guess-3"), "/v1/users/u1/inbox"),
    ):
        assert (await http.get(path, headers=headers)).status_code == 401
    assert compared == [
        (b"guess-1", ADMIN_TOKEN.encode()),
        (b"guess-2", WRITE_KEY.encode()),
        (b"guess-3", WRITE_KEY.encode()),
    ]
    compared.clear()
    forged = Links("http://journeys.test", "not-the-secret").unsubscribe("ada", "email")
    assert (await http.post(forged.removeprefix("http://journeys.test"))).status_code == 400
    assert len(compared) == 1  # the link's signature, too
    tracked = Tracker(Links("http://journeys.test", "not-the-secret"), 1)
    assert (await http.get(tracked.link("https://a.example/"))).status_code == 404
    assert (await http.get(tracked.pixel())).status_code == 200
    assert len(compared) == 3  # and those of tracked links


# --- SQL in values and names stays data -----------------------------------------------------------

SQL = [
    "'; DROP TABLE users; --",
    "x' OR '1'='1",
    '"; DELETE FROM events; --',
    "1; UPDATE users SET traits = '{}'",
    "') UNION SELECT * FROM deliveries --",
    "\\'; DROP TABLE journeys; --",
]


def _counts(store: Store) -> dict[str, int]:
    with Session(store.engine) as session:
        return {
            "users": session.exec(select(func.count()).select_from(UserRecord)).one(),
            "events": session.exec(select(func.count()).select_from(EventRecord)).one(),
        }


async def test_sql_in_ids_traits_events_and_conditions_stays_data(
    http: httpx.AsyncClient, store: Store
) -> None:
    tables = set(inspect_database(store.engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    batch = [{"type": "identify", "userId": "plain", "traits": {"plan": "pro"}}]
    for n, payload in enumerate(SQL):
        batch += [
            {"type": "identify", "userId": payload, "traits": {payload: payload, "n": n}},
            {"type": "track", "userId": payload, "event": payload, "messageId": payload,
             "properties": {payload: payload}},
        ]  # fmt: skip
    response = await http.post("/v1/batch", json={"batch": batch}, headers=WRITE)
    assert response.status_code == 200, response.text

    # Conditions: a trait name and values made of SQL count exactly the users they name.
    for n, payload in enumerate(SQL):
        by_value = {"field": "user.n", "op": "eq", "value": n}
        by_name = {"field": f"user.{payload}", "op": "eq", "value": payload}
        by_event = {"event_count": {"event": payload}, "op": "eq", "value": 1}
        for condition in (by_value, by_name, by_event):
            answer = await http.post(
                "/v1/segments/count", json={"condition": condition}, headers=ADMIN
            )
            assert answer.status_code == 200, (condition, answer.text)
            # A name holding a dot is a path into the trait, so it names nobody.
            expected = 0 if condition is by_name and "." in payload else 1
            assert answer.json() == {"members": expected}, condition
        saved = await http.put(
            f"/v1/segments/sql-{n}",
            json={"name": payload, "condition": {"any": [by_name, by_value]}},
            headers=ADMIN,
        )
        assert saved.status_code == 200, saved.text
        assert (await http.get(f"/v1/segments/sql-{n}/count", headers=ADMIN)).json() == {
            "members": 1
        }
    injected = {"field": "user.plan", "op": "eq", "value": "x' OR '1'='1"}
    assert evaluate(CONDITION.validate_python(injected), {"user": {"plan": "pro"}}) is False

    # Every table is still there, with exactly the rows sent, read back verbatim.
    assert set(inspect_database(store.engine).get_table_names()) == tables
    assert _counts(store) == {"users": 1 + len(SQL), "events": 1 + 2 * len(SQL)}
    for n, payload in enumerate(SQL):
        found = await http.get(f"/v1/users/{payload}", headers=ADMIN)
        assert found.status_code == 200, (payload, found.text)
        assert found.json()["traits"] == {payload: payload, "n": n}
        events = (await http.get(f"/v1/users/{payload}/events", headers=ADMIN)).json()
        assert [(e["name"], e["message_id"]) for e in events if e["type"] == "track"] == [
            (payload, payload)
        ]
    assert (await http.get("/v1/users/plain' OR '1'='1", headers=ADMIN)).status_code == 404
    assert (await http.get("/v1/users/plain", headers=ADMIN)).json()["traits"] == {"plan": "pro"}


async def test_template_preview_cannot_read_files(http: httpx.AsyncClient) -> None:
    """The API's own door to Liquid (the engine itself: tests/journeys/test_templates.py)."""
    for source in ("{% include '/etc/passwd' %}", "{% render '../../pyproject.toml' %}"):
        response = await http.post(
            "/v1/messages/preview",
            json={"channel": "sms", "content": {"body": source}, "context": {}},
            headers=ADMIN,
        )
        assert response.status_code in (400, 404, 422), response.text
        assert "root:" not in response.text
        assert "[project]" not in response.text

"""Every management route × every role, walked from the app against a table written here: a
route the table does not classify fails the first test. Lower roles get 403 and change nothing;
the needed role gets through, and each change leaves its entry in the audit log."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, SQLModel

from journeys.access import Role, audit_user_reference
from journeys.store import Store
from journeys.store.privacy import user_hash
from tests.api.helpers import (
    ADMIN,
    UNSUBSCRIBE_SECRET,
    ApiClient,
    assert_error,
    bearer,
    journey_document,
)
from tests.reliability.app import Endpoint, endpoints

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

VIEWER, EDITOR, PUBLISHER, ADMIN_ROLE = Role.VIEWER, Role.EDITOR, Role.PUBLISHER, Role.ADMIN

ROLES: dict[str, Role] = {
    "GET /v1/journeys": VIEWER,
    "POST /v1/journeys/validate": EDITOR,
    "PUT /v1/journeys/{journey_id}": EDITOR,
    "GET /v1/journeys/{journey_id}": VIEWER,
    "POST /v1/journeys/{journey_id}/publish": PUBLISHER,
    "POST /v1/journeys/{journey_id}/pause": PUBLISHER,
    "POST /v1/journeys/{journey_id}/resume": PUBLISHER,
    "POST /v1/journeys/{journey_id}/archive": PUBLISHER,
    "GET /v1/journeys/{journey_id}/versions": VIEWER,
    "GET /v1/journeys/{journey_id}/versions/{version}": VIEWER,
    "GET /v1/journeys/{journey_id}/stats": VIEWER,
    "POST /v1/journeys/{journey_id}/simulate": EDITOR,
    "GET /v1/segments": VIEWER,
    "PUT /v1/segments/{segment_id}": EDITOR,
    "GET /v1/segments/{segment_id}": VIEWER,
    "DELETE /v1/segments/{segment_id}": EDITOR,
    "GET /v1/segments/{segment_id}/count": VIEWER,
    "POST /v1/segments/count": EDITOR,
    "GET /v1/templates": VIEWER,
    "PUT /v1/templates/{template_id}": EDITOR,
    "GET /v1/templates/{template_id}": VIEWER,
    "DELETE /v1/templates/{template_id}": EDITOR,
    "POST /v1/templates/{template_id}/preview": EDITOR,
    "POST /v1/messages/preview": EDITOR,
    "GET /v1/settings": VIEWER,
    "PUT /v1/settings": PUBLISHER,
    "GET /v1/users/{user_id}": VIEWER,
    "GET /v1/users/{user_id}/events": VIEWER,
    "GET /v1/users/{user_id}/timeline": VIEWER,
    "DELETE /v1/users/{user_id}": ADMIN_ROLE,
    "GET /v1/users/{user_id}/export": ADMIN_ROLE,
    "GET /v1/predictions": VIEWER,
    "GET /v1/broadcasts": VIEWER,
    "POST /v1/broadcasts": PUBLISHER,
    "GET /v1/broadcasts/{broadcast_id}": VIEWER,
    "POST /v1/broadcasts/{broadcast_id}/cancel": PUBLISHER,
    "POST /v1/tokens": ADMIN_ROLE,
    "GET /v1/tokens": ADMIN_ROLE,
    "DELETE /v1/tokens/{token_id}": ADMIN_ROLE,
    "GET /v1/audit": ADMIN_ROLE,
    "POST /v1/people": ADMIN_ROLE,
    "GET /v1/people": ADMIN_ROLE,
    "DELETE /v1/people/{email}": ADMIN_ROLE,
    "GET /v1/sessions/current": VIEWER,
    "DELETE /v1/sessions/current": VIEWER,
}
"""The role each management route needs (docs/api.md, "Roles", lists them the same)."""

NOT_CHANGES = {
    "POST /v1/journeys/validate",
    "POST /v1/journeys/{journey_id}/simulate",
    "POST /v1/segments/count",
    "POST /v1/templates/{template_id}/preview",
    "POST /v1/messages/preview",
}
"""Management routes that are not GETs yet change nothing, so record nothing."""


def management(app: FastAPI) -> list[Endpoint]:
    return [e for e in endpoints(app) if e.credential == "management"]


def role_token(store: Store, role: Role) -> dict[str, str]:
    """A header with a new personal token of that role, named `<role>-token`."""
    _, secret = store.create_token(f"{role}-token", role, created_by="test", expires_at=None)
    return bearer(secret)


@pytest.fixture
def tokens(store: Store) -> dict[Role, dict[str, str]]:
    """A personal token of every role."""
    return {role: role_token(store, role) for role in Role}


def below(role: Role) -> list[Role]:
    return [lower for lower in Role if not lower.includes(role)]


def snapshot(store: Store) -> dict[str, list[str]]:
    """Every row of every table, as text: what "nothing changed" compares."""
    with Session(store.engine) as session:
        return {
            table.name: sorted(map(repr, session.execute(table.select()).all()))
            for table in SQLModel.metadata.sorted_tables
        }


async def test_every_management_route_has_its_role_in_the_table(app: FastAPI) -> None:
    walked = {str(endpoint) for endpoint in management(app)}
    assert len(walked) > 30
    assert walked - set(ROLES) == set(), "classify these routes in ROLES (and docs/api.md)"
    assert set(ROLES) - walked == set(), "these routes are gone: drop them from ROLES"
    assert set(ROLES) >= NOT_CHANGES
    # The OpenAPI document says the same, per operation.
    document = app.openapi()
    for route, role in ROLES.items():
        method, path = route.split(" ")
        operation = document["paths"][path][method.lower()]
        assert operation["x-required-role"] == role, route
        assert f"Role: `{role}`" in operation["description"], route
        assert ("403" in operation["responses"]) == (role != VIEWER), route


def test_the_reference_lists_each_route_under_its_role() -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    table = text[text.index("| role | endpoints |") :].split("\n\n")[0]
    documented = {
        route: Role(row.split("`")[1])
        for row in table.splitlines()[2:]
        for route in re.findall(r"`([A-Z]+ /[^`]+)`", row)
    }
    assert documented == ROLES


async def test_each_role_gets_past_its_routes_and_403_below_them(
    app: FastAPI, api: ApiClient, store: Store, tokens: dict[Role, dict[str, str]]
) -> None:
    listed = management(app)
    before = snapshot(store)
    for endpoint in listed:
        needed = ROLES[str(endpoint)]
        for role in below(needed):
            # An empty body, which would be a 422: the role is checked before the body is read.
            response = await call(api.http, endpoint, tokens[role])
            error = assert_error(response, 403, "forbidden")
            assert f"needs the {needed} role" in error["message"], str(endpoint)
            assert f"'{role}-token' has the {role} role" in error["message"]
    assert snapshot(store) == before
    for endpoint in listed:
        for role in Role:
            if role.includes(ROLES[str(endpoint)]):
                status = (await call(api.http, endpoint, tokens[role])).status_code
                assert status not in (401, 403), (str(endpoint), role)


async def call(http: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]) -> Any:
    body = b"{}" if endpoint.body is not None else None
    return await http.request(endpoint.method, endpoint.path, content=body, headers=headers)


# --- changes: refused below their role, recorded at it -------------------------------------------


@dataclass
class Change:
    """A valid request to a route that changes something, and the audit entry it leaves: its
    target is the route's last path parameter unless given."""

    route: str
    action: str
    body: Any = None
    detail: dict[str, Any] = field(default_factory=dict)
    target: str | Callable[[httpx.Response], str] | None = None

    @property
    def method(self) -> str:
        return self.route.split(" ")[0]

    def path(self, ids: dict[str, str]) -> str:
        return self.route.split(" ")[1].format(**ids)

    def expected_target(self, ids: dict[str, str], response: httpx.Response) -> str:
        if self.target is None:
            return ids[re.findall(r"\{(\w+)\}", self.route)[-1]]
        return self.target if isinstance(self.target, str) else self.target(response)


VIPS = {"name": "VIPs", "condition": {"field": "user.plan", "op": "eq", "value": "vip"}}
BROADCAST = {
    "id": "spring-sale",
    "segment": "vips",
    "message": {"channel": "email", "content": {"subject": "Spring", "body": "20% off"}},
}
HELLO = {"channel": "email", "content": {"subject": "Hi", "body": "Hello"}}
CI = {"name": "ci", "role": "viewer"}

ADA = audit_user_reference(UNSUBSCRIBE_SECRET, "ada")
assert user_hash("ada") != ADA  # not the unkeyed hash anyone can compute

CHANGES = [  # in an order each can succeed in
    Change("PUT /v1/journeys/{journey_id}", "journey.draft_saved", journey_document("cart")),
    Change("POST /v1/journeys/{journey_id}/publish", "journey.published", None, {"version": 1}),
    Change("POST /v1/journeys/{journey_id}/pause", "journey.paused"),
    Change("POST /v1/journeys/{journey_id}/resume", "journey.resumed"),
    Change("POST /v1/journeys/{journey_id}/archive", "journey.archived"),
    Change("PUT /v1/segments/{segment_id}", "segment.saved", VIPS),
    Change("POST /v1/broadcasts", "broadcast.created", BROADCAST, {"segment": "vips"},
           target="spring-sale"),
    Change("POST /v1/broadcasts/{broadcast_id}/cancel", "broadcast.cancelled"),
    Change("DELETE /v1/segments/{segment_id}", "segment.deleted"),
    Change("PUT /v1/templates/{template_id}", "template.saved", HELLO, {"channel": "email"}),
    Change("DELETE /v1/templates/{template_id}", "template.deleted"),
    Change("PUT /v1/settings", "settings.changed", {"timezone": "Europe/Paris"},
           {"changed": ["timezone"]}, target="workspace"),
    Change("POST /v1/tokens", "token.created", CI, CI, target=lambda r: r.json()["id"]),
    Change("DELETE /v1/tokens/{token_id}", "token.revoked", None, {"name": "old"}),
    # A user is named by a hash keyed with the API's secret, never by their id.
    Change("GET /v1/users/{user_id}/export", "user.exported", target=ADA),
    Change("DELETE /v1/users/{user_id}", "user.erased", target=ADA),
    Change("POST /v1/people", "person.added", {"email": "new@example.com", "role": "viewer"},
           {"role": "viewer", "signs_in_with": "oidc"}, target="new@example.com"),
    Change("DELETE /v1/people/{email}", "person.removed"),
    # Last: it ends the session (here, the token) it is sent with.
    Change("DELETE /v1/sessions/current", "session.ended", target="viewer-token"),
]  # fmt: skip


async def test_changes_are_refused_below_their_role_and_recorded_with_their_actor(
    app: FastAPI, api: ApiClient, store: Store, tokens: dict[Role, dict[str, str]]
) -> None:
    old, _ = store.create_token("old", VIEWER, created_by="test", expires_at=None)
    store.update_traits("ada", {"email": "ada@example.com", "plan": "vip"}, [])
    ids = {"journey_id": "cart", "segment_id": "vips", "template_id": "hello",
           "broadcast_id": "spring-sale", "user_id": "ada", "token_id": old.id,
           "email": "new@example.com"}  # fmt: skip
    walked = {str(e) for e in management(app) if e.method != "GET"} - NOT_CHANGES
    assert {c.route for c in CHANGES if c.method != "GET"} == walked, "a change without a test"

    for change in CHANGES:
        needed = ROLES[change.route]
        before = snapshot(store)
        for role in below(needed):
            response = await send(api, change, ids, tokens[role])
            assert_error(response, 403, "forbidden")
        assert snapshot(store) == before, change.route
        response = await send(api, change, ids, tokens[needed])
        assert response.is_success, (change.route, response.text)
        [entry] = (await api.admin("GET", "/v1/audit?limit=1")).json()["entries"]
        assert {k: entry[k] for k in ("actor", "action", "target", "detail")} == {
            "actor": f"{needed}-token",
            "action": change.action,
            "target": change.expected_target(ids, response),
            "detail": change.detail,
        }, change.route
    recorded = store.audit_entries(100)
    assert len(recorded) == len(CHANGES)  # one entry per change, none for the refusals
    # The end user is never named (hex ids and hashes may spell "ada" by chance: compare whole).
    named = [value for e in recorded for value in (e.actor, e.target, *e.detail.values())]
    assert "ada" not in named


async def send(
    api: ApiClient, change: Change, ids: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    path = change.path(ids)
    return await api.http.request(change.method, path, json=change.body, headers=headers)


async def test_what_changes_nothing_records_nothing(
    api: ApiClient, store: Store, tokens: dict[Role, dict[str, str]]
) -> None:
    store.put_template("hello", "email", {"subject": "Hi {{ user.name }}", "body": "b"})
    editor = tokens[EDITOR]
    condition = {"condition": {"field": "user.plan", "op": "eq", "value": "vip"}}
    context = {"context": {"user": {"name": "Ada"}}}
    for path, body in (
        ("/v1/journeys/validate", journey_document()),
        ("/v1/segments/count", condition),
        ("/v1/templates/hello/preview", context),
        ("/v1/messages/preview", {"channel": "email", "template": "hello", **context}),
    ):
        response = await api.http.post(path, json=body, headers=editor)
        assert response.status_code == 200, (path, response.text)
    # Reads, and changes that failed, record nothing either.
    assert (await api.http.get("/v1/journeys", headers=tokens[VIEWER])).status_code == 200
    bad_segment = {"name": "x", "condition": {"field": "user.plan", "op": "nope"}}
    response = await api.http.put("/v1/segments/x", json=bad_segment, headers=editor)
    assert_error(response, 422, "validation_error")
    response = await api.http.post("/v1/journeys/nope/publish", headers=tokens[PUBLISHER])
    assert_error(response, 404, "not_found")
    assert store.audit_entries(10) == []


async def test_the_admin_token_acts_as_the_bootstrap_admin(api: ApiClient, store: Store) -> None:
    response = await api.http.put("/v1/settings", json={}, headers=ADMIN)
    assert response.status_code == 200
    [entry] = store.audit_entries(10)
    assert (entry.actor, entry.action, entry.detail) == (
        "bootstrap",
        "settings.changed",
        {"changed": []},
    )

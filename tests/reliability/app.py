"""The API app in process for the hostile-input and security tests, and its routes as the app
itself lists them (so a new endpoint is covered without editing a list)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.auth import principal, require_write_key, require_write_key_in_query
from api.body import BodyReader
from api.openapi import dependency_calls
from tests.api.helpers import bearer

WRITE_KEY = "hostile-write-key"
ADMIN_TOKEN = "hostile-admin-token"
UNSUBSCRIBE_SECRET = "hostile-unsubscribe-secret"
# Not tests.api.helpers' credentials: these suites run with values of their own.
WRITE = bearer(WRITE_KEY)
ADMIN = bearer(ADMIN_TOKEN)

PUBLIC = {
    "/healthz": "health checks",
    "/metrics": "Prometheus scrapes",
    "/unsubscribe": "the signed token in the link is the credential",
    "/c/{token}": "a tracked link in a message: its signed token is the credential",
    "/o/{token}.gif": "the open pixel of an email: its signed token is the credential",
    "/sdk/journeys.js": "the browser SDK, a public script",
    "/sdk/journeys.css": "the browser SDK's stylesheet",
    "/v1/sessions": "signing in: the password is the credential (or the admin token vouches "
    "for a member); tests/api/test_people.py",
    **{
        f"/mixpanel/{name}{slash}": "Mixpanel's libraries put the write key (their project "
        "token) in every record, which the endpoint checks: tests/api/test_mixpanel.py"
        for name in ("track", "import", "engage", "groups", "flags")
        for slash in ("", "/")
    },
}
"""The only API routes that take no credential, and why."""
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""FastAPI's own documentation routes (the spec: "OpenAPI at /docs"): no data, no actions."""

Credential = Literal["write", "write-in-query", "management", "none"]
"""What an endpoint takes: "management" is a token of any role (`tests/api/test_roles.py`
walks the roles); "write-in-query" is the live inbox stream's `?key=` (a request
with it streams for as long as the client stays, so only its refusals are walked here;
tests/api/test_inbox.py opens it)."""


@dataclass(frozen=True)
class Endpoint:
    """One method of one route."""

    method: str
    path: str
    """With every path parameter filled in with a harmless value."""
    template: str
    credential: Credential
    body: BodyReader | None

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def _routes(routes: Iterable[Any]) -> Iterable[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router (FastAPI ≥ 0.16x)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


SAMPLE = {"version": "1", "message_id": "1"}


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every API endpoint of the app (not its documentation routes), with the credential its
    dependencies require."""
    found = []
    for route in _routes(app.routes):
        if not isinstance(route, APIRoute):
            assert route.path in DOCUMENTATION, f"an unexpected non-API route {route.path}"
            continue
        calls = list(dependency_calls(route.dependant))
        credential: Credential = "none"
        if principal in calls:
            credential = "management"
        if require_write_key in calls:
            assert credential == "none", f"{route.path} asks for both credentials"
            credential = "write"
        if require_write_key_in_query in calls:
            assert credential == "none", f"{route.path} asks for two credentials"
            credential = "write-in-query"
        body = next((c for c in calls if isinstance(c, BodyReader)), None)
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE.get(m.group(1), "x"), route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append(Endpoint(method, path, route.path, credential, body))
    return found

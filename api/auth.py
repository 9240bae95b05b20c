"""Credentials: the write key for ingest; for management, the admin token or a personal
token, each acting under a role (`journeys.access`).

Ingest accepts the write key as HTTP Basic username with an empty password (what Segment SDKs
send) or as a Bearer token (the live inbox stream, opened by EventSource, which sends no
headers, takes it as `?key=`); management accepts only `Authorization: Bearer <token>`, so the
write key, which ships inside apps and web pages, can never change journeys. A management
request without a valid token gets 401 (unknown, revoked and expired tokens alike); one whose
role is too small gets 403 `forbidden`, and changes nothing.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from api.deps import AppState, app_state
from api.errors import ApiError
from journeys.access import BOOTSTRAP, Principal, Role

_WRITE_KEY_BASIC = HTTPBasic(
    scheme_name="writeKeyBasic",
    description="The write key as username, empty password (what Segment SDKs send).",
    realm="journeys",
    auto_error=False,
)
_WRITE_KEY_BEARER = HTTPBearer(
    scheme_name="writeKeyBearer",
    description="`Authorization: Bearer <write key>`.",
    auto_error=False,
)
_MANAGEMENT_BEARER = HTTPBearer(
    scheme_name="managementToken",
    description="`Authorization: Bearer <token>`: the admin token, or a personal token "
    "(`/v1/tokens`) acting under its role.",
    auto_error=False,
)


def _same(given: str, secret: str | None) -> bool:
    if not secret:  # create_app refuses to start without secrets; never match an empty one
        return False
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(given.encode(), secret.encode())


def _unauthorized(message: str, challenge: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


async def require_write_key(
    state: Annotated[AppState, Depends(app_state)],
    basic: Annotated[HTTPBasicCredentials | None, Security(_WRITE_KEY_BASIC)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_WRITE_KEY_BEARER)],
) -> None:
    """Refuse the request (401) unless it carries the write key."""
    secret = state.settings.write_key
    challenge = 'Basic realm="journeys", Bearer'
    if basic is not None:
        if basic.password == "" and _same(basic.username, secret):
            return
    elif bearer is not None:
        if _same(bearer.credentials, secret):
            return
    else:
        raise _unauthorized(
            "missing credentials: send the write key as the HTTP Basic username with an empty "
            "password, or as 'Authorization: Bearer <write key>'",
            challenge,
        )
    raise _unauthorized("invalid write key", challenge)


async def require_write_key_in_query(
    state: Annotated[AppState, Depends(app_state)],
    key: Annotated[
        str | None,
        Query(max_length=1024, description="the write key (EventSource sends no headers)"),
    ] = None,
) -> None:
    """Refuse the request (401) unless its `key` query parameter is the write key: for the
    live inbox stream, which browsers open with EventSource, which cannot send headers."""
    if key is None:
        raise ApiError(401, "unauthorized", "missing credentials: send the write key as ?key=")
    if not _same(key, state.settings.write_key):
        raise ApiError(401, "unauthorized", "invalid write key")


def principal(
    state: Annotated[AppState, Depends(app_state)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_MANAGEMENT_BEARER)],
) -> Principal:
    """Who the request acts for (401 without a valid token). A plain function: FastAPI runs
    it in a worker thread, as a personal token is looked up in the store. A token's expiry is
    read on the store's clock, as it was set."""
    if bearer is None:
        raise _unauthorized("missing credentials: send 'Authorization: Bearer <token>'", "Bearer")
    given = bearer.credentials
    if _same(given, state.settings.admin_token):
        return Principal(actor=BOOTSTRAP, role=Role.ADMIN)
    token = state.store.active_token(given, state.store.clock())
    if token is None:
        raise _unauthorized("invalid token: unknown, revoked or expired", "Bearer")
    return Principal(actor=token.name, role=Role(token.role), token_id=token.id)


def principal_if_any(
    state: Annotated[AppState, Depends(app_state)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_MANAGEMENT_BEARER)],
) -> Principal | None:
    """Who the request acts for, or None when it carries no token (401 for an invalid one):
    for routes whose body may be the credential instead."""
    return None if bearer is None else principal(state, bearer)


class RoleCheck:
    """A dependency giving the principal, refused (403 `forbidden`) unless its role includes
    `role`. One instance per role, so FastAPI runs a route's checks once per request."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __call__(self, who: Annotated[Principal, Depends(principal)]) -> Principal:
        """The principal, if its role is enough."""
        if not who.role.includes(self.role):
            message = f"this needs the {self.role} role; {who.actor!r} has the {who.role} role"
            raise ApiError(403, "forbidden", message)
        return who


_CHECKS = {role: RoleCheck(role) for role in Role}


Viewer = Annotated[Principal, Depends(_CHECKS[Role.VIEWER])]
"""A handler's parameter: the principal, who may read (every management token may)."""
Editor = Annotated[Principal, Depends(_CHECKS[Role.EDITOR])]
"""A handler's parameter: the principal, who may edit drafts, segments and templates.
Declare it first, before any body: the role is checked before the body is read."""
Publisher = Annotated[Principal, Depends(_CHECKS[Role.PUBLISHER])]
"""A handler's parameter: the principal, who may publish, broadcast and change settings
(declared first, as `Editor`)."""
Admin = Annotated[Principal, Depends(_CHECKS[Role.ADMIN])]
"""A handler's parameter: the principal, who may manage people and tokens, erase and export
users and read the audit log (declared first, as `Editor`)."""

WRITE_KEY = Depends(require_write_key)
"""Router dependency: ingest endpoints."""
MANAGEMENT = Depends(_CHECKS[Role.VIEWER])
"""Router dependency: management endpoints, which every valid token may reach (401 without
one); a route that needs more takes an `Editor`, `Publisher` or `Admin` parameter."""

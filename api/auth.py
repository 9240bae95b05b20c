"""Credentials: the write key for ingest, the admin token for management.

Ingest accepts the write key as HTTP Basic username with an empty password (what Segment SDKs
send) or as a Bearer token (the live inbox stream, opened by EventSource, which sends no
headers, takes it as `?key=`); management accepts only `Authorization: Bearer <admin token>`,
so the write key, which ships inside apps and web pages, can never change journeys.
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
_ADMIN_BEARER = HTTPBearer(
    scheme_name="adminToken",
    description="`Authorization: Bearer <admin token>`.",
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


async def require_admin(
    state: Annotated[AppState, Depends(app_state)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_ADMIN_BEARER)],
) -> None:
    """Refuse the request (401) unless it carries the admin token."""
    if bearer is None:
        raise _unauthorized(
            "missing credentials: send 'Authorization: Bearer <admin token>'", "Bearer"
        )
    if not _same(bearer.credentials, state.settings.admin_token):
        raise _unauthorized("invalid admin token", "Bearer")


WRITE_KEY = Depends(require_write_key)
"""Router dependency: ingest endpoints."""
ADMIN = Depends(require_admin)
"""Router dependency: management endpoints."""

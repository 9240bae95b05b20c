"""Access (admin): personal tokens, each acting under a role, and the audit log of every
management change."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.auth import MANAGEMENT, Admin
from api.body import JsonModel
from api.deps import ROW_ID, StoreDep
from api.errors import error_responses
from journeys.access import BOOTSTRAP, TOKEN_ID_PATTERN, Role
from journeys.errors import NotFound
from journeys.model import Duration, to_timedelta
from journeys.store import TokenRecord

router = APIRouter(
    prefix="/v1", dependencies=[MANAGEMENT], responses=error_responses(401, 404, 422)
)

TokenId = Annotated[
    str, Path(pattern=TOKEN_ID_PATTERN, description="the token's id (16 hex digits)")
]


def _token_name(name: str) -> str:
    if not name.isprintable() or not name.strip():
        raise ValueError("must be printable characters, not only spaces")
    if unicodedata.normalize("NFKC", name).strip().casefold() == BOOTSTRAP:
        raise ValueError(f"'{BOOTSTRAP}' names the admin token in the audit log")
    return name


class TokenRequest(BaseModel):
    """A token to create: whom it is for (the audit log's actor), its role, and how long it
    lasts (null: until revoked)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=100, description="who or what uses it, e.g. ci-deploy"),
        AfterValidator(_token_name),
    ]
    role: Role
    expires_in: Duration | None = Field(
        default=None, description="e.g. 30d or PT12H, at most 365 days; null: never expires"
    )


class CreatedToken(BaseModel):
    """A new token, with its secret: shown this once, never stored."""

    id: str
    name: str
    role: Role
    token: str = Field(description="the secret, sent as `Authorization: Bearer <token>`")
    expires_at: datetime | None


class TokenOut(BaseModel):
    """A token not revoked (no secret: only a hash of it is kept)."""

    id: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    expired: bool


class AuditEntry(BaseModel):
    """One management change: when, who (a token's name, a person, or `bootstrap` for the
    admin token), what (`<object>.<verb>`), on what, and non-personal details."""

    id: int
    at: datetime
    actor: str
    token_id: str | None = Field(
        description="the personal token the change came with; null: the admin token"
    )
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """Entries of the audit log, newest first, and where the next (older) page starts."""

    entries: list[AuditEntry]
    next: int | None = Field(description="`before` for the next page; null on the last page")


@router.post("/tokens", tags=["access"], status_code=201, summary="Create a token")
def create_token(
    who: Admin,
    body: Annotated[TokenRequest, Depends(JsonModel(TokenRequest))],
    store: StoreDep,
) -> CreatedToken:
    """A personal token for a teammate or a service, acting under `role`. The secret is in
    this answer only: the store keeps a hash of it."""
    expires_at = None
    if body.expires_in is not None:
        expires_at = store.clock() + to_timedelta(body.expires_in)
    record, secret = store.create_token(
        body.name, body.role, created_by=who.actor, expires_at=expires_at
    )
    detail = {"name": record.name, "role": record.role}
    store.record_audit(who, "token.created", record.id, detail)
    return CreatedToken(
        id=record.id, name=record.name, role=body.role, token=secret, expires_at=expires_at
    )


@router.get("/tokens", tags=["access"], summary="List tokens")
def list_tokens(who: Admin, store: StoreDep) -> list[TokenOut]:
    """Every token not revoked, expired ones included, oldest first; never a secret."""
    now = store.clock()
    return [_token_out(record, now) for record in store.tokens()]


def _token_out(record: TokenRecord, now: datetime) -> TokenOut:
    return TokenOut(
        **record.model_dump(exclude={"key_hash", "revoked_at"}),
        expired=record.expires_at is not None and record.expires_at <= now,
    )


@router.delete("/tokens/{token_id}", tags=["access"], status_code=204, summary="Revoke a token")
def revoke_token(who: Admin, token_id: TokenId, store: StoreDep) -> Response:
    """Revoke the token: its next request gets 401. 404 when there is no such token, or it
    was revoked already."""
    revoked = store.revoke_token(token_id)
    if revoked is None:
        raise NotFound(f"no token '{token_id}' (or it is revoked already)")
    store.record_audit(who, "token.revoked", token_id, {"name": revoked.name})
    return Response(status_code=204)


@router.get("/audit", tags=["access"], summary="The audit log")
def audit_log(
    who: Admin,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many entries")] = 100,
    before: Annotated[
        int | None,
        Query(ge=1, le=ROW_ID, description="entries older than this one (a page's `next`)"),
    ] = None,
) -> AuditPage:
    """Every management change, newest first, a page at a time."""
    # One more than asked says whether another page follows.
    found = store.audit_entries(limit + 1, before)
    entries = [AuditEntry(**record.model_dump()) for record in found[:limit]]
    return AuditPage(entries=entries, next=entries[-1].id if len(found) > limit else None)

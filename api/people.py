"""People who sign in to the designer (admin), and their sessions.

A session is a personal token named by the person's email, with their role, expiring after
`JOURNEYS_SESSION_HOURS`. It starts with the person's password (`POST /v1/sessions` with no
token: the password is the credential), or for a person an OIDC provider signed in to the
designer, with the admin token vouching for them (`POST /v1/sessions` with only the email).
Sign-in failures are logged under hashes of the account and address, never the email, the
address or the password.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.auth import MANAGEMENT, Admin, Viewer, principal_if_any
from api.body import JsonModel
from api.deps import NO_NUL, StateDep, StoreDep
from api.errors import ApiError, error_responses
from journeys.access import Principal, Role
from journeys.errors import NotFound
from journeys.people import (
    ACCOUNT_LIMIT,
    ADDRESS_LIMIT,
    EMAIL_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    account_key,
    address_key,
    check_password,
    hash_password,
    is_email,
    normalised_email,
    pseudonym,
)
from journeys.settings import Settings
from journeys.store import PersonRecord, Store

log = logging.getLogger(__name__)

people_router = APIRouter(
    prefix="/v1/people",
    tags=["people"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401, 403, 422),
)
sessions_router = APIRouter(
    prefix="/v1/sessions", tags=["people"], responses=error_responses(401, 422)
)


def _email(text: str) -> str:
    email = normalised_email(text)
    if not is_email(email):
        raise ValueError("expected an email address, like ada@example.com")
    return email


Email = Annotated[str, Field(max_length=EMAIL_MAX), AfterValidator(_email)]


class NewPerson(BaseModel):
    """A person to add: without a password, they sign in only through OIDC."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role
    password: str | None = Field(None, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class Person(BaseModel):
    """A person as listed (never their password or its hash)."""

    email: str
    role: Role
    signs_in_with: Literal["password", "oidc"] = Field(
        description="password: a password was set; oidc: only through the OIDC provider"
    )
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, record: PersonRecord) -> Person:
        """The person as listed."""
        return cls(
            email=record.email,
            role=Role(record.role),
            signs_in_with="oidc" if record.password_hash is None else "password",
            created_at=record.created_at,
            created_by=record.created_by,
        )


class SignIn(BaseModel):
    """The person's email and password; or only the email, with the admin token vouching for
    a person the designer's OIDC provider signed in."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: str | None = Field(None, max_length=PASSWORD_MAX)


class Session(BaseModel):
    """A started session: its token (shown once) acts as the person until `expires_at`."""

    token: str
    expires_at: datetime
    email: str
    role: Role


class CurrentSession(BaseModel):
    """Who the request's token acts for."""

    actor: str
    role: Role


PersonEmail = Annotated[
    str, Path(max_length=EMAIL_MAX, pattern=NO_NUL, description="the person's email")
]


@people_router.post("", summary="Add a person", status_code=201, responses=error_responses(409))
def add_person(
    who: Admin, person: Annotated[NewPerson, Depends(JsonModel(NewPerson))], store: StoreDep
) -> Person:
    """Add someone who may sign in to the designer, with a role; 409 when the email is taken."""
    password_hash = None if person.password is None else hash_password(person.password)
    record = store.add_person(person.email, person.role, password_hash, created_by=who.actor)
    added = Person.of(record)
    store.record_audit(
        who,
        "person.added",
        added.email,
        {"role": added.role.value, "signs_in_with": added.signs_in_with},
    )
    return added


@people_router.get("", summary="List people")
def list_people(who: Admin, store: StoreDep) -> list[Person]:
    """Everyone who may sign in, by email."""
    return [Person.of(record) for record in store.people()]


@people_router.delete("/{email}", summary="Remove a person", responses=error_responses(404))
def remove_person(who: Admin, email: PersonEmail, store: StoreDep) -> Person:
    """Remove a person; their sessions end at once."""
    record = store.remove_person(normalised_email(email))
    if record is None:
        raise NotFound(f"no person {normalised_email(email)!r}")
    store.record_audit(who, "person.removed", record.email)
    return Person.of(record)


@sessions_router.post("", summary="Sign in", status_code=201, responses=error_responses(403, 429))
def sign_in(
    body: Annotated[SignIn, Depends(JsonModel(SignIn))],
    request: Request,
    state: StateDep,
    who: Annotated[Principal | None, Depends(principal_if_any)],
) -> Session:
    """Start a session: with the person's password (no token needed; wrong passwords and
    unknown accounts get the same 401, and repeated failures a 429 with `Retry-After`), or
    with only the email and the admin token vouching (403 for someone not a member)."""
    store, settings = state.store, state.settings
    if body.password is not None:
        address = client_address(request, settings.trusted_networks)
        person = _check_password(store, state.link_secret, body.email, body.password, address)
        return _start(store, settings, person.email, created_by=person.email, method="password")
    if who is None:
        raise ApiError(
            401,
            "unauthorized",
            "send the password, or the admin token to vouch for a person signed in elsewhere",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not who.role.includes(Role.ADMIN):
        raise ApiError(403, "forbidden", f"vouching for a person needs the admin role; {who.role}")
    return _start(store, settings, body.email, created_by=who.actor, method="vouched")


NOT_A_MEMBER = "not a member: an admin adds them with journeys people add"


def client_address(request: Request, trusted: Sequence[IPv4Network | IPv6Network]) -> str:
    """Whom a sign-in comes from: the peer's address, or, when the peer is trusted (the
    designer, which signs everyone in from its own address, or a reverse proxy), the address
    it puts last in X-Forwarded-For."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for", "").rsplit(",", 1)[-1].strip()
    if not forwarded:
        return peer
    try:
        peer_ip = ipaddress.ip_address(peer)
        forwarded_ip = ipaddress.ip_address(forwarded)
    except ValueError:
        return peer
    return str(forwarded_ip) if any(peer_ip in network for network in trusted) else peer


CHECKS_AT_ONCE = threading.BoundedSemaphore(4)
"""Password checks an API process runs at once (each takes about 64 MiB for a tenth of a
second): more wait their turn rather than exhaust the memory."""


def _check_password(
    store: Store, secret: str, email: str, password: str, address: str
) -> PersonRecord:
    """The person whose password this is; 401 otherwise (the same work for unknown accounts),
    429 while the account or the address has failed too often. The attempt is counted before
    the password is checked, so parallel guesses cannot all slip under the limit; a success
    takes it back."""
    account, where = account_key(secret, email), address_key(secret, address)
    pseudonyms = f"account {pseudonym(secret, email)}, address {pseudonym(secret, address)}"
    wait = store.take_sign_in_attempt({account: ACCOUNT_LIMIT, where: ADDRESS_LIMIT}, store.clock())
    if wait is not None:
        log.warning("sign-in refused: too many failures (%s)", pseudonyms)
        raise ApiError(
            429,
            "too_many_requests",
            f"too many failed sign-ins: try again in {math.ceil(wait / 60)} minute(s)",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    person = store.person(email)
    with CHECKS_AT_ONCE:
        check = check_password(password, None if person is None else person.password_hash)
    if person is None or not check.right:
        log.info("sign-in failed (%s)", pseudonyms)
        raise ApiError(
            401, "unauthorized", "wrong email or password", headers={"WWW-Authenticate": "Bearer"}
        )
    store.settle_sign_in(account, where)
    if check.new_hash is not None:
        store.replace_password_hash(person.email, check.new_hash)
    return person


def _start(
    store: Store, settings: Settings, email: str, *, created_by: str, method: str
) -> Session:
    """A session for the person as they are now (403 when they were removed meanwhile)."""
    expires_at = store.clock() + timedelta(hours=settings.session_hours)
    started = store.start_session(email, created_by=created_by, expires_at=expires_at)
    if started is None:
        raise ApiError(403, "forbidden", NOT_A_MEMBER)
    person, token, secret = started
    role = Role(person.role)
    session = Principal(actor=person.email, role=role, token_id=token.id)
    detail = {"method": method, "by": created_by}
    store.record_audit(session, "session.started", person.email, detail)
    return Session(token=secret, expires_at=expires_at, email=person.email, role=role)


@sessions_router.get("/current", summary="Who this token acts for")
def current_session(who: Viewer) -> CurrentSession:
    """The actor and role of the request's token (the designer shows what that role allows)."""
    return CurrentSession(actor=who.actor, role=who.role)


@sessions_router.delete("/current", summary="Sign out", responses=error_responses(400))
def sign_out(who: Viewer, store: StoreDep) -> CurrentSession:
    """End the session whose token the request carries (it is revoked at once)."""
    if who.token_id is None:
        raise ApiError(400, "bad_request", "the admin token is not a session: nothing to end")
    store.revoke_token(who.token_id)
    store.record_audit(who, "session.ended", who.actor)
    return CurrentSession(actor=who.actor, role=who.role)

"""Who may do what: the roles, the people and tokens acting under them, and the secrets of
personal tokens.

Each role includes the ones before it: a `viewer` reads everything under `/v1/` that
management reads; an `editor` also edits drafts, segments, conditions and templates, and
simulates and previews; a `publisher` also publishes, pauses, resumes and archives journeys,
sends broadcasts and changes the workspace settings; an `admin` also manages people and
tokens, erases and exports end users, and reads the audit log. The admin token of the
settings acts as `admin`, named `bootstrap`.

A personal token reads `jt_<id>_<key>`: the id finds its record, and only a SHA-256 hash of
the key is stored (a key is 256 random bits, so a fast hash is as good as a slow one), compared
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a person or token may do; each includes the ones before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    PUBLISHER = "publisher"
    ADMIN = "admin"

    def includes(self, other: Role) -> bool:
        """Whether this role may do what `other` may."""
        return _RANKS[self] >= _RANKS[other]


_RANKS = {role: rank for rank, role in enumerate(Role)}

BOOTSTRAP = "bootstrap"
"""The actor the admin token of the settings acts as."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the actor the audit log names (a token's name, or the person a
    designer session's token acts for), with its role and the token it came with (None for
    the bootstrap admin token)."""

    actor: str
    role: Role
    token_id: str | None = None


TOKEN_PREFIX = "jt_"
_ID = "[0-9a-f]{16}"
TOKEN_ID_PATTERN = f"^{_ID}$"
"""A token's id: the part of its secret between `jt_` and the key."""
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}(?P<id>{_ID})_(?P<key>[A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class TokenSecret:
    """A new personal token: its id (public), the whole secret (shown once) and the hash of
    its key (stored)."""

    token_id: str
    secret: str
    key_hash: str


def new_token_secret() -> TokenSecret:
    """A fresh personal token."""
    token_id = secrets.token_hex(8)
    key = secrets.token_urlsafe(32)
    return TokenSecret(token_id, f"{TOKEN_PREFIX}{token_id}_{key}", key_hash(key))


def split_token(secret: str) -> tuple[str, str] | None:
    """The id and key of something shaped like a personal token, else None."""
    found = _TOKEN.match(secret)
    return None if found is None else (found["id"], found["key"])


def key_hash(key: str) -> str:
    """The stored form of a token's key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Whether `key` is the key whose hash is stored, in constant time."""
    return hmac.compare_digest(key_hash(key).encode(), stored_hash.encode())


def audit_user_reference(secret: str, user_id: str) -> str:
    """How the audit log names an end user (erased or exported): a keyed hash, so the log
    leads back to nobody without the secret (an unkeyed hash of an email or a numbered id
    can be reversed by trying them all)."""
    return hmac.new(secret.encode(), f"audit-user:{user_id}".encode(), hashlib.sha256).hexdigest()

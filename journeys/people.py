"""People who sign in to the designer: their emails, password rules and hashes, and the rules
that slow down guessing.

Passwords are hashed with Argon2id (`argon2-cffi`, its default parameters); a stored hash made
with older parameters is replaced at the person's next successful sign-in. A sign-in for an
unknown account, or for a person who signs in only through OIDC, checks the password against a
fixed dummy hash, so it costs the same time as a wrong password and the answer reveals nothing.

Failed sign-ins are counted per account and per client address, each under a key that is a
hash (never the email or the address itself); too many within the window and further attempts
are refused until the window ends, even with the right password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PASSWORD_MIN = 12
"""The fewest characters a password may have."""
PASSWORD_MAX = 1024
"""The most characters a password may have (hashing a longer one is wasted work)."""
EMAIL_MAX = 320
EMAIL = r"[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+"
"""What an email must look like: something, an @, something, no spaces or control characters."""

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("a password nobody has: unknown accounts are checked against it")


def normalised_email(email: str) -> str:
    """The form an email is stored and compared in: trimmed, lower case."""
    return email.strip().lower()


def is_email(text: str) -> bool:
    """Whether `text` looks like an email address."""
    return len(text) <= EMAIL_MAX and re.fullmatch(EMAIL, text) is not None


def hash_password(password: str) -> str:
    """The stored form of a password."""
    return _HASHER.hash(password)


@dataclass(frozen=True)
class PasswordCheck:
    """Whether a password was right, and the hash to store instead when the stored one was
    made with older parameters (None when it is fine)."""

    right: bool
    new_hash: str | None = None


def check_password(password: str, stored_hash: str | None) -> PasswordCheck:
    """Whether `password` is the one `stored_hash` was made from; without a stored hash (no
    such person, or one who signs in only through OIDC), the same work against a dummy hash,
    and never right."""
    try:
        right = _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return PasswordCheck(right=False)
    if right and stored_hash is not None and _HASHER.check_needs_rehash(stored_hash):
        return PasswordCheck(right=True, new_hash=_HASHER.hash(password))
    return PasswordCheck(right=right)


@dataclass(frozen=True)
class SignInLimit:
    """At most `failures` failed sign-ins under one key within `window`."""

    failures: int
    window: timedelta


ACCOUNT_LIMIT = SignInLimit(failures=5, window=timedelta(minutes=15))
"""Failed sign-ins one account may have before it is refused for the rest of the window."""
ADDRESS_LIMIT = SignInLimit(failures=20, window=timedelta(minutes=15))
"""Failed sign-ins from one client address (more: colleagues may share one address)."""


def account_key(secret: str, email: str) -> str:
    """The key counting an account's failed sign-ins (a keyed hash: it names nobody in the
    store)."""
    return "account:" + pseudonym(secret, normalised_email(email))


def address_key(secret: str, address: str) -> str:
    """The key counting a client address's failed sign-ins."""
    return "address:" + pseudonym(secret, address)


def pseudonym(secret: str, text: str) -> str:
    """A short stable stand-in for an email or address, for keys and logs: keyed, so that it
    cannot be reversed by hashing every address or a list of staff emails."""
    keyed = hmac.new(secret.encode(), f"sign-in:{text}".encode(), hashlib.sha256)
    return keyed.hexdigest()[:16]

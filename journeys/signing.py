"""Signed tokens: a JSON value in the clear and an HMAC-SHA256 over it, verifiable without any
lookup.

A token is `base64url(json(value)) "." base64url(HMAC-SHA256(secret, purpose ":" payload))`.
The purpose (`unsubscribe`, `click`, `open`) is part of what is signed, so a token made for one
purpose never verifies for another, though they share one secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from journeys.errors import InvalidLink


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()


def seal(secret: str, purpose: str, value: Any) -> str:
    """The token carrying `value` (anything JSON can hold) for `purpose`."""
    payload = _encode(json.dumps(value, separators=(",", ":")).encode())
    return f"{payload}.{_encode(_mac(secret, purpose, payload))}"


def unseal(secret: str, purpose: str, token: str) -> Any:
    """The value a token made by `seal` for `purpose` carries; raise `InvalidLink` unless it
    was signed with `secret` for that purpose. The signature is compared in constant time and
    checked before the payload is parsed."""
    payload, _, signature = token.partition(".")
    try:
        if hmac.compare_digest(_decode(signature), _mac(secret, purpose, payload)):
            return json.loads(_decode(payload))
    except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
        pass
    raise InvalidLink(f"this {purpose} link is not valid")

"""Signed unsubscribe links: one per user and channel, verifiable without any lookup.

A link carries the user id and the channel in the clear and an HMAC-SHA256 of both under
`JOURNEYS_UNSUBSCRIBE_SECRET`, so nobody without the secret can make a link for another user,
and links in old emails keep working for as long as the secret does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from journeys.errors import InvalidLink
from journeys.model import CHANNELS

PATH = "/unsubscribe"
ALL_CHANNELS = "all"


@dataclass(frozen=True)
class Unsubscribe:
    """What a verified link asks: stop messages on `channel` ("all": every channel)."""

    user_id: str
    channel: str

    @property
    def trait(self) -> str:
        """The profile trait that records it: `unsubscribed` or `unsubscribed_<channel>`."""
        return "unsubscribed" if self.channel == ALL_CHANNELS else f"unsubscribed_{self.channel}"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256).digest()


def sign(secret: str, request: Unsubscribe) -> str:
    """The token of a link for `request`."""
    payload = _encode(json.dumps([request.user_id, request.channel]).encode())
    return f"{payload}.{_encode(_mac(secret, payload))}"


def verify(secret: str, token: str) -> Unsubscribe:
    """What the token asks; raise `InvalidLink` unless it was signed with `secret`."""
    payload, _, signature = token.partition(".")
    try:
        genuine = hmac.compare_digest(_decode(signature), _mac(secret, payload))
        user_id, channel = json.loads(_decode(payload)) if genuine else (None, None)
    except (binascii.Error, ValueError, TypeError):
        genuine = False
    if not genuine or not isinstance(user_id, str) or channel not in (*CHANNELS, ALL_CHANNELS):
        raise InvalidLink("this unsubscribe link is not valid")
    return Unsubscribe(user_id=user_id, channel=channel)


@dataclass(frozen=True)
class Links:
    """Makes unsubscribe links to the API at `base_url`, signed with `secret`."""

    base_url: str
    secret: str

    def unsubscribe(self, user_id: str, channel: str) -> str:
        """The link that unsubscribes `user_id` from `channel`."""
        token = sign(self.secret, Unsubscribe(user_id=user_id, channel=channel))
        return f"{self.base_url.rstrip('/')}{PATH}?{urlencode({'token': token})}"

"""Signed unsubscribe links: one per user and channel, verifiable without any lookup.

A link carries the user id and the channel in the clear and an HMAC-SHA256 of both under
`JOURNEYS_UNSUBSCRIBE_SECRET`, so nobody without the secret can make a link for another user,
and links in old emails keep working for as long as the secret does.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from journeys.errors import InvalidLink
from journeys.model import CHANNELS
from journeys.signing import seal, unseal

PATH = "/unsubscribe"
PURPOSE = "unsubscribe"
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


def sign(secret: str, request: Unsubscribe) -> str:
    """The token of a link for `request`."""
    return seal(secret, PURPOSE, [request.user_id, request.channel])


def verify(secret: str, token: str) -> Unsubscribe:
    """What the token asks; raise `InvalidLink` unless it was signed with `secret`."""
    try:
        user_id, channel = unseal(secret, PURPOSE, token)
    except (InvalidLink, TypeError, ValueError):
        user_id, channel = None, None
    if not isinstance(user_id, str) or channel not in (*CHANNELS, ALL_CHANNELS):
        raise InvalidLink("this unsubscribe link is not valid")
    return Unsubscribe(user_id=user_id, channel=channel)


@dataclass(frozen=True)
class Links:
    """Makes unsubscribe links to the API at `base_url`, signed with `secret` (which
    `journeys.tracking` also signs tracked links with)."""

    base_url: str
    secret: str

    def unsubscribe(self, user_id: str, channel: str) -> str:
        """The link that unsubscribes `user_id` from `channel`."""
        token = sign(self.secret, Unsubscribe(user_id=user_id, channel=channel))
        return f"{self.base_url.rstrip('/')}{PATH}?{urlencode({'token': token})}"

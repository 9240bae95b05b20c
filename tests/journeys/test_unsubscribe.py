"""Signed unsubscribe links."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from journeys.errors import InvalidLink
from journeys.unsubscribe import Links, Unsubscribe, sign, verify

SECRET = "s3cret"


def test_a_link_names_the_user_and_channel_it_was_made_for() -> None:
    url = Links("https://api.example.com/", SECRET).unsubscribe("ada@1", "email")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.example.com", "/unsubscribe")
    (token,) = parse_qs(parts.query)["token"]
    assert verify(SECRET, token) == Unsubscribe(user_id="ada@1", channel="email")
    assert verify(SECRET, token).trait == "unsubscribed_email"
    assert Unsubscribe(user_id="ada", channel="all").trait == "unsubscribed"


def test_a_link_cannot_be_forged_for_another_user() -> None:
    genuine = sign(SECRET, Unsubscribe(user_id="mallory", channel="email"))
    payload, signature = genuine.split(".")
    other_payload = sign(SECRET, Unsubscribe(user_id="ada", channel="email")).split(".")[0]
    forgeries = [
        f"{other_payload}.{signature}",  # another user's id under mallory's signature
        sign("guessed", Unsubscribe(user_id="ada", channel="email")),  # the wrong secret
        payload,
        f"{payload}.",
        f"{payload}.!!!",
        "",
        "....",
        sign(SECRET, Unsubscribe(user_id="ada", channel="fax")),  # not a channel
    ]
    for token in forgeries:
        with pytest.raises(InvalidLink):
            verify(SECRET, token)

"""Tracked messages: signed click and open links, rewriting a message's links, the events an
open or a click records, and the rules that tell machines from people.

Links. A click link `{base}/c/{token}` carries the delivery id and the original URL, an open
pixel `{base}/o/{token}.gif` the delivery id, both signed (`journeys.signing`) with the secret
that signs unsubscribe links, each for its own purpose: an open token is never a click token
nor an unsubscribe token. A click link is self-contained, so it keeps redirecting after its
delivery or journey is gone, and it can only ever redirect to the URL it was made for.

Rewriting. Only `http` and `https` URLs with a host are wrapped, never unsubscribe links (the
message's own, and any URL with a path segment starting with "unsubscribe"), nor URLs longer
than `MAX_URL`. HTML goes through `html.parser`: the document is copied byte for byte, and only
the `href` values of `<a>` tags change (plus the pixel before `</body>`).

Machines. Link scanners, security gateways and mail privacy proxies open and click on their
own. `machine_rule` names the first rule a hit matches (see `RULES`); such hits are still
recorded, with `machine: true`, and count nowhere.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from journeys.engagement import (
    DELIVERY_ID,
    EMAIL_LINK_CLICKED,
    EMAIL_OPENED,
    IN_APP_CLICKED,
    IN_APP_VIEWED,
    MACHINE,
    PUSH_OPENED,
    SMS_LINK_CLICKED,
)
from journeys.errors import InvalidLink
from journeys.signing import seal, unseal
from journeys.store.records import DeliveryRecord, EventRecord, NewEvent
from journeys.unsubscribe import Links

CLICK_PATH = "/c/"
OPEN_PATH = "/o/"
PIXEL_SUFFIX = ".gif"
MAX_URL = 2048
"""Longer URLs are left as they are (a click token carries its whole URL)."""
MAX_TOKEN = 16384
"""Longer tokens are refused before any work: no URL we wrap makes one this long."""

CLICK_EVENTS: dict[str, str] = {
    "email": EMAIL_LINK_CLICKED,
    "sms": SMS_LINK_CLICKED,
    "in_app": IN_APP_CLICKED,
    "push": PUSH_OPENED,
}
"""The event a click on a tracked link records, by the channel of its message."""


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """What a verified click token says: the delivery, and where the link goes."""

    delivery_id: int
    url: str


def click_token(secret: str, delivery_id: int, url: str) -> str:
    """The token of a link to `url` in delivery `delivery_id`."""
    return seal(secret, "click", [delivery_id, url])


def verify_click(secret: str, token: str) -> Click:
    """What a click token says; raise `InvalidLink` unless `secret` signed it as a click
    token for an http(s) URL."""
    value = unseal(secret, "click", token) if len(token) <= MAX_TOKEN else None
    match value:
        case [int() as delivery_id, str() as url] if _web_url(url):
            return Click(delivery_id=delivery_id, url=url)
    raise InvalidLink("this link is not valid")


def open_token(secret: str, delivery_id: int) -> str:
    """The token of the open pixel of delivery `delivery_id`."""
    return seal(secret, "open", delivery_id)


def verify_open(secret: str, token: str) -> int:
    """The delivery an open token is about; raise `InvalidLink` unless `secret` signed it as
    an open token."""
    value = unseal(secret, "open", token) if len(token) <= MAX_TOKEN else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidLink("this open pixel is not valid")


def _web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# --- rewriting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracker:
    """Rewrites the links of one delivery's rendered content."""

    links: Links
    delivery_id: int
    unsubscribe_url: str | None = None

    def link(self, url: str) -> str:
        """The tracked link for `url`, or `url` itself when it is not to be tracked."""
        if not self._trackable(url):
            return url
        token = click_token(self.links.secret, self.delivery_id, url)
        return f"{self.links.base_url.rstrip('/')}{CLICK_PATH}{token}"

    def pixel(self) -> str:
        """The URL of the open pixel."""
        token = open_token(self.links.secret, self.delivery_id)
        return f"{self.links.base_url.rstrip('/')}{OPEN_PATH}{token}{PIXEL_SUFFIX}"

    def _trackable(self, url: str) -> bool:
        if len(url) > MAX_URL or not _web_url(url) or url == self.unsubscribe_url:
            return False
        segments = urlsplit(url).path.lower().split("/")
        return not any(segment.startswith("unsubscribe") for segment in segments)

    def text(self, text: str) -> str:
        """Plain text with every http(s) URL in it tracked (punctuation that ends a sentence
        or closes a bracket opened before the URL stays outside)."""
        return _TEXT_URL.sub(lambda found: self._text_url(found.group()), text)

    def _text_url(self, candidate: str) -> str:
        url = _trim(candidate)
        return self.link(url) + candidate[len(url) :]

    def html(self, document: str) -> str:
        """An HTML document with the `href` of every `<a>` tracked and the open pixel added
        before `</body>` (or at the end), the rest copied unchanged."""
        scanner = _AnchorScanner(document)
        edits = [
            (start, end, _quoted(tracked))
            for start, end, url in scanner.hrefs
            if (tracked := self.link(url)) != url
        ]
        pixel = f'<img src="{html.escape(self.pixel())}" width="1" height="1" alt="" '
        pixel += 'style="border:0;width:1px;height:1px">'
        at = len(document) if scanner.body_end is None else scanner.body_end
        edits.append((at, at, pixel))
        out, done = [], 0
        for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):
            out += [document[done:start], replacement]
            done = end
        return "".join([*out, document[done:]])

    def content(self, channel: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a message's rendered content with its links tracked: email `html` and
        `body`, SMS `body`, in-app `cta.url`, push `data.url` (push `data` also carries the
        `delivery_id`, for the app to report opens)."""
        tracked = dict(content)
        match channel:
            case "email":
                if isinstance(content.get("html"), str) and content["html"].strip():
                    tracked["html"] = self.html(content["html"])
                if isinstance(content.get("body"), str):
                    tracked["body"] = self.text(content["body"])
            case "sms":
                if isinstance(content.get("body"), str):
                    tracked["body"] = self.text(content["body"])
            case "in_app" if isinstance(content.get("cta"), dict):
                tracked["cta"] = self._with_url(content["cta"])
            case "push" if isinstance(content.get("data", {}), dict):
                data = self._with_url(content.get("data", {}))
                tracked["data"] = {**data, DELIVERY_ID: str(self.delivery_id)}
        return tracked

    def _with_url(self, holder: dict[str, Any]) -> dict[str, Any]:
        if isinstance(holder.get("url"), str):
            return {**holder, "url": self.link(holder["url"])}
        return holder


_TEXT_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_CLOSING = {")": "(", "]": "[", "}": "{"}


def _trim(url: str) -> str:
    """A URL found in text without the punctuation after it: sentence marks and quotes, and
    closing brackets the URL did not open."""
    while url:
        last = url[-1]
        if last in ".,;:!?'*" or (last in _CLOSING and url.count(_CLOSING[last]) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


def _quoted(value: str) -> str:
    return '"' + html.escape(value, quote=True) + '"'


class _AnchorScanner(HTMLParser):
    """Finds, in an HTML document, where the `href` value of each `<a>` is (as offsets into
    the document) and where the last `</body>` starts. Markup the parser reads differently
    from the attribute scan is left alone rather than guessed at."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self._document = document
        # The parser reports (line, column); lines are counted on "\n" only, as it does.
        self._lines = [0, *(i + 1 for i, c in enumerate(document) if c == "\n")]
        self.hrefs: list[tuple[int, int, str]] = []
        """(start, end, URL): the span of an href value (quotes included), and the URL."""
        self.body_end: int | None = None
        self.feed(document)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note where the first `href` of an `<a>` is."""
        href = next((value for name, value in attrs if name == "href"), None)
        raw = self.get_starttag_text()
        if tag != "a" or href is None or raw is None:
            return
        start = self._offset()
        if self._document[start : start + len(raw)] != raw:
            return
        span = _href_span(raw)
        if span is None or html.unescape(_unquote(raw[span[0] : span[1]])) != href:
            return
        self.hrefs.append((start + span[0], start + span[1], href.strip()))

    def handle_endtag(self, tag: str) -> None:
        """Note where `</body>` is."""
        if tag == "body":
            self.body_end = self._offset()


def _unquote(value: str) -> str:
    return value[1:-1] if value[:1] in ("'", '"') else value


def _href_span(tag: str) -> tuple[int, int] | None:
    """The span of the first `href` attribute's value in a start tag's text, quotes included,
    read as HTML's tokenizer reads attributes; None when it has no value."""
    end = len(tag) - (2 if tag.endswith("/>") else 1)
    i = 1
    while i < end and not _space_or(tag[i], "/>"):
        i += 1  # the tag name
    while i < end:
        while i < end and _space_or(tag[i], "/"):
            i += 1
        name_start = i
        i += 1  # a name may start with "="
        while i < end and not _space_or(tag[i], "/>="):
            i += 1
        name = tag[name_start:i].lower()
        j = i
        while j < end and tag[j].isspace():
            j += 1
        if j >= end or tag[j] != "=":
            i = j
            continue
        j += 1
        while j < end and tag[j].isspace():
            j += 1
        value_start = j
        if j < end and tag[j] in ("'", '"'):
            closing = tag.find(tag[j], j + 1)
            j = end if closing < 0 else closing + 1
        else:
            while j < end and not _space_or(tag[j], ">"):
                j += 1
        if name == "href":
            return value_start, j
        i = j
    return None


def _space_or(char: str, others: str) -> bool:
    return char.isspace() or char in others


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A request to a tracked link or an open pixel: when, and from which user agent."""

    at: datetime
    user_agent: str | None


def _once_a_minute(key: str, hit: Hit, machine: bool) -> str:
    """The message id shared by every hit of one kind (`key`) in one minute, so the store
    keeps the first and drops the rest. People and machines have separate ones: a gateway
    that checks a link just before redirecting the person who clicked it (as Outlook's Safe
    Links does) must not take the person's click."""
    return f"{key}:{int(hit.at.timestamp() // 60)}{':machine' if machine else ''}"


def open_event(delivery: DeliveryRecord, hit: Hit) -> NewEvent:
    """The `Email Opened` event of a pixel hit: one per delivery and minute (and one more for
    machines)."""
    machine = machine_rule(delivery, hit) is not None
    message_id = _once_a_minute(f"open:{delivery.id}", hit, machine)
    return engagement_event(delivery, EMAIL_OPENED, message_id, hit.at, machine=machine)


def click_event(
    delivery: DeliveryRecord, url: str, hit: Hit, recent: Sequence[EventRecord] = ()
) -> NewEvent:
    """The click event of a hit on a tracked link to `url` (`CLICK_EVENTS`), given the
    delivery's `recent` engagement events (for the scanner rule): one per URL, delivery and
    minute (and one more for machines)."""
    name = CLICK_EVENTS[delivery.channel]
    earlier = [
        (event.properties.get("url"), event.timestamp) for event in recent if event.name == name
    ]
    machine = machine_rule(delivery, hit, url=url, earlier_clicks=earlier) is not None
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    message_id = _once_a_minute(f"click:{delivery.id}:{digest}", hit, machine)
    return engagement_event(delivery, name, message_id, hit.at, url=url, machine=machine)


def view_event(delivery: DeliveryRecord, at: datetime) -> NewEvent:
    """The `In-App Message Viewed` event of an inbox read (once per delivery)."""
    return engagement_event(delivery, IN_APP_VIEWED, f"view:{delivery.id}", at, machine=False)


def engagement_event(
    delivery: DeliveryRecord,
    name: str,
    message_id: str,
    at: datetime,
    *,
    machine: bool,
    url: str | None = None,
) -> NewEvent:
    """A track event about `delivery`, for its user, with the delivery's attribution."""
    properties: dict[str, Any] = delivery.attribution()
    if url is not None:
        properties["url"] = url
    properties[MACHINE] = machine
    return NewEvent(
        message_id=message_id,
        user_id=delivery.user_id,
        type="track",
        name=name,
        properties=properties,
        timestamp=at,
        received_at=at,
    )


# --- machines ----------------------------------------------------------------------------------

SOON = timedelta(seconds=5)
"""An email or SMS opened or clicked this soon after it was sent was opened by a machine."""
SCANNER_BURST = timedelta(seconds=2)
"""A click on a second URL of a delivery this soon after a click on another is a scanner."""

ROBOTS = (
    # Crawlers and link-preview fetchers name themselves.
    "bot/", "bot-", "bot;", "bot)", "+http", "crawl", "spider", "scanner", "headless",
    "facebookexternalhit", "whatsapp", "skypeuripreview",
    # HTTP libraries and command-line tools.
    "python-", "python/", "aiohttp", "httpx", "curl/", "wget/", "go-http-client", "java/",
    "okhttp", "apache-httpclient", "libwww-perl", "node-fetch", "axios/", "ruby",
    # Mail security gateways that follow links to scan them.
    "barracuda", "mimecast", "proofpoint", "symantec", "messagelabs", "forcepoint",
    "trendmicro", "fireeye", "sophos", "zscaler", "ironport",
)  # fmt: skip
"""Fragments of user agents (lower case) that only robots and HTTP libraries send."""
PRIVACY_PROXY = "Mozilla/5.0"
"""The whole user agent of Apple Mail Privacy Protection's proxy, which fetches every image
of a message when it arrives, whether or not anyone reads it. No browser sends only this."""

NO_USER_AGENT = "no user agent"
ROBOT = "robot user agent"
MAIL_PROXY = "mail privacy proxy"
TOO_SOON = "too soon after sending"
EVERY_LINK = "every link at once"
RULES = (NO_USER_AGENT, ROBOT, MAIL_PROXY, TOO_SOON, EVERY_LINK)
"""The machine rules, in the order they are tried."""


def machine_rule(
    delivery: DeliveryRecord,
    hit: Hit,
    *,
    url: str | None = None,
    earlier_clicks: Sequence[tuple[Any, datetime]] = (),
) -> str | None:
    """The first rule (`RULES`) saying a machine made this open or click (a click has a `url`
    and the delivery's `earlier_clicks` as (url, time)), or None for a person:

    - no user agent: people's browsers and mail apps always send one;
    - robot user agent: it holds a fragment of `ROBOTS`;
    - mail privacy proxy: the user agent is exactly `PRIVACY_PROXY`;
    - too soon after sending: an email or SMS hit within `SOON` of the send (or before the
      send was even recorded), when gateways scan the message on its way;
    - every link at once: a click on a URL within `SCANNER_BURST` after a click on another
      URL of the same delivery (the first of such a burst counts, unless another rule holds).
    """
    agent = (hit.user_agent or "").strip()
    if not agent:
        return NO_USER_AGENT
    lowered = agent.lower()
    if any(fragment in lowered for fragment in ROBOTS):
        return ROBOT
    if agent == PRIVACY_PROXY:
        return MAIL_PROXY
    if delivery.channel in ("email", "sms") and (
        delivery.sent_at is None or hit.at - delivery.sent_at < SOON
    ):
        return TOO_SOON
    if url is not None and any(
        other != url and timedelta(0) <= hit.at - at <= SCANNER_BURST
        for other, at in earlier_clicks
    ):
        return EVERY_LINK
    return None

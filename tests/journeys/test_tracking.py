"""Tracked messages: signed tokens, link rewriting, machine rules, engagement events, and the
store's record of opens and clicks (on SQLite and PostgreSQL)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from journeys import tracking
from journeys.errors import InvalidLink
from journeys.signing import seal
from journeys.store import DeliveryRecord, EventRecord, NewEvent, Store
from journeys.tracking import (
    EVERY_LINK,
    MAIL_PROXY,
    NO_USER_AGENT,
    ROBOT,
    RULES,
    TOO_SOON,
    Click,
    Hit,
    Tracker,
    click_event,
    click_token,
    machine_rule,
    open_event,
    open_token,
    verify_click,
    verify_open,
    view_event,
)
from journeys.unsubscribe import Links, Unsubscribe, sign, verify
from tests.factories import sent_delivery

SECRET = "tracking-secret"
BASE = "https://t.shop.example"
UNSUBSCRIBE = f"{BASE}/unsubscribe?token=abc"
TRACKER = Tracker(Links(BASE, SECRET), 42, UNSUBSCRIBE)
SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def clicked(link: str) -> Click:
    """What the tracked link `link` points at (it must be one)."""
    assert link.startswith(f"{BASE}/c/"), link
    return verify_click(SECRET, link.removeprefix(f"{BASE}/c/"))


def delivery(channel: str = "email", **fields: Any) -> DeliveryRecord:
    """A sent delivery (not stored) with defaults."""
    values: dict[str, Any] = {
        "id": 42,
        "idempotency_key": "enr:node",
        "journey_id": "cart",
        "version": 3,
        "node_id": "reminder",
        "user_id": "ada",
        "channel": channel,
        "status": "sent",
        "sent_at": SENT,
    }
    values.update(fields)
    return DeliveryRecord(**values)


def hit(seconds: float = 60, user_agent: str | None = BROWSER) -> Hit:
    """A hit `seconds` after `SENT`."""
    return Hit(at=SENT + timedelta(seconds=seconds), user_agent=user_agent)


# --- tokens ------------------------------------------------------------------------------------


def test_a_click_token_carries_its_delivery_and_url() -> None:
    token = click_token(SECRET, 7, "https://shop.example/cart?id=9&utm=mail")
    assert verify_click(SECRET, token) == Click(7, "https://shop.example/cart?id=9&utm=mail")
    assert verify_open(SECRET, open_token(SECRET, 7)) == 7


def test_a_tampered_or_foreign_token_never_verifies() -> None:
    genuine = click_token(SECRET, 7, "https://shop.example/")
    payload, signature = genuine.split(".")
    elsewhere = click_token(SECRET, 7, "https://evil.example/").split(".")[0]
    forgeries = [
        f"{elsewhere}.{signature}",  # another URL under this link's signature
        click_token("guessed", 7, "https://evil.example/"),  # the wrong secret
        payload,
        f"{payload}.",
        f"{payload}.{signature[:-2]}",
        f"{payload}.!!!!",
        "",
        "....",
        "é.é",
        open_token(SECRET, 7),  # an open token is no click token
        sign(SECRET, Unsubscribe(user_id="ada", channel="email")),  # nor an unsubscribe token
        seal(SECRET, "click", [7, "javascript:alert(1)"]),  # we only ever wrap http(s) URLs
        seal(SECRET, "click", [7, "https:///no-host"]),
        seal(SECRET, "click", ["7", "https://shop.example/"]),
        seal(SECRET, "click", {"delivery": 7}),
        seal(SECRET, "click", [7, "https://shop.example/" + "a" * tracking.MAX_TOKEN]),
    ]
    for token in forgeries:
        with pytest.raises(InvalidLink):
            verify_click(SECRET, token)
    for token in [genuine, seal(SECRET, "open", True), seal(SECRET, "open", "7"), "x.y"]:
        with pytest.raises(InvalidLink):
            verify_open(SECRET, token)
    with pytest.raises(InvalidLink):
        verify(SECRET, genuine)  # a click token is no unsubscribe token


# --- rewriting: HTML ---------------------------------------------------------------------------

DOCUMENT = """<!DOCTYPE html>
<HTML><Body class="mail">
<!-- <a href="https://commented.example/">old</a> -->
<A Class=button TARGET="_blank" HREF = 'https://shop.example/cart?id=9&amp;utm=mail' >Cart</A>
<a title="it&#39;s &quot;new&quot;" href="https://shop.example/new">New</a>
<script>var link = "<a href=https://script.example/>";</script>
<a href=https://shop.example/bare data-x=1>Bare</a>\r
<a href="mailto:help@shop.example">Mail</a> <a href="tel:+15550000">Call</a>
<a href="#top">Top</a> <a href="/relative">Rel</a> <a href="javascript:void(0)">JS</a>
<a name="anchor">Anchor</a> <a href>Empty</a> <A HREF="  https://shop.example/spaced  ">Sp</A>
<a href="https://t.shop.example/unsubscribe?token=abc">Leave</a>
<a href="https://shop.example/email/Unsubscribe/9">Theirs</a>
<a href="https://shop.example/x" href="https://shop.example/second">Two</a>
</BODY>
</HTML>
"""


def test_html_changes_only_the_href_values_and_adds_the_pixel() -> None:
    out = TRACKER.html(DOCUMENT)
    changed = {
        "'https://shop.example/cart?id=9&amp;utm=mail'": "https://shop.example/cart?id=9&utm=mail",
        '"https://shop.example/new"': "https://shop.example/new",
        "https://shop.example/bare": "https://shop.example/bare",
        '"  https://shop.example/spaced  "': "https://shop.example/spaced",
        '"https://shop.example/x"': "https://shop.example/x",
    }
    expected = DOCUMENT
    for source, url in changed.items():
        link = TRACKER.link(url)
        assert link != url
        assert expected.count(f"={source}") + expected.count(f"= {source}") == 1, source
        expected = expected.replace(f"={source}", f'="{html.escape(link)}"', 1)
        expected = expected.replace(f"= {source}", f'= "{html.escape(link)}"', 1)
    pixel = (
        f'<img src="{TRACKER.pixel()}" width="1" height="1" alt="" '
        'style="border:0;width:1px;height:1px">'
    )
    expected = expected.replace("</BODY>", f"{pixel}</BODY>")
    assert out == expected


def test_the_tokens_in_html_carry_the_unescaped_urls() -> None:
    out = TRACKER.html('<p><a href="https://shop.example/?a=1&amp;b=&lt;2&gt;">x</a></p>')
    start = out.index('href="') + len('href="')
    link = html.unescape(out[start : out.index('"', start)])
    assert clicked(link) == Click(42, "https://shop.example/?a=1&b=<2>")


def test_the_pixel_goes_before_the_last_body_end_or_at_the_end() -> None:
    pixel = TRACKER.pixel()
    assert urlsplit(pixel).path.startswith("/o/")
    assert pixel.endswith(".gif")
    token = urlsplit(pixel).path.removeprefix("/o/").removesuffix(".gif")
    assert verify_open(SECRET, token) == 42
    fragment = TRACKER.html("<p>Hi</p>")
    assert fragment.startswith("<p>Hi</p><img ")
    assert fragment.endswith(">")
    nested = TRACKER.html("<body><p>a</p></body><body>b</body>\n")
    assert nested.startswith("<body><p>a</p></body><body>b<img ")
    assert nested.endswith("></body>\n")
    commented = TRACKER.html("<body>x<!-- </body> --></body>")
    assert commented.index("<img") > commented.index("-->")


# --- rewriting: text and channels --------------------------------------------------------------


def test_text_urls_are_tracked_without_the_punctuation_around_them() -> None:
    text = (
        "Back at https://shop.example/cart?id=9. Or (see https://w.example/A_(b)), "
        '"https://q.example/x"! HTTPS://UP.EXAMPLE/Y; ftp://files.example/ stays, '
        f"and so does {UNSUBSCRIBE}\nhttps://end.example/z"
    )
    out = TRACKER.text(text)
    parts = {
        "https://shop.example/cart?id=9": "Back at {}. ",
        "https://w.example/A_(b)": "(see {}), ",
        "https://q.example/x": '"{}"! ',
        "HTTPS://UP.EXAMPLE/Y": "{}; ",
        "https://end.example/z": "\n{}",
    }
    expected = text
    for url, around in parts.items():
        expected = expected.replace(around.format(url), around.format(TRACKER.link(url)))
        assert clicked(TRACKER.link(url)).url == url
    assert out == expected
    assert f"ftp://files.example/ stays, and so does {UNSUBSCRIBE}\n" in out


def test_what_is_never_tracked() -> None:
    for url in [
        UNSUBSCRIBE,
        f"{BASE}/unsubscribe?token=other",
        "https://shop.example/Unsubscribe.php?u=1",
        "https://shop.example/a/unsubscribe/",
        "mailto:help@shop.example",
        "tel:+15550000",
        "#top",
        "/relative",
        "javascript:alert(1)",
        "https://",
        "http://[::1",  # not a URL at all
        "https://shop.example/" + "a" * tracking.MAX_URL,
    ]:
        assert TRACKER.link(url) == url


def test_each_channel_tracks_its_own_fields() -> None:
    email = TRACKER.content(
        "email",
        {
            "subject": "https://s.example/",
            "body": "Go https://a.example/",
            "html": "<a href='https://a.example/'>Go</a>",
        },
    )
    assert email["subject"] == "https://s.example/"
    assert email["body"] == f"Go {TRACKER.link('https://a.example/')}"
    assert email["html"].startswith(f'<a href="{TRACKER.link("https://a.example/")}">Go</a><img ')
    assert TRACKER.content("email", {"subject": "s", "body": "b", "html": "  "})["html"] == "  "
    assert TRACKER.content("email", {"subject": "s", "body": "b"}) == {"subject": "s", "body": "b"}
    sms = TRACKER.content("sms", {"body": "Cart: https://a.example/c"})
    assert sms == {"body": f"Cart: {TRACKER.link('https://a.example/c')}"}
    cta = {"label": "Open", "url": "https://a.example/app"}
    in_app = TRACKER.content("in_app", {"body": "https://a.example/", "cta": cta})
    assert in_app == {"body": "https://a.example/", "cta": {**cta, "url": TRACKER.link(cta["url"])}}
    assert TRACKER.content("in_app", {"body": "b"}) == {"body": "b"}
    push = TRACKER.content(
        "push", {"title": "t", "body": "b", "data": {"url": "https://a.example/p", "sku": 9}}
    )
    assert push["data"] == {
        "url": TRACKER.link("https://a.example/p"),
        "sku": 9,
        "delivery_id": "42",
    }
    assert TRACKER.content("push", {"title": "t", "body": "b"})["data"] == {"delivery_id": "42"}
    hook = {"url": "https://hooks.example/", "body": {"link": "https://a.example/"}}
    assert TRACKER.content("webhook", hook) == hook


# --- machines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [None, "", "   "])
def test_no_user_agent_is_a_machine(agent: str | None) -> None:
    assert machine_rule(delivery(), hit(user_agent=agent)) == NO_USER_AGENT


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "python-requests/2.31.0",
        "python-httpx/0.27.0",
        "curl/8.4.0",
        "Wget/1.21.4",
        "Go-http-client/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/124.0.0.0",
        "Barracuda Sentinel (EE)",
        "Mozilla/5.0 (compatible; Mimecast URL Protect)",
        "facebookexternalhit/1.1",
        "okhttp/4.12.0",
    ],
)
def test_robots_and_http_libraries_are_machines(agent: str) -> None:
    assert machine_rule(delivery(), hit(user_agent=agent)) == ROBOT


def test_the_mail_privacy_proxy_is_a_machine() -> None:
    assert machine_rule(delivery(), hit(3600, "Mozilla/5.0")) == MAIL_PROXY
    assert machine_rule(delivery(), hit(3600, " Mozilla/5.0 ")) == MAIL_PROXY


@pytest.mark.parametrize(
    "agent",
    [
        BROWSER,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 Chrome/120.0 Mobile",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
    ],
)
def test_people_are_people(agent: str) -> None:
    assert machine_rule(delivery(), hit(60, agent)) is None


def test_an_email_or_sms_hit_within_seconds_of_the_send_is_a_machine() -> None:
    soon = tracking.SOON.total_seconds()
    for channel in ("email", "sms"):
        assert machine_rule(delivery(channel), hit(0)) == TOO_SOON
        assert machine_rule(delivery(channel), hit(soon - 0.1)) == TOO_SOON
        assert machine_rule(delivery(channel), hit(soon)) is None
        assert machine_rule(delivery(channel, sent_at=None, status="sending"), hit()) == TOO_SOON
    for channel in ("push", "in_app"):  # a person taps a notification at once
        assert machine_rule(delivery(channel), hit(0.5)) is None


def test_a_click_on_every_link_at_once_is_a_machine() -> None:
    first = SENT + timedelta(minutes=5)
    earlier = [("https://a.example/", first)]

    def rule(url: str, after: float, clicks: list[tuple[Any, datetime]] = earlier) -> str | None:
        return machine_rule(
            delivery(),
            Hit(at=first + timedelta(seconds=after), user_agent=BROWSER),
            url=url,
            earlier_clicks=clicks,
        )

    assert rule("https://b.example/", 0) == EVERY_LINK
    assert rule("https://b.example/", tracking.SCANNER_BURST.total_seconds()) == EVERY_LINK
    assert rule("https://b.example/", 2.5) is None
    assert rule("https://a.example/", 0.5) is None  # the same link twice is a person
    assert rule("https://b.example/", -1) is None
    assert rule("https://b.example/", 0, []) is None
    assert set(RULES) == {NO_USER_AGENT, ROBOT, MAIL_PROXY, TOO_SOON, EVERY_LINK}


# --- events ------------------------------------------------------------------------------------


def test_engagement_events_carry_the_delivery_and_where_it_came_from() -> None:
    opened = open_event(delivery(variant="b"), hit())
    assert (opened.name, opened.user_id, opened.type, opened.timestamp) == (
        "Email Opened",
        "ada",
        "track",
        hit().at,
    )
    assert opened.properties == {
        "delivery_id": 42,
        "journey_id": "cart",
        "journey_version": 3,
        "node_id": "reminder",
        "channel": "email",
        "variant": "b",
        "machine": False,
    }
    sms = click_event(delivery("sms"), "https://a.example/", hit(1))
    assert sms.name == "SMS Link Clicked"
    assert sms.properties == {
        "delivery_id": 42,
        "journey_id": "cart",
        "journey_version": 3,
        "node_id": "reminder",
        "channel": "sms",
        "url": "https://a.example/",
        "machine": True,
    }
    names = {
        c: click_event(delivery(c), "https://a.example/", hit()).name for c in tracking.CLICK_EVENTS
    }
    assert names == {
        "email": "Email Link Clicked",
        "sms": "SMS Link Clicked",
        "in_app": "In-App Message Clicked",
        "push": "Push Notification Opened",
    }
    viewed = view_event(delivery("in_app"), hit().at)
    assert (viewed.name, viewed.message_id, viewed.properties["machine"]) == (
        "In-App Message Viewed",
        "view:42",
        False,
    )


def test_one_open_per_minute_and_one_click_per_url_and_minute() -> None:
    minute = SENT.replace(minute=30)
    ids = {
        open_event(delivery(), Hit(minute + timedelta(seconds=s), BROWSER)).message_id
        for s in (0, 30, 59.9)
    }
    assert len(ids) == 1
    assert (
        open_event(delivery(), Hit(minute + timedelta(seconds=60), BROWSER)).message_id not in ids
    )

    def click(url: str, seconds: float) -> str:
        return click_event(
            delivery(), url, Hit(minute + timedelta(seconds=seconds), BROWSER)
        ).message_id

    assert click("https://a.example/", 1) == click("https://a.example/", 50)
    assert click("https://a.example/", 1) != click("https://b.example/", 1)
    assert click("https://a.example/", 1) != click("https://a.example/", 61)
    assert click("https://a.example/", 1) != open_event(delivery(), Hit(minute, BROWSER)).message_id
    # A gateway checking the link, then the person it lets through, in the same minute.
    checked = click_event(delivery(), "https://a.example/", Hit(minute, "Mimecast"))
    let_through = click_event(delivery(), "https://a.example/", Hit(minute, BROWSER))
    assert checked.message_id != let_through.message_id
    proxy = open_event(delivery(), Hit(minute, "Mozilla/5.0"))
    assert proxy.message_id != open_event(delivery(), Hit(minute, BROWSER)).message_id


def test_a_scanner_burst_is_read_from_the_deliverys_recent_clicks() -> None:
    first = hit(300)
    recent = [
        EventRecord(
            message_id="c1",
            user_id="ada",
            type="track",
            name="Email Link Clicked",
            properties={"delivery_id": 42, "url": "https://a.example/"},
            timestamp=first.at,
        ),
        EventRecord(  # an open is no click
            message_id="o1",
            user_id="ada",
            type="track",
            name="Email Opened",
            properties={"delivery_id": 42},
            timestamp=first.at,
        ),
    ]
    second = hit(301)
    assert click_event(delivery(), "https://b.example/", second, recent).properties["machine"]
    assert not click_event(delivery(), "https://b.example/", second, recent[1:]).properties[
        "machine"
    ]


# --- the store ---------------------------------------------------------------------------------


@dataclass
class Maker:
    """Makes one engagement event for `record_engagement`, and keeps the `recent` events the
    store gave it."""

    name: str
    at: datetime
    machine: bool = False
    message_id: str = "m1"
    seen: list[list[EventRecord]] = field(default_factory=list)

    def __call__(self, record: DeliveryRecord, recent: list[EventRecord]) -> NewEvent:
        """The event, about `record`."""
        self.seen.append(recent)
        return tracking.engagement_event(
            record, self.name, self.message_id, self.at, machine=self.machine
        )


@pytest.mark.store_backends("sqlite", "postgresql")
def test_an_open_then_a_click_mark_the_delivery_once(store: Store) -> None:
    record = sent_delivery(store, "k1")
    assert record.id is not None
    t1, t2, t3 = SENT, SENT + timedelta(hours=1), SENT + timedelta(hours=2)
    assert store.record_engagement(record.id, Maker("Email Opened", t2)) is True
    assert store.record_engagement(record.id, Maker("Email Opened", t3)) is False  # same id
    assert store.record_engagement(record.id, Maker("Email Opened", t1, message_id="m0"))
    [marked] = store.get_deliveries([record.id]).values()
    assert (marked.opened_at, marked.clicked_at) == (t1, None)  # the first open
    assert store.record_engagement(record.id, Maker("Email Link Clicked", t3, message_id="c"))
    [marked] = store.get_deliveries([record.id]).values()
    assert (marked.opened_at, marked.clicked_at) == (t1, t3)
    assert [e.name for e in store.events_for_user("ada", newest_first=False)] == [
        "Email Opened",
        "Email Opened",
        "Email Link Clicked",
    ]
    assert store.record_engagement(10_000, Maker("Email Opened", t1, message_id="x")) is None
    assert len(store.events_for_user("ada")) == 3


@pytest.mark.store_backends("sqlite", "postgresql")
def test_a_machine_or_a_dismissal_marks_nothing(store: Store) -> None:
    email = sent_delivery(store, "k1")
    in_app = sent_delivery(store, "k2", channel="in_app")
    assert email.id is not None
    assert in_app.id is not None
    clicked_by_machine = Maker("Email Link Clicked", SENT, machine=True)
    assert store.record_engagement(email.id, clicked_by_machine) is True
    assert store.record_engagement(
        in_app.id, Maker("In-App Message Dismissed", SENT, message_id="d")
    )
    assert [
        (d.opened_at, d.clicked_at) for d in store.get_deliveries([email.id, in_app.id]).values()
    ] == [
        (None, None),
        (None, None),
    ]
    assert len(store.events_for_user("ada")) == 2  # recorded all the same


@pytest.mark.store_backends("sqlite", "postgresql")
def test_the_event_maker_sees_the_deliverys_recent_events_only(store: Store) -> None:
    mine, other = sent_delivery(store, "k1"), sent_delivery(store, "k2")
    assert mine.id is not None
    assert other.id is not None
    now = datetime.now(UTC)
    store.record_engagement(
        mine.id, Maker("Email Opened", now - timedelta(minutes=5), message_id="old")
    )
    store.record_engagement(mine.id, Maker("Email Opened", now, message_id="new"))
    store.record_engagement(other.id, Maker("Email Opened", now, message_id="theirs"))
    maker = Maker("Email Link Clicked", now, message_id="click")
    store.record_engagement(mine.id, maker, since=now - timedelta(seconds=2))
    assert [[e.message_id for e in recent] for recent in maker.seen] == [["new"]]
    without = Maker("Email Link Clicked", now, message_id="click2")
    store.record_engagement(mine.id, without)
    assert without.seen == [[]]


@pytest.mark.store_backends("sqlite", "postgresql")
def test_reported_engagement_marks_deliveries_once_and_counts_users(store: Store) -> None:
    untouched = sent_delivery(store, "k0", user_id="cy")
    assert untouched.id == 1  # what `True` would name, taken for a number
    first = sent_delivery(store, "k1")
    again = sent_delivery(store, "k2")  # the same user, the same node: one user
    bea = sent_delivery(store, "k3", user_id="bea")
    other_node = sent_delivery(store, "k4", node_id="later", user_id="bea")
    ids = [d.id for d in (untouched, first, again, bea, other_node) if d.id is not None]

    def reported(record: DeliveryRecord, name: str, at: datetime, **extra: Any) -> NewEvent:
        made = tracking.engagement_event(record, name, f"r{record.id}{name}", at, machine=False)
        return NewEvent(**{**made.__dict__, "properties": {**made.properties, **extra}})

    store.mark_engaged(
        [
            reported(first, "Email Link Clicked", SENT),
            reported(again, "Email Opened", SENT),
            reported(bea, "Email Opened", SENT, machine=True),
            reported(other_node, "Email Opened", SENT + timedelta(hours=1)),
            reported(other_node, "Email Opened", SENT),
            reported(first, "Email Opened", SENT, delivery_id=10_000),
            reported(first, "Email Opened", SENT, delivery_id="7"),
            reported(first, "Email Opened", SENT, delivery_id=True),
        ]
    )
    store.mark_engaged([reported(first, "Email Link Clicked", SENT + timedelta(days=1))])
    store.mark_engaged([])
    marks = {
        d.idempotency_key: (d.opened_at, d.clicked_at)
        for d in store.get_deliveries([*ids, 10_000]).values()
    }
    assert marks == {
        "k0": (None, None),
        "k1": (SENT, SENT),
        "k2": (SENT, None),
        "k3": (None, None),
        "k4": (SENT, None),
    }
    assert store.engagement_counts("cart") == {"reminder": (1, 1), "later": (1, 0)}
    assert store.engagement_counts("other") == {}

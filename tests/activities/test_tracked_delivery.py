"""Tracked messages through the deliver activity and real providers (an SMTP server and HTTP
servers on loopback), alone and driven by the interpreter on the time-skipping server: links
rewritten after rendering, before the content is stored, so what was sent, what is stored and
any resend carry the same links."""

from __future__ import annotations

import html
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.channels import build_channels, closing_channels
from activities.journey import JourneyActivities
from journeys.contracts import DeliverInput
from journeys.model import Channel
from journeys.settings import Settings
from journeys.store import DeliveryRecord, Store
from journeys.tracking import Click, verify_click, verify_open
from tests.activities.test_delivery import (
    LINKS,
    SECRET,
    USER,
    CrashAfterSend,
    activities_for,
    deliver_input,
)
from tests.factories import merge_traits
from tests.receivers import HttpReceiver, ReceivedMail, Reply, SmtpReceiver
from tests.workflows.helpers import make_journey, start
from worker.main import build_worker

BASE = LINKS.base_url
EMAIL = {
    "subject": "Your cart https://shop.example/subject",
    "body": (
        "Back to https://shop.example/cart?total={{ entry.total }}. Leave: {{ unsubscribe_url }}"
    ),
    "html": (
        "<html><body><p>Hi {{ user.first_name }}</p>\n"
        '<A HREF="https://shop.example/cart?total={{ entry.total }}&amp;from=mail">Cart</A>\n'
        '<a href="mailto:help@shop.example">Help</a> <a href="{{ unsubscribe_url }}">Leave</a>\n'
        "</body></html>"
    ),
}


def tracked_input(
    channel: Channel = "email",
    content: dict[str, Any] | None = None,
    *,
    key: str = "enr-1:node",
    track: bool = True,
) -> DeliverInput:
    """A tracked delivery (see `deliver_input`), of `EMAIL` unless told otherwise."""
    return deliver_input(channel, EMAIL if content is None else content, key=key, track=track)


class Markup(HTMLParser):
    """Every `href` of an `<a>`, and every `src` of an `<img>`, of an HTML document (as a
    mail client reads them)."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"] or "")
        if tag == "img":
            self.images.append(found.get("src") or "")


def text_of(mail: ReceivedMail, subtype: str) -> str:
    """The mail's text/`subtype` part without the line end MIME adds (it must have one)."""
    text = mail.text(subtype)
    assert text is not None, f"no {subtype} part"
    return text.removesuffix("\n")


def followed(link: str) -> Click:
    """Where a tracked link goes (it must be one)."""
    assert link.startswith(f"{BASE}/c/"), link
    return verify_click(SECRET, link.removeprefix(f"{BASE}/c/"))


def opened(pixel: str) -> int:
    """The delivery an open pixel is about (it must be one)."""
    path = urlsplit(pixel).path
    assert pixel.startswith(f"{BASE}/o/"), pixel
    assert path.endswith(".gif"), pixel
    return verify_open(SECRET, path.removeprefix("/o/").removesuffix(".gif"))


@pytest.fixture
def receivers() -> Iterator[tuple[SmtpReceiver, HttpReceiver]]:
    """A real SMTP server and a real HTTP server (push gateway and SMS API) on loopback."""
    with SmtpReceiver() as smtp, HttpReceiver(Reply.json({"sid": "SM1", "name": "m/1"})) as http:
        yield smtp, http


@pytest.fixture
def activities(store: Store, receivers: tuple[SmtpReceiver, HttpReceiver]) -> JourneyActivities:
    """The activities against the receivers, for Ada (who has every address)."""
    traits = {"first_name": "Ada", "email": "ada@example.com", "phone": "+15550100200"}
    merge_traits(store, USER, {**traits, "push_tokens": ["device-1"]})
    return activities_for(store, *receivers)


def the_delivery(store: Store, key: str = "enr-1:node") -> DeliveryRecord:
    [record] = [d for d in store.deliveries_for_user(USER) if d.idempotency_key == key]
    return record


def test_a_tracked_email_goes_out_with_tracked_links_and_a_pixel(
    activities: JourneyActivities, store: Store, receivers: tuple[SmtpReceiver, HttpReceiver]
) -> None:
    smtp, _ = receivers
    outcome = activities.deliver(tracked_input())
    assert outcome.status == "sent"
    [mail] = smtp.messages
    record = the_delivery(store)
    assert record.id is not None
    assert record.id == outcome.delivery_id
    unsubscribe = mail.message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{BASE}/unsubscribe?token=")

    sent_html = text_of(mail, "html")
    links = Markup(sent_html)
    cart, help_link, leave = links.hrefs
    assert followed(cart) == Click(record.id, "https://shop.example/cart?total=120&from=mail")
    assert (help_link, leave) == ("mailto:help@shop.example", unsubscribe)
    [pixel] = links.images
    assert opened(pixel) == record.id
    rendered = (
        "<html><body><p>Hi Ada</p>\n"
        '<A HREF="https://shop.example/cart?total=120&amp;from=mail">Cart</A>\n'
        f'<a href="mailto:help@shop.example">Help</a> <a href="{html.escape(unsubscribe)}">Leave'
        "</a>\n</body></html>"
    )
    image = f'<img src="{pixel}" width="1" height="1" alt="" style="border:0;width:1px;height:1px">'
    expected = rendered.replace(
        '"https://shop.example/cart?total=120&amp;from=mail"', f'"{html.escape(cart)}"'
    ).replace("</body>", f"{image}</body>")
    assert sent_html == expected  # everything else byte for byte

    text = text_of(mail, "plain")
    back, leave_text = text.removeprefix("Back to ").split(". Leave: ")
    assert followed(back) == Click(record.id, "https://shop.example/cart?total=120")
    assert leave_text == unsubscribe
    assert mail.message["Subject"] == "Your cart https://shop.example/subject"
    # What was sent is what is stored (and what a resend would send).
    assert record.content == {"subject": mail.message["Subject"], "body": text, "html": sent_html}


def test_sms_push_and_in_app_links_are_tracked(
    activities: JourneyActivities, store: Store, receivers: tuple[SmtpReceiver, HttpReceiver]
) -> None:
    _, http = receivers
    activities.deliver(tracked_input("sms", {"body": "Cart: https://shop.example/c"}, key="s"))
    push = {"title": "t", "body": "b", "data": {"url": "https://shop.example/p", "sku": "A"}}
    activities.deliver(tracked_input("push", push, key="p"))
    cta = {"label": "Open", "url": "https://shop.example/app"}
    activities.deliver(tracked_input("in_app", {"body": "Hi", "cta": cta}, key="i"))
    sms_request, push_request = http.requests
    sms, pushed, inbox = (the_delivery(store, key) for key in ("s", "p", "i"))

    link = sms_request.form()["Body"].removeprefix("Cart: ")
    assert followed(link) == Click(sms.id, "https://shop.example/c")  # type: ignore[arg-type]
    data = push_request.json()["message"]["data"]
    assert data == {"url": data["url"], "sku": "A", "delivery_id": str(pushed.id)}
    assert followed(data["url"]) == Click(pushed.id, "https://shop.example/p")  # type: ignore[arg-type]
    assert pushed.content["data"] == data
    assert followed(inbox.content["cta"]["url"]) == Click(inbox.id, "https://shop.example/app")  # type: ignore[arg-type]
    assert inbox.content["cta"]["label"] == "Open"


def test_untracked_messages_and_a_worker_without_links_leave_links_alone(
    store: Store, activities: JourneyActivities, receivers: tuple[SmtpReceiver, HttpReceiver]
) -> None:
    smtp, http = receivers
    sms = {"body": "Cart: https://shop.example/c"}
    activities.deliver(tracked_input("sms", sms, key="off", track=False))
    settings = Settings(smtp_url=smtp.url, email_from="shop@example.com", sms_url=http.url)
    no_links = JourneyActivities(store, build_channels(settings))
    no_links.deliver(tracked_input("sms", sms, key="unsigned"))
    no_links.deliver(tracked_input(key="mail"))
    assert [r.form()["Body"] for r in http.requests] == [sms["body"], sms["body"]]
    [mail] = smtp.messages
    assert Markup(text_of(mail, "html")).images == []
    assert "https://shop.example/cart?total=120" in text_of(mail, "plain")


def test_a_resend_carries_the_links_of_the_first_attempt(
    store: Store, activities: JourneyActivities, receivers: tuple[SmtpReceiver, HttpReceiver]
) -> None:
    _, http = receivers
    channels = build_channels(Settings(sms_url=f"{http.url}/sms"))
    crashing = JourneyActivities(store, {**channels, "sms": CrashAfterSend(channels["sms"])}, LINKS)
    request = tracked_input("sms", {"body": "Cart: https://shop.example/c?u={{ user.first_name }}"})
    with pytest.raises(RuntimeError):
        crashing.deliver(request)
    merge_traits(store, USER, {"first_name": "Bea"})  # a re-render would differ
    assert crashing.deliver(request).status == "sent"
    first, again = http.requests
    assert first.form()["Body"] == again.form()["Body"]
    link = first.form()["Body"].removeprefix("Cart: ")
    assert followed(link).url == "https://shop.example/c?u=Ada"


async def test_the_interpreter_tracks_what_the_journey_says(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    receivers: tuple[SmtpReceiver, HttpReceiver],
) -> None:
    smtp, _ = receivers
    merge_traits(store, "u1", {"email": "ada@example.com"})
    body = {"subject": "s", "body": "See https://shop.example/{{ journey.id }}"}
    journey = make_journey(
        "default",
        {
            "default": {"type": "message", "channel": "email", "content": body, "next": "off"},
            "off": {
                "type": "message",
                "channel": "email",
                "content": body,
                "track": False,
                "next": "receipt",
            },
            "receipt": {
                "type": "message",
                "channel": "email",
                "content": body,
                "transactional": True,
                "next": "on",
            },
            "on": {
                "type": "message",
                "channel": "email",
                "content": body,
                "transactional": True,
                "track": True,
            },
        },
    )
    channels = build_channels(Settings(smtp_url=smtp.url, email_from="shop@example.com"))
    with closing_channels(channels):
        async with build_worker(
            time_skipping.client, store, task_queue, executor, channels=channels, links=LINKS
        ):
            outcome = await (await start(time_skipping, task_queue, journey)).result()
    assert outcome.path == ["default", "off", "receipt", "on"]
    sent = {d.node_id: d for d in store.deliveries_for_user("u1")}
    bodies = [text_of(m, "plain").removeprefix("See ") for m in smtp.messages]
    page = "https://shop.example/test-journey"
    assert bodies[1:3] == [page, page]
    assert followed(bodies[0]) == Click(sent["default"].id, page)  # type: ignore[arg-type]
    assert followed(bodies[3]) == Click(sent["on"].id, page)  # type: ignore[arg-type]

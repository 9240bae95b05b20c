"""The browser SDK (`/sdk/journeys.js`) in headless Chromium, against the whole system: the API
with its relay and a worker on the Temporal dev server (`tests.system.running_system`), pages on
another loopback origin under a strict Content-Security-Policy (`tests.api.sdk_browser`).

The storefront of `examples/web/` with the `examples/checkout-help.json` journey shows its
tooltip on the pay button; test pages cover modals, banners, reconnection, polling, identity,
batching and retries. Times are compared on one machine: the page's `Date.now()` when an element
was added against the delivery's `sent_at` in the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from playwright.async_api import Locator, Page, Route, expect
from temporalio.testing import WorkflowEnvironment

from cli.shop import STOREFRONT
from journeys.store import DeliveryRecord, EventRecord, Store
from tests.api.sdk_browser import Browsing, Cable, browsing, eventually, sdk_site, serving
from tests.system import WRITE, System, running_system

EXAMPLES = Path(__file__).parents[2] / "examples"
INAPP_SECRET = "test-inapp-secret"


@pytest.fixture
async def system(
    request: pytest.FixtureRequest,
    dev_server: WorkflowEnvironment,
    store: Store,
    executor: ThreadPoolExecutor,
) -> AsyncIterator[System]:
    """The whole system on loopback; `indirect` parameters are settings."""
    settings = getattr(request, "param", {})
    async with running_system(dev_server, store, executor, **settings) as running:
        yield running


@pytest.fixture
async def cable(system: System) -> AsyncIterator[Cable]:
    """The API behind a connection the test can cut."""
    async with Cable(system.api_url) as relay:
        yield relay


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    """A page of headless Chromium, watched."""
    async with browsing() as watching:
        yield watching


def inbox(store: Store, user_id: str) -> list[DeliveryRecord]:
    """The user's sent in-app messages, oldest first."""
    return store.inbox(user_id)[::-1]


def events(store: Store, user_id: str, name: str) -> list[EventRecord]:
    """The user's events of that name, oldest first."""
    return store.events_for_user(user_id, name=name, newest_first=False)


async def test_the_checkout_tooltip_shows_on_the_pay_button_and_its_click_is_recorded(
    system: System, store: Store, browser: Browsing
) -> None:
    document = json.loads((EXAMPLES / "checkout-help.json").read_text())
    page = browser.page
    await page.set_viewport_size({"width": 1200, "height": 760})
    with serving(STOREFRONT, system.api_url) as shop:
        # An absolute link to the help page, so that it is tracked (a relative one is not).
        document["nodes"]["offer_help"]["content"]["cta"]["url"] = f"{shop}/help.html"
        await system.publish(document)
        await page.goto(f"{shop}/checkout.html")
        anonymous = await page.evaluate("JSON.parse(localStorage['journeys:anonymousId'])")
        user = f"anon:{anonymous}"
        # The journey waits for 10 s without activity, then delivers.
        [delivery] = await eventually(lambda: inbox(store, user), "the delivery", 40)
        assert delivery.id is not None
        assert delivery.sent_at is not None
        tooltip = page.locator(f'[data-journeys-message="{delivery.id}"]')
        await expect(tooltip).to_be_visible()

        appeared = (await browser.appeared())[delivery.id]
        assert len(appeared) == 1
        latency = appeared[0] / 1000 - delivery.sent_at.timestamp()
        assert 0 <= latency < 1.0, f"on screen {latency:.3f} s after it was sent"

        # Drawn beside the pay button, with its arrow, as an accessible dialog.
        await expect(page.get_by_role("dialog", name="Need a hand?")).to_be_visible()
        await expect(tooltip).to_contain_text("code HELP10 takes 10% off")
        await settled(page)
        button = page.locator("#pay-button")
        await expect(tooltip).to_have_attribute("data-placement", "top")
        await assert_beside(tooltip, button)
        await browser.screenshot("inapp-tooltip.png")
        viewed = await eventually(lambda: events(store, user, "In-App Message Viewed"), "the view")
        assert [e.properties["delivery_id"] for e in viewed] == [delivery.id]

        # It follows the button when the page scrolls and when the window changes size.
        await page.evaluate("document.body.style.setProperty('min-height', '2400px')")
        await page.mouse.wheel(0, 160)
        await page.wait_for_function("() => window.scrollY >= 160")
        await settled(page)
        await assert_beside(tooltip, button)
        await page.set_viewport_size({"width": 900, "height": 700})
        await settled(page)
        await assert_beside(tooltip, button)

        assert await browser.violations() == []
        # Its call to action is a tracked link: following it records the click.
        async with page.expect_navigation(url=f"{shop}/help.html"):
            await tooltip.get_by_role("link", name="Get help").click()
        clicked = await eventually(
            lambda: events(store, user, "In-App Message Clicked"), "the click"
        )
        assert [(e.properties["delivery_id"], e.properties["machine"]) for e in clicked] == [
            (delivery.id, False)
        ]
        assert store.events_for_user(user, name="In-App Message Dismissed") == []
    assert browser.errors() == []


async def settled(page: Page) -> None:
    """Once animations have ended and two frames have been drawn (the SDK repositions a
    tooltip in the frame after a scroll or a resize)."""
    await page.evaluate("""() => Promise.all(document.getAnimations().map(a => a.finished))
        .then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))""")


async def assert_beside(tooltip: Locator, anchor: Locator) -> None:
    """The tooltip is 12 px above or below its anchor, its arrow on the anchor's centre."""
    tip, target = await tooltip.bounding_box(), await anchor.bounding_box()
    arrow = await tooltip.locator(".journeys-arrow").bounding_box()
    assert tip is not None
    assert target is not None
    assert arrow is not None
    above = tip["y"] + tip["height"] + 12 - target["y"]
    below = target["y"] + target["height"] + 12 - tip["y"]
    assert min(abs(above), abs(below)) <= 1, (tip, target)
    centre = arrow["x"] + arrow["width"] / 2
    assert abs(centre - (target["x"] + target["width"] / 2)) <= 1, (arrow, target)


def message_journey(journey_id: str, event: str, **content: Any) -> dict[str, Any]:
    """Enter on `event` (any number of times), show one in-app message."""
    return {
        "id": journey_id,
        "name": journey_id,
        "entry": {"event": event, "reentry": "always"},
        "start": "show",
        "nodes": {
            "show": {
                "type": "message",
                "channel": "in_app",
                "content": {"body": "Delivered {{ event.n | default: 'once' }}", **content},
            }
        },
    }


async def test_escape_dismisses_a_modal_that_traps_focus_and_gives_it_back(
    system: System, store: Store, browser: Browsing, tmp_path: Path
) -> None:
    journey = message_journey(
        "help-modal", "Help Wanted", kind="modal", title="Need help?",
        cta={"label": "Chat with us", "url": "https://shop.example/help"},
    )  # fmt: skip
    await system.publish(journey)
    page = browser.page
    await page.emulate_media(reduced_motion="reduce")
    with sdk_site(tmp_path, system.api_url) as site:
        await page.goto(f"{site}/page.html")
        await browser.init(system.api_url, userId="mia")
        await page.focus("#focus-me")
        await page.evaluate("journeys.track('Help Wanted')")
        dialog = page.get_by_role("dialog", name="Need help?")
        await expect(dialog).to_be_visible()
        [delivery] = inbox(store, "mia")
        await expect(dialog).to_have_attribute("data-journeys-message", str(delivery.id))
        await expect(dialog).to_have_attribute("aria-modal", "true")
        # Under prefers-reduced-motion, nothing moves.
        assert await dialog.evaluate("el => el.getAnimations().length") == 0

        # Focus starts on the call to action and stays inside while tabbing.
        cta = dialog.get_by_role("link", name="Chat with us")
        close = dialog.get_by_role("button", name="Close")
        await expect(cta).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(close).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(cta).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(close).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(cta).to_be_focused()

        await page.keyboard.press("Escape")
        await expect(dialog).to_have_count(0)
        await expect(page.locator(".journeys-backdrop")).to_have_count(0)
        await expect(page.locator("#focus-me")).to_be_focused()
        dismissed = await eventually(
            lambda: events(store, "mia", "In-App Message Dismissed"), "the dismissal"
        )
        assert [(e.message_id, e.properties["delivery_id"]) for e in dismissed] == [
            (f"dismiss-{delivery.id}", delivery.id)
        ]
        viewed = await eventually(lambda: events(store, "mia", "In-App Message Viewed"), "view")
        assert [e.properties["delivery_id"] for e in viewed] == [delivery.id]
        assert events(store, "mia", "In-App Message Clicked") == []
        assert await browser.violations() == []
    assert browser.errors() == []


async def test_a_message_delivered_while_the_connection_is_down_shows_once(
    system: System, store: Store, cable: Cable, browser: Browsing, tmp_path: Path
) -> None:
    await system.publish(message_journey("away", "Away Ping", kind="banner"))
    page = browser.page
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/inbox/stream" in r.url else None)
    # Reads fail: the server announces the messages again on every connection, so only
    # the SDK keeps each on screen once.
    await page.route(lambda url: url.endswith("/read"), lambda route: route.abort())

    async def ping(n: int) -> int:
        body = {"userId": "rita", "event": "Away Ping", "properties": {"n": n}}
        sent = await system.http.post("/v1/track", json=body, headers=WRITE)
        assert sent.status_code == 200, sent.text
        found = await eventually(lambda: inbox(store, "rita")[n - 1 :], f"delivery {n}")
        assert found[0].id is not None
        return found[0].id

    async def shown(delivery_id: int, n: int) -> None:
        banner = page.locator(f'[data-journeys-message="{delivery_id}"]')
        await expect(banner).to_have_text(f"×Delivered {n}")

    with sdk_site(tmp_path, cable.url) as site:
        await page.goto(f"{site}/page.html")
        async with page.expect_response(lambda r: "/inbox/stream" in r.url):
            await browser.init(cable.url, userId="rita")
        first = await ping(1)
        await shown(first, 1)

        cable.cut()
        second = await ping(2)
        cable.join()
        # EventSource reconnects by itself (after the server's retry hint) and hears of both.
        await shown(second, 2)
        assert len(streams) == 2
        third = await ping(3)  # after it, the stream has nothing older left to send
        await shown(third, 3)
        assert await browser.appeared() == {first: [ANY], second: [ANY], third: [ANY]}

        # A new page of the same tab shows none of them again, read or not.
        await page.reload()
        async with page.expect_response(lambda r: "/inbox/stream" in r.url):
            await browser.init(cable.url, userId="rita")
        fourth = await ping(4)
        await shown(fourth, 4)
        assert await browser.appeared() == {fourth: [ANY]}
        assert [m.read_at for m in inbox(store, "rita")] == [None] * 4
        assert await browser.violations() == []


async def test_a_banner_reports_its_own_click_and_a_tooltip_waits_for_its_anchor(
    system: System, store: Store, browser: Browsing, tmp_path: Path
) -> None:
    page = browser.page
    with sdk_site(tmp_path, system.api_url) as site:
        untracked = message_journey(
            "banner", "Banner Please", kind="banner", title="Free shipping",
            cta={"label": "See more", "url": f"{site}/next.html"},
        )  # fmt: skip
        untracked["nodes"]["show"]["track"] = False
        await system.publish(untracked)
        await system.publish(
            message_journey("later", "Tip Please", kind="tooltip", anchor="#later")
        )
        await page.goto(f"{site}/page.html")
        await browser.init(system.api_url, userId="noa")
        await page.evaluate("""() => {
            window.received = [];
            journeys.on('message', (message) => { window.received.push(message.id); });
        }""")

        # The tooltip's anchor is not on the page: it waits, unseen and unread.
        await page.evaluate("journeys.track('Tip Please')")
        [tip] = await eventually(lambda: inbox(store, "noa"), "the tooltip")
        await page.wait_for_function(f"() => window.received.includes({tip.id})")
        assert await page.locator("[data-journeys-message]").count() == 0
        await page.evaluate("""() => {
            const late = document.createElement('button');
            late.id = 'later';
            late.textContent = 'Drawn later';
            document.body.append(late);
        }""")
        tooltip = page.locator(f'[data-journeys-message="{tip.id}"]')
        await expect(tooltip).to_be_visible()
        await settled(page)
        await assert_beside(tooltip, page.locator("#later"))
        # It follows the anchor when the page moves it, and leaves with it.
        await page.evaluate("""() => {
            const above = document.createElement('p');
            above.textContent = 'A paragraph drawn above the anchor';
            document.getElementById('later').before(above);
        }""")
        await settled(page)
        await assert_beside(tooltip, page.locator("#later"))
        await page.evaluate("document.getElementById('later').remove()")
        await expect(tooltip).to_have_count(0)
        viewed = await eventually(lambda: events(store, "noa", "In-App Message Viewed"), "view")
        assert [e.properties["delivery_id"] for e in viewed] == [tip.id]

        # A banner whose link is not tracked reports the click itself, then navigates.
        await page.evaluate("journeys.track('Banner Please')")
        banner = page.get_by_role("status").filter(has_text="Free shipping")
        await expect(banner).to_be_visible()
        [_, shown] = inbox(store, "noa")
        await expect(banner).to_have_attribute("data-journeys-message", str(shown.id))
        assert await browser.violations() == []
        async with page.expect_navigation(url=f"{site}/next.html"):
            await banner.get_by_role("link", name="See more").click()
        clicked = await eventually(
            lambda: events(store, "noa", "In-App Message Clicked"), "the click"
        )
        assert [(e.properties["delivery_id"], e.properties["url"]) for e in clicked] == [
            (shown.id, f"{site}/next.html")
        ]
        assert [m.clicked_at is not None for m in inbox(store, "noa")] == [False, True]
        assert events(store, "noa", "In-App Message Dismissed") == []
    assert browser.errors() == []


async def test_without_event_source_the_inbox_is_polled(
    system: System, store: Store, browser: Browsing, tmp_path: Path
) -> None:
    await system.publish(message_journey("polled", "Poll Ping", kind="tooltip"))
    page = browser.page
    await page.add_init_script("delete window.EventSource")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/inbox" in r.url else None)
    with sdk_site(tmp_path, system.api_url) as site:
        await page.goto(f"{site}/page.html")
        await browser.init(system.api_url, userId="pol", pollInterval=200)
        await page.evaluate("journeys.track('Poll Ping')")
        [delivery] = await eventually(lambda: inbox(store, "pol"), "the delivery")
        # A tooltip without an anchor is a small toast.
        toast = page.locator(f'[data-journeys-message="{delivery.id}"]')
        await expect(toast).to_have_class("journeys-msg journeys-toast")
        await expect(toast).to_have_attribute("role", "status")
        await eventually(lambda: events(store, "pol", "In-App Message Viewed"), "the view")
    assert not any("/stream" in url for url in requests)
    assert sum(url.endswith("/inbox") for url in requests) >= 2
    assert browser.errors() == []


@pytest.mark.parametrize("system", [{"inapp_secret": INAPP_SECRET}], indirect=True)
async def test_identify_moves_the_live_stream_to_the_verified_user(
    system: System, store: Store, browser: Browsing, tmp_path: Path
) -> None:
    ada_hash = hmac.new(INAPP_SECRET.encode(), b"ada", hashlib.sha256).hexdigest()
    await system.publish(message_journey("verified", "Verified Ping", kind="banner"))
    page = browser.page
    streams: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda r: streams.append((r.url, r.status)) if "/inbox/stream" in r.url else None,
    )
    with sdk_site(tmp_path, system.api_url) as site:
        await page.goto(f"{site}/page.html")
        # An anonymous visitor has no user_hash: the stream and the inbox refuse it.
        await browser.init(system.api_url)
        refused = "journeys: the inbox answered HTTP 401: no in-app messages"
        await eventually(lambda: refused in browser.warnings(), "the refusal")
        async with page.expect_response(lambda r: "/inbox/stream" in r.url) as opened:
            await page.evaluate(
                "hash => journeys.identify('ada', {plan: 'pro'}, {userHash: hash})", ada_hash
            )
        assert (await opened.value).status == 200
        sent = await system.http.post(
            "/v1/track", json={"userId": "ada", "event": "Verified Ping"}, headers=WRITE
        )
        assert sent.status_code == 200
        [delivery] = await eventually(lambda: inbox(store, "ada"), "the delivery")
        await expect(page.locator(f'[data-journeys-message="{delivery.id}"]')).to_be_visible()
        # Marked read with the hash too.
        await eventually(lambda: events(store, "ada", "In-App Message Viewed"), "the view")
    [identified] = [e for e in store.events_for_user("ada") if e.type == "identify"]
    assert identified.properties == {"plan": "pro"}
    assert [status for _, status in streams] == [401, 200]
    assert "user_hash=" + ada_hash in streams[1][0]


async def test_calls_are_retried_with_their_message_ids_and_refusals_are_not(
    system: System, store: Store, browser: Browsing, tmp_path: Path
) -> None:
    page = browser.page
    posted: list[list[dict[str, Any]]] = []
    answers: list[int] = []  # the status to answer each next batch with, else the API's

    async def batch(route: Route) -> None:
        posted.append((route.request.post_data_json or {})["batch"])
        if answers:
            status = answers.pop(0)
            await route.fulfill(status=status, json={"error": {"code": str(status)}})
        else:
            await route.continue_()

    await page.route("**/v1/batch", batch)
    with sdk_site(tmp_path, system.api_url) as site:
        await page.goto(f"{site}/page.html")
        await browser.init(system.api_url, userId="ray")

        # A 503 is retried, with the same messageId: the call is stored once.
        answers.append(503)
        await page.evaluate("journeys.track('Retried', {n: 1})")
        [stored] = await eventually(lambda: events(store, "ray", "Retried"), "the retry")
        sent = [[call["messageId"] for call in calls] for calls in posted]
        assert sent == [[stored.message_id], [stored.message_id]]

        # A refusal (400) is not retried: the call is dropped, with a warning.
        answers.append(400)
        await page.evaluate("journeys.track('Refused')")
        dropped = "journeys: dropped 1 call(s) the API refused (HTTP 400)"
        await eventually(lambda: dropped in browser.warnings(), "the warning")
        await page.evaluate("journeys.track('After')")
        await eventually(lambda: events(store, "ray", "After"), "the next call")
        assert sum(c.get("event") == "Refused" for calls in posted for c in calls) == 1
        assert events(store, "ray", "Refused") == []
        await page.wait_for_function("() => localStorage['journeys:queue'] === '[]'")


async def test_calls_the_api_did_not_get_are_sent_by_the_next_page(
    system: System, store: Store, cable: Cable, browser: Browsing, tmp_path: Path
) -> None:
    page = browser.page

    def refused_batches() -> int:
        return sum("/v1/batch" in line for line in cable.refused)

    with sdk_site(tmp_path, cable.url) as site:
        await page.goto(f"{site}/page.html")
        await browser.init(cable.url, userId="kim")
        cable.cut()
        await page.evaluate("journeys.track('Kept', {n: 1})")
        await eventually(refused_batches, "a refused send")
        queued = await page.evaluate("JSON.parse(localStorage['journeys:queue'])")
        before = refused_batches()
        await page.goto(f"{site}/next.html")  # the send on leaving is refused too
        await eventually(lambda: refused_batches() > before, "the send on leaving")
        cable.join()
        assert events(store, "kim", "Kept") == []

        await page.goto(f"{site}/page.html")
        await browser.init(cable.url, userId="kim")
        [arrived] = await eventually(lambda: events(store, "kim", "Kept"), "the kept call")
        assert [arrived.message_id] == [call["messageId"] for call in queued]

        # Leaving a page sends what waits (with keepalive), however long its interval.
        await browser.init(cable.url, userId="kim", flushInterval=60_000)
        await page.evaluate("journeys.track('Leaving')")
        await page.goto(f"{site}/next.html")
        await eventually(lambda: events(store, "kim", "Leaving"), "the call sent on leaving")


def test_the_sdk_source_needs_no_unsafe_policy_and_draws_text_only() -> None:
    source = (Path(__file__).parents[2] / "api" / "sdk" / "journeys.js").read_text()
    for forbidden in (
        "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
        "Function(", "setAttribute('style'", ".cssText", "<style",
    ):  # fmt: skip
        assert forbidden not in source, forbidden
    assert "textContent" in source
    assert len(source.encode()) < 20_000

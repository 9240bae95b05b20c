"""Opens, clicks and keyed waits over the whole system: the API on loopback with its event
router, a worker sending email to a real SMTP server (aiosmtpd), and a real Temporal dev
server. A recipient's mail client is an HTTP client that does not follow redirects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from journeys.contracts import STATE_QUERY, JourneyOutcome, StateView, workflow_id
from journeys.store import Store
from journeys.tracking import SOON
from tests.activities.test_tracked_delivery import Markup
from tests.receivers import ReceivedMail, SmtpReceiver
from tests.system import ADMIN, WRITE, System, running_system

BROWSER = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36"
}
CART = "https://shop.example/cart?id=42&utm_source=email"


@dataclass
class Stack:
    """The running system and its SMTP server."""

    system: System
    smtp: SmtpReceiver

    @property
    def api_url(self) -> str:
        return self.system.api_url


@pytest.fixture
async def stack(
    dev_server: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> AsyncIterator[Stack]:
    with SmtpReceiver() as smtp:
        async with running_system(
            dev_server, store, executor, smtp_url=smtp.url, email_from="Shop <shop@example.com>"
        ) as system:
            yield Stack(system, smtp)


def journey(journey_id: str) -> dict[str, Any]:
    """A reminder email; whoever clicks it within the hour is thanked in the app."""
    return {
        "id": journey_id,
        "name": "Reminder",
        "entry": {"api": journey_id},
        "start": "reminder",
        "nodes": {
            "reminder": {
                "type": "message",
                "channel": "email",
                "next": "wait_click",
                "content": {
                    "subject": "Your cart, {{ user.first_name }}",
                    "body": f"It is still there: {CART}\nLeave: {{{{ unsubscribe_url }}}}",
                    "html": (
                        "<html><body><p>Hi {{ user.first_name }},</p>"
                        f'<p><a href="{CART.replace("&", "&amp;")}">Back to your cart</a></p>'
                        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
                    ),
                },
            },
            "wait_click": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": None,
                "paths": [{"event": "Email Link Clicked", "of": "reminder", "next": "thanks"}],
            },
            "thanks": {"type": "message", "channel": "in_app", "content": {"body": "Thanks!"}},
        },
    }


async def mail_for(smtp: SmtpReceiver, address: str) -> ReceivedMail:
    async with asyncio.timeout(30):
        while True:
            for mail in smtp.messages:
                if address in mail.recipients:
                    return mail
            await asyncio.sleep(0.05)


async def test_an_emails_links_and_pixel_record_engagement_and_move_the_journey(
    stack: Stack,
) -> None:
    journey_id = f"remind-{uuid.uuid4().hex[:6]}"
    http, store = stack.system.http, stack.system.store
    assert (
        await http.put(f"/v1/journeys/{journey_id}", json=journey(journey_id), headers=ADMIN)
    ).status_code == 200
    assert (await http.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)).status_code == 200
    auth = WRITE
    identify = {"userId": "ada", "traits": {"email": "ada@example.com", "first_name": "Ada"}}
    assert (await http.post("/v1/identify", json=identify, headers=auth)).status_code == 200
    started = await http.post(
        "/trigger", json={"user_id": "ada", "trigger_type": journey_id}, headers=auth
    )
    assert started.status_code == 202, started.text

    mail = await mail_for(stack.smtp, "ada@example.com")
    document = mail.text("html")
    assert document is not None
    markup = Markup(document)
    cart_link, unsubscribe = markup.hrefs
    assert cart_link.startswith(f"{stack.api_url}/c/")
    assert unsubscribe == mail.message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{stack.api_url}/unsubscribe?token=")
    [pixel] = markup.images
    assert pixel.startswith(f"{stack.api_url}/o/")
    text = mail.text("plain") or ""
    assert f"{stack.api_url}/c/" in text
    assert CART not in text

    # A mail gateway follows the link as the message arrives: recorded, but it moves nobody.
    scanned = await http.get(cart_link)  # httpx's own user agent
    assert (scanned.status_code, scanned.headers["location"]) == (302, CART)
    [sent] = store.deliveries_for_user("ada")
    assert sent.sent_at is not None
    await asyncio.sleep(max(0.0, (sent.sent_at + SOON - datetime.now(UTC)).total_seconds()))

    opened = await http.get(pixel, headers=BROWSER)
    assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")
    assert opened.headers["cache-control"] == "no-store"

    handle = stack.system.temporal.get_workflow_handle(
        workflow_id(journey_id, "ada"), result_type=JourneyOutcome
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    followed = await http.get(cart_link, headers=BROWSER)
    assert (followed.status_code, followed.headers["location"]) == (302, CART)
    async with asyncio.timeout(1):  # the click moves the journey on within a second
        outcome = await handle.result()
    assert outcome.path == ["reminder", "wait_click", "thanks"]

    engagement = [
        (e.name, e.properties["machine"])
        for e in store.events_for_user("ada", newest_first=False)
        if e.type == "track"
    ]
    assert engagement == [
        ("Email Link Clicked", True),
        ("Email Opened", False),
        ("Email Link Clicked", False),
    ]
    click = store.events_for_user("ada", name="Email Link Clicked")[0]
    assert click.properties == {
        "delivery_id": sent.id,
        "journey_id": journey_id,
        "journey_version": 1,
        "node_id": "reminder",
        "channel": "email",
        "url": CART,
        "machine": False,
    }
    stats = (await http.get(f"/v1/journeys/{journey_id}/stats", headers=ADMIN)).json()
    assert stats["messages"]["reminder"] == {
        "sent": 1, "skipped": 0, "failed": 0, "opened": 1, "clicked": 1, "open_rate": 1.0,
        "click_rate": 1.0,
    }  # fmt: skip
    user = (await http.get("/v1/users/ada", headers=ADMIN)).json()
    email = next(d for d in user["deliveries"] if d["node_id"] == "reminder")
    assert email["opened_at"] is not None
    assert email["clicked_at"] is not None


# --- keyed waits ------------------------------------------------------------------------------

KEYED = {"cart_id": "{{ entry.cart_id }}"}


def keyed_cart(journey_id: str, entry: dict[str, str]) -> dict[str, Any]:
    """Thanks for the order of the cart the user entered with (the matched order is `event`)."""
    return {
        "id": journey_id,
        "name": "Keyed cart",
        "entry": {**entry, "reentry": "always"},
        "goal": {"event": "Order Completed", "match": KEYED, "within": "1d"},
        "start": "wait_order",
        "nodes": {
            "wait_order": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": None,
                "paths": [{"event": "Order Completed", "match": KEYED, "next": "thanks"}],
            },
            "thanks": {
                "type": "message",
                "channel": "email",
                "content": {"subject": "Order of cart {{ event.cart_id }}", "body": "Thank you!"},
            },
        },
    }


async def track(system: System, user_id: str, name: str, **properties: Any) -> None:
    """Send a track call and wait until the router has signalled it to the user's runs."""
    message_id = uuid.uuid4().hex
    call = {"userId": user_id, "event": name, "properties": properties, "messageId": message_id}
    assert (await system.http.post("/v1/track", json=call, headers=WRITE)).status_code == 200
    async with asyncio.timeout(30):
        while not any(
            e.message_id == message_id and e.routed_at is not None
            for e in system.store.events_for_user(user_id, name=name)
        ):
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["event", "api"])
async def test_another_carts_order_does_not_end_a_keyed_wait(stack: Stack, kind: str) -> None:
    journey_id = f"keyed-{kind}-{uuid.uuid4().hex[:6]}"
    entry = {"event": "Added to Cart"} if kind == "event" else {"api": journey_id}
    system = stack.system
    await system.publish(keyed_cart(journey_id, entry))
    identify = {"userId": "ada", "traits": {"email": "ada@example.com"}}
    assert (await system.http.post("/v1/identify", json=identify, headers=WRITE)).status_code == 200
    if kind == "event":
        await track(system, "ada", "Added to Cart", cart_id="A")
    else:
        trigger = {"user_id": "ada", "trigger_type": journey_id, "content": {"cart_id": "A"}}
        started = await system.http.post("/trigger", json=trigger, headers=WRITE)
        assert started.json()["journeys"][0]["started"] is True

    # Cart B is added (reaching cart A's run, which it does not end) and bought.
    await track(system, "ada", "Added to Cart", cart_id="B")
    await track(system, "ada", "Order Completed", cart_id="B")
    handle = system.temporal.get_workflow_handle(
        workflow_id(journey_id, "ada"), result_type=JourneyOutcome
    )
    state = await handle.query(STATE_QUERY, result_type=StateView)  # after the signals
    assert state.current_node == "wait_order"
    assert state.waiting_for is not None

    await track(system, "ada", "Order Completed", cart_id="A")
    outcome = await system.outcome(journey_id, "ada")
    assert (outcome.status, outcome.path) == ("completed", ["wait_order", "thanks"])
    assert (await mail_for(stack.smtp, "ada@example.com")).message["Subject"] == "Order of cart A"
    [enrollment] = system.store.enrollments_for_user("ada")
    assert enrollment.converted_at is not None

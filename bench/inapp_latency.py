"""Event to tooltip on screen: a page in headless Chromium calls `journeys.track`, a journey
sends an in-app tooltip anchored on that page, and the clock stops when the browser SDK adds
the tooltip to the page.

Each run is a new user on a new page load (its own origin, under the storefront's strict
Content-Security-Policy, the SDK loaded from the API), waiting until its live stream is open,
so every sample takes the whole path a shopper's does: the SDK's batching (its default 200 ms
flush interval), ingest, outbox, router, signal-with-start, the interpreter, the delivery, the
API's inbox feed (it looks for new messages every 250 ms), the Server-Sent Event and drawing.
The total is timed on the page's clock (`performance.now()`); the stages come from the store's
times (when the event was stored, when the message was sent) against the page's `Date.now()`,
one machine's clock.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from bench.common import Progress, Sizes, percentile, say
from bench.stack import WRITE_KEY, Stack
from cli.shop import Storefront

EVENT = "Inapp Ping"
CHROMIUM = os.environ.get("JOURNEYS_TEST_CHROMIUM", "/usr/bin/chromium")
"""The system's Chromium (as the tests use); else Playwright's own, when installed."""
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
TIMEOUT_MS = 30_000
"""How long one run may wait for its tooltip."""
PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>In-app latency</title><link rel="icon" href="data:,">
<script src="{api}/sdk/journeys.js"></script></head>
<body><h1>Checkout</h1><p>Some text above the button.</p><button id="pay">Pay</button></body>
</html>
"""
MEASURE = """async ({event, timeout}) => {
  const shown = new Promise((resolve) => {
    const watch = new MutationObserver(() => {
      if (document.querySelector('[data-journeys-message]')) {
        watch.disconnect();
        resolve(performance.now());
      }
    });
    watch.observe(document.body, {childList: true, subtree: true});
    setTimeout(() => resolve(null), timeout);
  });
  const sentAt = Date.now(), start = performance.now();
  journeys.track(event);
  const end = await shown;
  return end === null ? null : {ms: end - start, sentAt, shownAt: sentAt + (end - start)};
}"""
"""In the page: track the event, wait for the message element; the times, or null."""


def journey(journey_id: str) -> dict[str, Any]:
    """Enter on `EVENT`, show a tooltip on the pay button, end."""
    return {
        "id": journey_id,
        "name": "Bench: in-app latency",
        "entry": {"event": EVENT, "reentry": "always"},
        "start": "tip",
        "nodes": {
            "tip": {
                "type": "message",
                "channel": "in_app",
                "content": {"kind": "tooltip", "anchor": "#pay", "body": "Need a hand?"},
            }
        },
    }


async def run(stack: Stack, sizes: Sizes) -> dict[str, Any]:
    """`sizes.inapp_runs` runs one after another; the total's and each stage's percentiles."""
    await stack.settle()
    api_url = _api_url(stack)
    journey_id = f"bench-inapp-{uuid.uuid4().hex[:6]}"
    await stack.publish(journey(journey_id))
    say(f"inapp: {sizes.inapp_runs} runs, event to tooltip on screen, headless Chromium")
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "page.html").write_text(PAGE.replace("{api}", api_url))
        with Storefront(0, api_url, WRITE_KEY, root=Path(root)) as site:
            async with async_playwright() as playwright:
                executable = CHROMIUM if Path(CHROMIUM).exists() else None
                browser = await playwright.chromium.launch(
                    executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
                )
                try:
                    context = await browser.new_context(user_agent=USER_AGENT)
                    page = await context.new_page()
                    samples = await _runs(stack, page, f"{site.url}/page.html", journey_id, sizes)
                finally:
                    await browser.close()
    return _figures(samples, sizes.inapp_runs)


def _api_url(stack: Stack) -> str:
    return str(stack.http.base_url).rstrip("/")


async def _runs(
    stack: Stack, page: Page, page_url: str, journey_id: str, sizes: Sizes
) -> list[dict[str, float]]:
    progress = Progress("tooltips shown", sizes.inapp_runs)
    samples: list[dict[str, float]] = []
    for index in range(sizes.inapp_runs):
        user = f"{journey_id}-u{index}"
        await page.goto(page_url)
        options = {"apiUrl": _api_url(stack), "writeKey": WRITE_KEY, "userId": user}
        # Measured once the stream is open, as on a page the shopper has been on a while.
        async with page.expect_response(lambda r: "/inbox/stream" in r.url, timeout=TIMEOUT_MS):
            await page.evaluate("o => journeys.init(o)", options)
        measured = await page.evaluate(MEASURE, {"event": EVENT, "timeout": TIMEOUT_MS})
        stack.check()
        if measured is not None:
            samples.append(_stages(stack, user, measured))
        progress.update(index + 1)
    progress.update(sizes.inapp_runs, force=True)
    return samples


def _stages(stack: Stack, user: str, measured: dict[str, float]) -> dict[str, float]:
    """One run's total and its stages, in milliseconds."""
    [event] = stack.store.events_for_user(user, name=EVENT)
    [delivery] = stack.store.inbox(user)
    assert delivery.sent_at is not None  # the inbox holds sent messages only
    stored, sent = event.received_at.timestamp() * 1000, delivery.sent_at.timestamp() * 1000
    return {
        "total": measured["ms"],
        "track_to_stored": stored - measured["sentAt"],
        "stored_to_sent": sent - stored,
        "sent_to_screen": measured["shownAt"] - sent,
    }


def _figures(samples: list[dict[str, float]], runs: int) -> dict[str, Any]:
    if not samples:
        raise RuntimeError("no tooltip of the in-app benchmark reached the screen")
    totals = [sample["total"] for sample in samples]
    return {
        "runs": runs,
        "shown": len(samples),
        "lost": runs - len(samples),
        "p50_ms": percentile(totals, 0.50),
        "p95_ms": percentile(totals, 0.95),
        "p99_ms": percentile(totals, 0.99),
        "max_ms": max(totals),
        "stages_p50_ms": {
            stage: percentile([sample[stage] for sample in samples], 0.50)
            for stage in ("track_to_stored", "stored_to_sent", "sent_to_screen")
        },
    }

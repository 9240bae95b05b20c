"""The designer in a real browser: `streamlit run` on loopback against the real API, driven by
headless Chromium through Playwright. It builds and publishes a journey through the UI, saves
screenshots of the editor and the analytics page under `test-artifacts/`, and fails on any
exception Streamlit shows on the page.

Chromium comes from the system (`/usr/bin/chromium`, or `JOURNEYS_TEST_CHROMIUM`): the test
skips without it, except under `JOURNEYS_TEST_STRICT=1` (CI), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from cli.main import designer_argv
from journeys.store import Store
from tests.api.helpers import ADMIN_TOKEN
from tests.factories import enroll, mark_converted, move
from tests.journey_designer.conftest import LiveApi, free_port
from tests.journey_designer.test_app import seed_activity
from tests.receivers import wait_until_serving

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 20_000


def chromium() -> str:
    """The Chromium binary; skip (or fail under JOURNEYS_TEST_STRICT=1) when there is none."""
    path = os.environ.get("JOURNEYS_TEST_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        why = f"Chromium not found at {path} (set JOURNEYS_TEST_CHROMIUM)"
        if os.environ.get("JOURNEYS_TEST_STRICT") == "1":
            pytest.fail(f"{why}, and JOURNEYS_TEST_STRICT=1 forbids skipping the browser test")
        pytest.skip(why)
    return path


@pytest.fixture
def designer(live_api: LiveApi, tmp_path: Path) -> Iterator[str]:
    """`streamlit run` of the designer on a loopback port, pointed at the live API."""
    with designer_process(live_api, tmp_path, {"JOURNEYS_ADMIN_TOKEN": ADMIN_TOKEN}) as url:
        yield url


@contextmanager
def designer_process(
    live_api: LiveApi, tmp_path: Path, environment: dict[str, str]
) -> Iterator[str]:
    """`streamlit run` of the designer on a loopback port, pointed at the live API, with
    these variables too, for the block; its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_API_URL": live_api.url,
        "JOURNEYS_TEMPORAL_UI_URL": "http://127.0.0.1:8233",
        "HOME": str(tmp_path),  # Streamlit keeps its machine id and credentials here
        **environment,
    }
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [*designer_argv(port), "--server.fileWatcherType", "none"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/_stcore/health", process, tmp_path / "streamlit.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def no_exception(page: Page) -> None:
    """Fail on any exception Streamlit shows on the page."""
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, shown.first.inner_text()


def settle(page: Page) -> None:
    """Wait until Streamlit has finished running the script.

    The app root's script state says so as soon as a rerun is requested; the status widget
    only shows after a delay, so on a busy machine it alone can let a click land on widgets
    that the pending rerun is about to replace.
    """
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=TIMEOUT_MS
    )
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=TIMEOUT_MS)
    no_exception(page)


def seed_runs(store: Store, journey_id: str) -> None:
    """Users through the published journey, as the worker would record them."""
    now = datetime.now(UTC)
    for i in range(6):
        enrollment, user_id = f"b-{i}", f"shopper-{i}"
        enroll(
            store, enrollment_id=enrollment, user_id=user_id, journey_id=journey_id, version=1,
            workflow_id=f"journey:{journey_id}:{user_id}", entered_at=now,
        )  # fmt: skip
        move(store, enrollment, "wait_checkout", now)
        if i < 4:
            move(store, enrollment, "by_cart_value", now)
            email = "vip_email" if i == 0 else "reminder_email"
            move(store, enrollment, email, now)
            key = f"{enrollment}:{email}"
            store.begin_delivery(
                idempotency_key=key, journey_id=journey_id, version=1, node_id=email,
                user_id=user_id, channel="email", variant=None, content={"subject": "Hi"},
            )  # fmt: skip
            store.finish_delivery(key, "sent")
            move(store, enrollment, "wait_a_day", now)
        if i == 0:
            mark_converted(store, enrollment, now)


@contextmanager
def opened(designer: str, *, height: int) -> Iterator[Page]:
    """A headless Chromium page on the designer's first page, screenshots going to
    `ARTIFACTS`; the browser closes after the block."""
    executable = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(designer)
            yield page
        finally:
            browser.close()


def test_build_preview_and_publish_a_journey_in_the_browser(
    live_api: LiveApi, designer: str
) -> None:
    with opened(designer, height=1100) as page:
        expect(page.get_by_role("heading", name="Journeys")).to_be_visible()
        settle(page)

        # From the gallery: the abandoned cart, under a name of our own.
        page.get_by_role("button", name="Use this").first.click()
        settle(page)
        page.get_by_label("Name").fill("Cart from the browser")
        page.get_by_role("button", name="Create and open in the editor").click()
        expect(page.get_by_role("heading", name="Cart from the browser")).to_be_visible()
        expect(page.get_by_text("The journey is valid.")).to_be_visible()
        expect(page.locator('[data-testid="stGraphVizChart"] svg')).to_be_visible()
        settle(page)

        # Edit the reminder's subject in its step form.
        page.get_by_label("Step", exact=True).click()
        page.get_by_role("option", name="reminder_email").click()
        settle(page)
        subject = page.get_by_label("Subject")
        subject.fill("Your cart misses you, {{ user.first_name | default: 'friend' }}")
        subject.press("Enter")
        settle(page)
        expect(page.get_by_text("unsaved changes")).to_be_visible()

        # Preview it for the sample context.
        page.get_by_role("tab", name="Preview").click()
        page.get_by_label("Message step").click()
        page.get_by_role("option", name="reminder_email").click()
        settle(page)
        page.get_by_text("a sample context").click()
        settle(page)
        page.get_by_role("button", name="Render preview").click()
        expect(page.get_by_text("Your cart misses you, Ada")).to_be_visible()
        page.get_by_role("tab", name="Steps").click()
        settle(page)
        page.screenshot(path=str(ARTIFACTS / "designer-editor.png"), full_page=True)

        # Publish, confirming.
        page.get_by_role("button", name="Publish…").click()
        expect(page.get_by_text("Publish version 1?")).to_be_visible()
        page.get_by_role("button", name="Yes, publish").click()
        expect(page.get_by_text("Published version 1: new entries get it")).to_be_visible()
        settle(page)
        stored = live_api.store.get_journey("cart-from-the-browser")
        assert stored is not None
        assert (stored.status, stored.version) == ("live", 1)
        assert stored.draft["nodes"]["reminder_email"]["content"]["subject"].startswith(
            "Your cart misses you"
        )

        # Users go through it; the analytics page shows where they are.
        seed_runs(live_api.store, "cart-from-the-browser")
        page.get_by_role("link", name="Analytics").click()
        expect(page.get_by_role("heading", name="Analytics")).to_be_visible()
        expect(page.get_by_text("Where users are")).to_be_visible()
        expect(page.locator('[data-testid="stGraphVizChart"] svg')).to_be_visible()
        expect(page.locator('[data-testid="stMetric"]').first).to_contain_text("6")
        settle(page)
        page.wait_for_timeout(500)  # let the charts finish drawing
        page.screenshot(path=str(ARTIFACTS / "designer-analytics.png"), full_page=True)
        no_exception(page)


def test_a_users_timeline_opens_on_the_users_page(live_api: LiveApi, designer: str) -> None:
    seed_activity(live_api.store)
    with opened(designer, height=1400) as page:
        settle(page)
        page.get_by_role("link", name="Users").click()
        expect(page.get_by_role("heading", name="Users")).to_be_visible()
        user = page.get_by_label("User id")
        user.fill("ada")
        user.press("Enter")
        expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        settle(page)
        timeline = page.locator('[data-testid="stMarkdownContainer"] li')
        expect(timeline.first).to_contain_text("event Added to Cart")
        entered = timeline.filter(has_text="entered Abandoned cart recovery")
        expect(entered).to_contain_text("entry event Added to Cart")
        expect(entered.get_by_role("link", name="open the run")).to_have_attribute(
            "href", "http://127.0.0.1:8233/namespaces/default/workflows/"
            "journey%3Aabandoned-cart%3Aada",
        )  # fmt: skip
        expect(timeline.filter(has_text="wait over at wait_checkout")).to_contain_text(
            "timeout: no Checkout Started within 24h"
        )
        expect(timeline.filter(has_text="email message sent")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "designer-timeline.png"), full_page=True)
        no_exception(page)

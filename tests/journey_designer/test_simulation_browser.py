"""The editor's Test tab in a real browser: the designer under `streamlit run` against the real
API, driven by headless Chromium; a day-long journey tested for a described user shows its path
on the graph and its offer rendered. A screenshot goes to `test-artifacts/`."""

from __future__ import annotations

import json

from playwright.sync_api import expect, sync_playwright

from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import example
from tests.journey_designer.test_browser import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    chromium,
    designer,
    settle,
)

__all__ = ["designer"]  # the fixture, used by name


def test_testing_a_journey_in_the_browser(live_api: LiveApi, designer: str) -> None:
    executable = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    live_api.store.save_draft("abandoned-cart", example("abandoned-cart"))
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{designer}/editor?journey=abandoned-cart")
            expect(page.get_by_role("heading", name="Abandoned cart recovery")).to_be_visible()
            settle(page)
            page.get_by_role("tab", name="Test").click()
            settle(page)
            entry = page.get_by_label("Entry properties (entry.*)")
            entry.fill(json.dumps({"total_price": 250, "currency": "USD", "item_count": 2}))
            entry.press("Control+Enter")
            settle(page)
            page.get_by_role("button", name="Run the test").click()
            expect(page.get_by_text("The user's run: completed")).to_be_visible()
            expect(page.get_by_text("Subject: Ada, your cart is on us (almost)")).to_be_visible()
            graphs = page.locator('[data-testid="stGraphVizChart"] svg')
            expect(graphs.filter(has_text="✓ reached +1d").first).to_be_visible()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "designer-test-tab.png"), full_page=True)
            assert live_api.store.deliveries_for_user("test-user") == []
        finally:
            browser.close()

"""Signing in to the designer in a real browser: `streamlit run` with accounts sign-in on
loopback against the real API, driven by headless Chromium. An editor saves a draft but cannot
publish, signs out; a publisher signs in and publishes; the audit log names both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from journeys.access import Role
from journeys.people import hash_password
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import example
from tests.journey_designer.test_browser import ARTIFACTS, designer_process, opened, settle
from tests.journey_designer.test_signin import roles_per_route

PASSWORD = "correct horse battery"


@pytest.fixture
def designer_with_accounts(live_api: LiveApi, tmp_path: Path) -> Iterator[str]:
    """The designer with accounts sign-in, holding no admin token."""
    with designer_process(live_api, tmp_path, {"JOURNEYS_DESIGNER_SIGN_IN": "accounts"}) as url:
        yield url


def sign_in(page: Page, email: str) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    settle(page)


def open_in_editor(page: Page, journey_id: str) -> None:
    """From the journeys page (the only journey is chosen)."""
    page.get_by_role("link", name="Journeys").click()
    settle(page)
    page.get_by_role("button", name="Open in the editor").click()
    expect(page.get_by_text(f"id {journey_id}")).to_be_visible()
    settle(page)


def test_an_editor_saves_a_publisher_publishes_and_the_audit_log_names_both(
    live_api: LiveApi, designer_with_accounts: str
) -> None:
    roles_per_route(live_api)
    store = live_api.store
    for email, role in (("edna@example.com", Role.EDITOR), ("pat@example.com", Role.PUBLISHER)):
        store.add_person(email, role, hash_password(PASSWORD), created_by="test")
    document = example("abandoned-cart") | {"id": "cart", "name": "Cart"}
    store.save_draft("cart", document)

    with opened(designer_with_accounts, height=1100) as page:
        page.get_by_label("Email").fill("edna@example.com")
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong email or password.")).to_be_visible()
        sign_in(page, "edna@example.com")

        open_in_editor(page, "cart")
        page.get_by_role("tab", name="Goal & settings").click()
        name = page.get_by_label("Name", exact=True)
        name.fill("Cart, edited by Edna")
        name.press("Enter")
        settle(page)
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_text("Draft saved")).to_be_visible()
        settle(page)
        expect(page.get_by_role("button", name="Publish…")).to_be_disabled()
        expect(page.get_by_text("Publishing needs the publisher role")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "designer-editor-cannot-publish.png"), full_page=True)
        saved = store.get_journey("cart")
        assert saved is not None
        assert (saved.draft["name"], saved.status) == ("Cart, edited by Edna", "draft")

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("You have signed out.")).to_be_visible()
        settle(page)
        sign_in(page, "pat@example.com")
        open_in_editor(page, "cart")
        page.get_by_role("button", name="Publish…").click()
        expect(page.get_by_text("Publish version 1?")).to_be_visible()
        page.get_by_role("button", name="Yes, publish").click()
        expect(page.get_by_text("Published version 1: new entries get it")).to_be_visible()
        settle(page)
        page.get_by_role("tab", name="History").click()
        expect(page.get_by_text("pat@example.com").last).to_be_visible()

    published = store.get_journey("cart")
    assert published is not None
    assert (published.status, published.version) == ("live", 1)
    assert published.draft["name"] == "Cart, edited by Edna"
    trail = [(e.actor, e.action) for e in reversed(store.audit_entries(20))]
    assert ("edna@example.com", "session.started") in trail
    assert ("edna@example.com", "journey.draft_saved") in trail
    assert ("edna@example.com", "session.ended") in trail
    assert ("pat@example.com", "journey.published") in trail
    assert trail.index(("edna@example.com", "journey.draft_saved")) < trail.index(
        ("pat@example.com", "journey.published")
    )

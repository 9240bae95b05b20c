"""The unsubscribe page and one-click POST: signed links, no credentials."""

from __future__ import annotations

from urllib.parse import urlsplit

from journeys.store import Store
from journeys.unsubscribe import Links
from tests.api.conftest import RecordingRouting
from tests.api.helpers import UNSUBSCRIBE_SECRET, ApiClient
from tests.factories import merge_traits

LINKS = Links("http://testserver", UNSUBSCRIBE_SECRET)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_the_link_shows_a_page_and_changes_nothing(api: ApiClient, store: Store) -> None:
    merge_traits(store, "ada", {"email": "ada@example.com"})
    response = await api.http.get(path_of(LINKS.unsubscribe("ada", "email")))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Stop receiving emails from us?" in response.text
    assert '<form method="post">' in response.text
    assert store.get_user("ada").traits == {"email": "ada@example.com"}  # type: ignore[union-attr]


async def test_posting_the_link_unsubscribes_through_an_identify_event(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    merge_traits(store, "ada", {"email": "ada@example.com"})
    path = path_of(LINKS.unsubscribe("ada", "email"))
    # What a mail client sends for RFC 8058 one-click unsubscribe.
    response = await api.http.post(path, content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    traits = store.get_user("ada").traits  # type: ignore[union-attr]
    assert traits == {"email": "ada@example.com", "unsubscribed_email": True}
    (event,) = [e for e in store.events_for_user("ada") if e.type == "identify"]
    assert event.properties == {"unsubscribed_email": True}
    assert event.routed_at is None  # journeys hear of it like any trait change
    assert routing.wakes == 1
    assert (await api.http.post(path)).status_code == 200  # again: harmless


async def test_a_forged_or_broken_link_is_refused(api: ApiClient, store: Store) -> None:
    forged = Links("http://testserver", "not-the-secret").unsubscribe("ada", "email")
    for path in (path_of(forged), "/unsubscribe?token=abc.def", "/unsubscribe"):
        for method in ("GET", "POST"):
            response = await api.http.request(method, path)
            assert response.status_code in (400, 422), (method, path)
    assert store.get_user("ada") is None
    assert store.events_for_user("ada") == []

"""Engagement over HTTP: tracked links, the open pixel, inbox reads, engagement reported by apps
through ingest, and the engagement columns of users and stats."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image

from journeys.signing import seal
from journeys.store import DeliveryRecord, EventRecord, Store
from journeys.tracking import MAX_TOKEN, click_token, open_token
from journeys.unsubscribe import Unsubscribe, sign
from tests.api.conftest import RecordingRouting
from tests.api.helpers import (
    ADMIN_TOKEN,
    SDK_AUTH,
    UNSUBSCRIBE_SECRET,
    WRITE_KEY,
    ApiClient,
    assert_error,
    journey_document,
)
from tests.factories import sent_delivery

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

BROWSER = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
}
A_WHILE_AGO = datetime.now(UTC) - timedelta(minutes=10)
"""When the test deliveries were sent: long enough ago that no hit comes too soon."""


def email(store: Store, key: str = "k1", **fields: Any) -> int:
    """A message sent a while ago (an email to ada unless `fields` say otherwise: see
    `sent_delivery`); its id."""
    record = sent_delivery(store, key, **{"sent_at": A_WHILE_AGO, **fields})
    assert record.id is not None
    return record.id


def delivery(store: Store, delivery_id: int) -> DeliveryRecord:
    [record] = store.get_deliveries([delivery_id]).values()
    return record


def events(store: Store, user_id: str = "ada") -> list[EventRecord]:
    return store.events_for_user(user_id, newest_first=False)


async def click(api: ApiClient, token: str, **headers: str) -> httpx.Response:
    return await api.http.get(f"/c/{token}", headers={**BROWSER, **headers})


async def pixel(api: ApiClient, token: str, **headers: str) -> httpx.Response:
    return await api.http.get(f"/o/{token}.gif", headers={**BROWSER, **headers})


def assert_gif(response: httpx.Response) -> None:
    """The one answer of the pixel: a 43-byte transparent GIF, never cached."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert len(response.content) == 43
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size, image.info["transparency"]) == ("GIF", (1, 1), 0)
    assert image.getpixel((0, 0)) == 0  # the transparent colour


# --- clicks ------------------------------------------------------------------------------------


async def test_a_click_redirects_to_its_url_and_is_recorded(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    delivery_id = email(store, variant="b")
    url = "https://shop.example/cart?id=9&utm_source=mail#top"
    response = await click(api, click_token(UNSUBSCRIBE_SECRET, delivery_id, url))
    assert response.status_code == 302
    assert response.headers["location"] == url
    assert response.headers["cache-control"] == "no-store"
    [event] = events(store)
    assert (event.type, event.name) == ("track", "Email Link Clicked")
    assert event.properties == {
        "delivery_id": delivery_id,
        "journey_id": "cart",
        "journey_version": 1,
        "node_id": "reminder",
        "channel": "email",
        "variant": "b",
        "url": url,
        "machine": False,
    }
    record = delivery(store, delivery_id)
    assert record.clicked_at is not None
    assert record.opened_at == record.clicked_at  # a click opens it too
    assert routing.wakes == 1
    assert [e.name for e in store.unrouted_events()] == ["Email Link Clicked"]


async def test_each_channel_records_its_own_click(api: ApiClient, store: Store) -> None:
    names = {}
    for channel in ("sms", "in_app", "push"):
        delivery_id = email(store, channel, channel=channel)
        token = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
        assert (await click(api, token)).status_code == 302
        names[channel] = events(store)[-1].name
        assert delivery(store, delivery_id).clicked_at is not None
    assert names == {
        "sms": "SMS Link Clicked",
        "in_app": "In-App Message Clicked",
        "push": "Push Notification Opened",
    }


async def test_a_link_that_does_not_verify_is_404_and_records_nothing(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    delivery_id = email(store)
    genuine = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
    payload, signature = genuine.split(".")
    other = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://evil.example/").split(".")[0]
    for token in [
        f"{other}.{signature}",
        click_token("not-the-secret", delivery_id, "https://evil.example/"),
        f"{payload}.",
        payload,
        "nothing",
        "%00",
        open_token(UNSUBSCRIBE_SECRET, delivery_id),
        sign(UNSUBSCRIBE_SECRET, Unsubscribe(user_id="ada", channel="email")),
        seal(UNSUBSCRIBE_SECRET, "click", [delivery_id, "javascript:alert(1)"]),
        seal(UNSUBSCRIBE_SECRET, "click", [delivery_id, "//evil.example/"]),
        "a" * (MAX_TOKEN + 1),
    ]:
        response = await click(api, token)
        error = assert_error(response, 404, "not_found")
        assert "location" not in response.headers
        assert error["message"] == "this link is not valid"
    assert events(store) == []
    assert routing.wakes == 0
    assert delivery(store, delivery_id).clicked_at is None


async def test_a_link_outlives_its_delivery_and_journey(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    gone = click_token(UNSUBSCRIBE_SECRET, 123_456, "https://shop.example/old")
    response = await click(api, gone)
    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example/old")
    assert events(store) == []
    assert routing.wakes == 0
    # The journey archived: the delivery is still there, and so is the click.
    await api.admin("PUT", "/v1/journeys/abandoned-cart", journey_document())
    await api.admin("POST", "/v1/journeys/abandoned-cart/publish")
    assert (await api.admin("POST", "/v1/journeys/abandoned-cart/archive")).status_code == 200
    delivery_id = email(store, journey_id="abandoned-cart", node_id="vip_offer")
    token = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
    assert (await click(api, token)).status_code == 302
    assert [e.properties["journey_id"] for e in events(store)] == ["abandoned-cart"]


async def test_a_click_it_cannot_record_still_redirects(api: ApiClient, store: Store) -> None:
    # A webhook is never tracked, so no click event exists for one: recording fails.
    delivery_id = email(store, channel="webhook")
    token = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
    response = await click(api, token)
    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example/")
    assert events(store) == []


async def test_machine_clicks_are_recorded_but_count_nowhere(api: ApiClient, store: Store) -> None:
    scanned = email(store)
    just_sent = email(store, "k2", sent_at=None)
    url = "https://shop.example/"
    assert (
        await click(
            api,
            click_token(UNSUBSCRIBE_SECRET, scanned, url),
            **{"User-Agent": "python-httpx/0.27"},
        )
    ).status_code == 302
    assert (await click(api, click_token(UNSUBSCRIBE_SECRET, just_sent, url))).status_code == 302
    assert [(e.properties["delivery_id"], e.properties["machine"]) for e in events(store)] == [
        (scanned, True),
        (just_sent, True),
    ]
    for delivery_id in (scanned, just_sent):
        record = delivery(store, delivery_id)
        assert (record.opened_at, record.clicked_at) == (None, None)


async def test_a_scanner_following_every_link_is_a_machine(api: ApiClient, store: Store) -> None:
    delivery_id = email(store)
    urls = [f"https://shop.example/{n}" for n in range(3)]
    for url in urls:
        assert (
            await click(api, click_token(UNSUBSCRIBE_SECRET, delivery_id, url))
        ).status_code == 302
    # The first of the burst looks like a person; the others came too fast to be one.
    assert [e.properties["machine"] for e in events(store)] == [False, True, True]


async def test_a_flood_of_clicks_records_one_per_url_and_minute(
    api: ApiClient, store: Store
) -> None:
    delivery_id = email(store)
    token = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
    started = datetime.now(UTC)
    for _ in range(25):
        assert (await click(api, token)).status_code == 302
    minutes = minutes_between(started, datetime.now(UTC))
    assert len(events(store)) == minutes


async def test_a_gateway_checking_a_link_does_not_take_the_persons_click(
    api: ApiClient, store: Store
) -> None:
    delivery_id = email(store)
    token = click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")
    assert (await click(api, token, **{"User-Agent": "Mimecast"})).status_code == 302
    assert (await click(api, token)).status_code == 302
    assert [e.properties["machine"] for e in events(store)] == [True, False]
    assert delivery(store, delivery_id).clicked_at is not None


def minutes_between(start: datetime, end: datetime) -> int:
    """How many clock minutes a span of time touches (a flood may straddle two)."""
    return int(end.timestamp() // 60) - int(start.timestamp() // 60) + 1


# --- opens -------------------------------------------------------------------------------------


async def test_the_pixel_records_an_open(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    delivery_id = email(store)
    response = await pixel(api, open_token(UNSUBSCRIBE_SECRET, delivery_id))
    assert_gif(response)
    [event] = events(store)
    assert (event.name, event.properties["delivery_id"], event.properties["machine"]) == (
        "Email Opened",
        delivery_id,
        False,
    )
    assert "url" not in event.properties
    record = delivery(store, delivery_id)
    assert (record.opened_at is not None, record.clicked_at) == (True, None)
    assert routing.wakes == 1


async def test_the_pixel_answers_the_same_whatever_its_token(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    delivery_id = email(store)
    genuine = await pixel(api, open_token(UNSUBSCRIBE_SECRET, delivery_id))
    forged = [
        open_token("not-the-secret", delivery_id),
        open_token(UNSUBSCRIBE_SECRET, delivery_id)[:-3],
        click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/"),
        "nothing",
        "a" * (MAX_TOKEN + 1),
        open_token(UNSUBSCRIBE_SECRET, 987_654),  # no such delivery
    ]
    for token in forged:
        response = await pixel(api, token)
        assert_gif(response)
        assert response.content == genuine.content
        assert without_date(response.headers) == without_date(genuine.headers)
    assert len(events(store)) == 1
    assert routing.wakes == 1


def without_date(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "date"}


async def test_a_flood_of_opens_records_one_per_minute(api: ApiClient, store: Store) -> None:
    delivery_id = email(store)
    token = open_token(UNSUBSCRIBE_SECRET, delivery_id)
    started = datetime.now(UTC)
    for _ in range(25):
        assert_gif(await pixel(api, token))
    assert len(events(store)) == minutes_between(started, datetime.now(UTC))


async def test_a_mail_privacy_proxy_open_counts_nowhere(api: ApiClient, store: Store) -> None:
    delivery_id = email(store)
    assert_gif(
        await pixel(
            api, open_token(UNSUBSCRIBE_SECRET, delivery_id), **{"User-Agent": "Mozilla/5.0"}
        )
    )
    assert [e.properties["machine"] for e in events(store)] == [True]
    assert delivery(store, delivery_id).opened_at is None


async def test_nothing_here_needs_or_reveals_a_credential(api: ApiClient, store: Store) -> None:
    delivery_id = email(store)
    answers = [
        await click(api, click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://shop.example/")),
        await click(api, "forged.token"),
        await pixel(api, open_token(UNSUBSCRIBE_SECRET, delivery_id)),
        await pixel(api, "forged"),
        await click(
            api,
            click_token(UNSUBSCRIBE_SECRET, delivery_id, "https://a.example/"),
            Authorization="Bearer wrong",
        ),
    ]
    assert [a.status_code for a in answers] == [302, 404, 200, 200, 302]
    for answer in answers:
        seen = answer.content + str(answer.headers).encode()
        for secret in (UNSUBSCRIBE_SECRET, WRITE_KEY, ADMIN_TOKEN):
            assert secret.encode() not in seen
            assert base64.b64encode(secret.encode()) not in seen
        assert "set-cookie" not in answer.headers
        assert "www-authenticate" not in answer.headers


# --- inbox reads -------------------------------------------------------------------------------


async def test_reading_an_inbox_message_records_one_view(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    message = email(store, channel="in_app", content={"body": "Hi"})
    for _ in range(2):
        response = await api.http.post(f"/v1/users/ada/inbox/{message}/read", headers=SDK_AUTH)
        assert response.status_code == 200
    [event] = events(store)
    record = delivery(store, message)
    assert (event.name, event.message_id, event.timestamp) == (
        "In-App Message Viewed",
        f"view:{message}",
        record.read_at,
    )
    assert (event.properties["delivery_id"], event.properties["machine"]) == (message, False)
    assert record.opened_at == record.read_at
    assert routing.wakes == 1
    response = await api.http.post(f"/v1/users/bea/inbox/{message}/read", headers=SDK_AUTH)
    assert_error(response, 404, "not_found")
    assert len(events(store)) == 1


# --- engagement reported through ingest --------------------------------------------------------


def reported(
    event: str, delivery_id: Any, user_id: str = "ada", **properties: Any
) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "properties": {"delivery_id": delivery_id, **properties},
    }


async def test_an_app_reported_push_open_is_attributed(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    push = email(store, "p1", channel="push", variant="a")
    response = await api.ingest(
        "/v1/track", reported("Push Notification Opened", str(push), os="ios")
    )
    assert response.status_code == 200
    [event] = events(store)
    assert event.properties == {
        "delivery_id": push,
        "journey_id": "cart",
        "journey_version": 1,
        "node_id": "reminder",
        "channel": "push",
        "variant": "a",
        "os": "ios",
        "machine": False,
    }
    record = delivery(store, push)
    assert (record.opened_at, record.clicked_at) == (event.timestamp, None)
    assert routing.wakes == 1


async def test_in_app_engagement_reported_in_a_batch_is_attributed(
    api: ApiClient, store: Store
) -> None:
    shown, tapped, closed = (email(store, k, channel="in_app") for k in ("i1", "i2", "i3"))
    at = "2026-03-01T12:00:00Z"
    batch = [
        {**reported("In-App Message Viewed", shown), "timestamp": at},
        {**reported("In-App Message Clicked", tapped), "timestamp": at},
        reported("In-App Message Dismissed", closed),
        {
            "type": "track",
            "userId": "ada",
            "event": "Product Viewed",
            "properties": {"delivery_id": shown},
        },
        {"type": "identify", "userId": "ada", "traits": {"delivery_id": shown}},
    ]
    assert (await api.ingest("/v1/batch", {"batch": batch})).status_code == 200
    stored = events(store)
    assert [e.properties.get("node_id") for e in stored] == ["reminder"] * 3 + [None, None]
    marks = {
        k: (delivery(store, i).opened_at, delivery(store, i).clicked_at)
        for k, i in [("shown", shown), ("tapped", tapped), ("closed", closed)]
    }
    at_time = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert marks == {"shown": (at_time, None), "tapped": (at_time, at_time), "closed": (None, None)}


@pytest.mark.parametrize(
    ("event", "delivery_id", "user_id"),
    [
        ("Push Notification Opened", "other user", "bea"),
        ("Email Opened", "push", "ada"),  # not the channel of that delivery
        ("Push Notification Opened", 999_999, "ada"),
        ("Push Notification Opened", "abc", "ada"),
        ("Push Notification Opened", "٣", "ada"),  # a digit, but not an id
        ("Push Notification Opened", True, "ada"),
        ("Push Notification Opened", -1, "ada"),
        ("Push Notification Opened", 2**40, "ada"),
        ("Push Notification Opened", None, "ada"),
        ("Push Notification Opened", 1.0, "ada"),
    ],
)
async def test_engagement_that_names_no_delivery_of_the_user_is_stored_as_sent(
    api: ApiClient, store: Store, event: str, delivery_id: Any, user_id: str
) -> None:
    push = email(store, "p1", channel="push")
    named = push if delivery_id in ("push", "other user") else delivery_id
    body = reported(event, named, user_id)
    assert (await api.ingest("/v1/track", body)).status_code == 200
    [stored] = events(store, user_id)
    assert stored.properties == {"delivery_id": named}
    assert delivery(store, push).opened_at is None


async def test_a_machine_the_app_reports_is_attributed_and_counts_nowhere(
    api: ApiClient, store: Store
) -> None:
    push = email(store, "p1", channel="push")
    body = reported("Push Notification Opened", push, machine=True)
    assert (await api.ingest("/v1/track", body)).status_code == 200
    [stored] = events(store)
    assert (stored.properties["node_id"], stored.properties["machine"]) == ("reminder", True)
    assert delivery(store, push).opened_at is None


async def test_a_retried_report_still_marks_its_delivery(api: ApiClient, store: Store) -> None:
    push = email(store, "p1", channel="push")
    body = {**reported("Push Notification Opened", push), "messageId": "m-1"}
    assert (await api.ingest("/v1/track", body)).status_code == 200
    with store._write() as session:  # as if the mark had failed after the event was stored
        record = delivery(store, push)
        record.opened_at = None
        session.add(record)
    assert (await api.ingest("/v1/track", body)).status_code == 200
    assert len(events(store)) == 1
    assert delivery(store, push).opened_at is not None


# --- users and stats ---------------------------------------------------------------------------


async def test_users_and_stats_show_engagement(api: ApiClient, store: Store) -> None:
    await api.admin("PUT", "/v1/journeys/abandoned-cart", journey_document())
    await api.admin("POST", "/v1/journeys/abandoned-cart/publish")
    sends = {
        user: email(store, user, user_id=user, journey_id="abandoned-cart", node_id="vip_offer")
        for user in ("ada", "bea", "cy", "dan")
    }
    again = email(
        store, "ada-again", user_id="ada", journey_id="abandoned-cart", node_id="vip_offer"
    )
    url = "https://shop.example/"
    await pixel(api, open_token(UNSUBSCRIBE_SECRET, sends["ada"]))
    await click(api, click_token(UNSUBSCRIBE_SECRET, again, url))  # ada again: one user
    await click(api, click_token(UNSUBSCRIBE_SECRET, sends["bea"], url))
    await pixel(api, open_token(UNSUBSCRIBE_SECRET, sends["cy"]), **{"User-Agent": "Mozilla/5.0"})

    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    assert stats["messages"]["vip_offer"] == {
        "sent": 5,
        "skipped": 0,
        "failed": 0,
        "opened": 2,
        "clicked": 2,
        "open_rate": 2 / 5,
        "click_rate": 2 / 5,
    }
    assert stats["messages"]["push_a"]["open_rate"] is None
    user = (await api.admin("GET", "/v1/users/bea")).json()
    [sent] = user["deliveries"]
    record = delivery(store, sends["bea"])
    assert sent["opened_at"] is not None
    assert sent["clicked_at"] == sent["opened_at"]
    assert datetime.fromisoformat(sent["clicked_at"]) == record.clicked_at
    untouched = (await api.admin("GET", "/v1/users/dan")).json()["deliveries"][0]
    assert (untouched["opened_at"], untouched["clicked_at"]) == (None, None)

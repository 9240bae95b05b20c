"""The real Segment Python SDK against the API served by uvicorn on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError

from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import WRITE_KEY


@pytest.mark.parametrize("gzip", [False, True])
def test_the_segment_sdk_sends_and_the_api_stores(
    served: str, store: Store, routing: RecordingRouting, gzip: bool
) -> None:
    client = Client(WRITE_KEY, host=served, sync_mode=True, gzip=gzip, max_retries=0)
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    client.track(anonymous_id="a1", event="Viewed Product", properties={"sku": "X"}, timestamp=at)
    client.identify(user_id="u1", anonymous_id="a1", traits={"email": "u1@example.com"})
    client.page(user_id="u1", name="Checkout", properties={"step": 1})
    client.screen(user_id="u1", name="Home")
    client.track(user_id="u1", event="Order Completed", message_id="order-1")
    client.track(user_id="u1", event="Order Completed", message_id="order-1")

    events = store.events_for_user("u1", newest_first=False)
    assert [(e.type, e.name) for e in events] == [
        ("track", "Viewed Product"),
        ("identify", None),
        ("page", "Checkout"),
        ("screen", "Home"),
        ("track", "Order Completed"),
    ]
    assert events[0].properties == {"sku": "X"}
    assert events[0].timestamp == at
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"email": "u1@example.com"}
    assert store.get_user("anon:a1") is None
    assert routing.wakes == 5


def test_the_segment_sdk_sees_a_wrong_key_refused(served: str, store: Store) -> None:
    client = Client("not-the-key", host=served, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as refused:
        client.track(user_id="u1", event="Viewed")
    assert refused.value.status == 401
    assert store.events_for_user("u1") == []

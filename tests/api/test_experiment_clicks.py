"""Experiment statistics on clicks, and conditions only a journey run can answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeys.contracts import delivery_key
from journeys.engagement import DELIVERY_ID, MACHINE, PUSH_OPENED
from journeys.experiments import Counts, two_proportion_p, wilson_interval
from journeys.store import NewEvent, Store
from tests.api.helpers import ApiClient, assert_error, journey_document, paths_of
from tests.factories import enroll, mark_converted, move, set_variant

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NODES = ["wait_checkout", "by_value", "copy_test"]


def document(metric: str) -> dict[str, Any]:
    """The API tests' journey, its experiment between two pushes and decided on `metric`."""
    journey = journey_document()
    journey["nodes"]["copy_test"]["variants"] = [
        {"name": "urgency", "weight": 50, "next": "push_a"},
        {"name": "calm", "weight": 50, "next": "push_b"},
    ]
    journey["nodes"]["copy_test"]["winner"] = {
        "after": "7d",
        "min_users": 100,
        "metric": metric,
        "within": "1d",
    }
    journey["nodes"]["push_b"] = {
        **journey["nodes"]["push_a"],
        "content": {"title": "Hi", "body": "B"},
    }
    return journey


def run(store: Store, user_id: str, variant: str, clicked: timedelta | None, **how: Any) -> None:
    """A user who reached the experiment in `variant` and got its push, clicked `clicked`
    after reaching it (`machine=True`: by a link scanner), converted when `converted`."""
    enrollment = f"run-{user_id}"
    enroll(
        store,
        enrollment_id=enrollment,
        user_id=user_id,
        journey_id="abandoned-cart",
        version=1,
        workflow_id=f"journey:abandoned-cart:{user_id}",
        entered_at=T0,
    )
    node = "push_a" if variant == "urgency" else "push_b"
    for step, node_id in enumerate([*NODES, node]):
        move(store, enrollment, node_id, T0 + timedelta(minutes=step))
    set_variant(store, enrollment, variant)
    if how.get("converted"):
        mark_converted(store, enrollment, T0 + timedelta(hours=1))
    key = delivery_key(enrollment, node)
    delivery, _ = store.begin_delivery(
        idempotency_key=key,
        journey_id="abandoned-cart",
        version=1,
        node_id=node,
        user_id=user_id,
        channel="push",
        variant=variant,
        content={"title": "t", "body": "b", "data": {"url": "https://shop.example"}},
    )
    store.finish_delivery(key, "sent")
    if clicked is not None:
        tapped = NewEvent(
            message_id=f"tap-{user_id}",
            user_id=user_id,
            type="track",
            name=PUSH_OPENED,  # through the tracked `data.url`: a click
            properties={
                DELIVERY_ID: delivery.id,
                "url": "https://shop.example",
                MACHINE: how.get("machine", False),
            },
            timestamp=T0 + timedelta(minutes=2) + clicked,
        )
        store.mark_engaged([tapped])


@pytest.mark.parametrize("metric", ["click", "conversion"])
async def test_variants_show_clicks_and_the_rule_measures_its_metric(
    api: ApiClient, store: Store, metric: str
) -> None:
    response = await api.admin("PUT", "/v1/journeys/abandoned-cart", document(metric))
    assert response.status_code == 200, response.text
    assert (await api.admin("POST", "/v1/journeys/abandoned-cart/publish")).status_code == 200
    hour = timedelta(hours=1)
    run(store, "u1", "urgency", hour, converted=True)
    run(store, "u2", "urgency", hour)
    run(store, "u3", "urgency", timedelta(days=2))  # outside `within`
    run(store, "u4", "urgency", None)
    run(store, "u5", "calm", hour)
    run(store, "u6", "calm", timedelta(seconds=1), machine=True)
    run(store, "u7", "calm", None)
    run(store, "u8", "calm", None)

    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    experiment = stats["experiments"]["copy_test"]
    assert experiment["variants"] == {
        "urgency": {
            "users": 4,
            "conversions": 1,
            "rate": 0.25,
            "interval": list(wilson_interval(Counts(4, 1))),
            "clicks": 2,
            "click_rate": 0.5,
        },
        "calm": {
            "users": 4,
            "conversions": 0,
            "rate": 0.0,
            "interval": list(wilson_interval(Counts(4, 0))),
            "clicks": 1,
            "click_rate": 0.25,
        },
    }
    measured = {
        "click": (Counts(4, 2), Counts(4, 1)),
        "conversion": (Counts(4, 1), Counts(4, 0)),
    }[metric]
    assert experiment["p_value"] == pytest.approx(two_proportion_p(*measured))


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"message": "welcome", "engagement": "opened"}, "condition.message"),
        (
            {
                "all": [
                    {"field": "user.plan", "op": "exists"},
                    {"message": "w", "engagement": "sent"},
                ]
            },
            "condition.all[1].message",
        ),
    ],
)
async def test_segments_refuse_message_conditions(
    api: ApiClient, store: Store, condition: dict[str, Any], path: str
) -> None:
    body = {"name": "Openers", "condition": condition}
    error = assert_error(
        await api.admin("PUT", "/v1/segments/openers", body), 422, "validation_error"
    )
    assert error["details"] == [
        {"path": path, "message": "only a journey can ask about its messages"}
    ]
    assert store.list_segments() == []
    counted = await api.admin("POST", "/v1/segments/count", {"condition": condition})
    assert paths_of(assert_error(counted, 422, "validation_error")) == [path]

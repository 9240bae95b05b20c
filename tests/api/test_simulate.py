"""`POST /v1/journeys/{id}/simulate`: a version or the draft run for one described user on a
time-skipping engine, through the real app; nothing sent, nothing stored; every bad input
refused with a clear error."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from api_client import ApiClient as Client
from journeys.simulation import ScriptedEvent, SimulationRequest
from journeys.store import Store
from tests.api.helpers import ADMIN_TOKEN, SDK_AUTH, ApiClient, assert_error, bearer

CHECKOUT: dict[str, Any] = {
    "id": "checkout",
    "name": "Checkout reminder",
    "entry": {"event": "Added to Cart"},
    "start": "wait",
    "nodes": {
        "wait": {
            "type": "wait_for_event",
            "timeout": "24h",
            "on_timeout": "by_value",
            "paths": [{"event": "Order Completed", "next": None}],
        },
        "by_value": {
            "type": "branch",
            "else": "nudge",
            "paths": [{"when": {"field": "entry.total", "op": "gte", "value": 100}, "next": "vip"}],
        },
        "vip": {
            "type": "message",
            "channel": "email",
            "next": "nudge",
            "content": {"subject": "{{ user.first_name }}, 20% off", "body": "Code SAVE20"},
        },
        "nudge": {
            "type": "message",
            "channel": "push",
            "next": None,
            "content": {"title": "Still there?", "body": "{{ entry.total }} in your cart"},
        },
    },
}
ADA = {"id": "ada", "first_name": "Ada", "email": "ada@example.com", "push_tokens": ["t1"]}


async def _live(api: ApiClient, document: dict[str, Any]) -> None:
    saved = await api.admin("PUT", f"/v1/journeys/{document['id']}", document)
    assert saved.status_code == 200, saved.text
    published = await api.admin("POST", f"/v1/journeys/{document['id']}/publish")
    assert published.status_code == 200, published.text


def _after(entered: datetime, at: datetime) -> timedelta:
    """How long after entry, to the minute."""
    return timedelta(minutes=round((at - entered).total_seconds() / 60))


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_a_day_long_journey_answers_in_seconds_and_leaves_no_trace(
    api: ApiClient, served: str, store: Store
) -> None:
    await _live(api, CHECKOUT)
    request = SimulationRequest(
        version=1,
        user=ADA,
        entry={"total": 120},
        events=[ScriptedEvent(at="3d", event="Order Completed")],
        horizon="2d",
    )
    began = time.perf_counter()
    with Client(served, admin_token=ADMIN_TOKEN) as client:
        result = client.simulate("checkout", request)
    assert time.perf_counter() - began < 5
    assert result.status == "completed"
    entered = result.entered_at
    assert [(step.node, _after(entered, step.at)) for step in result.path] == [
        ("wait", timedelta(0)),
        ("by_value", timedelta(hours=24)),
        ("vip", timedelta(hours=24)),
        ("nudge", timedelta(hours=24)),
    ]
    vip, nudge = result.messages
    assert (vip.node, vip.channel, vip.status) == ("vip", "email", "sent")
    assert vip.content == {"subject": "Ada, 20% off", "body": "Code SAVE20"}
    assert nudge.content == {"title": "Still there?", "body": "120 in your cart"}
    assert _after(entered, nudge.at) == timedelta(hours=24)
    assert [e.event for e in result.ignored_events] == ["Order Completed"]
    assert result.duration < 5
    # Nothing reached the real store: no profile, delivery, enrollment or event, no stats.
    assert store.get_user("ada") is None
    assert store.deliveries_for_user("ada") == []
    assert store.enrollments_for_user("ada") == []
    assert store.count_events("ada", name=None, since=None) == 0
    stats = (await api.admin("GET", "/v1/journeys/checkout/stats")).json()
    assert stats["entered"] == 0
    assert stats["messages"]["vip"]["sent"] == 0


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_the_draft_runs_with_the_workspaces_templates_segments_and_caps(
    api: ApiClient,
) -> None:
    await _live(api, CHECKOUT)
    template = {"id": "nudge", "channel": "push", "content": {"title": "T", "body": "B"}}
    assert (await api.admin("PUT", "/v1/templates/nudge", template)).status_code == 200
    segment = {
        "id": "pros",
        "name": "Pros",
        "condition": {"field": "user.plan", "op": "eq", "value": "pro"},
    }
    assert (await api.admin("PUT", "/v1/segments/pros", segment)).status_code == 200
    caps = {"frequency_caps": [{"max": 1, "per": "1d"}]}
    assert (await api.admin("PUT", "/v1/settings", caps)).status_code == 200
    draft = {
        **CHECKOUT,
        "start": "by_plan",
        "nodes": {
            **CHECKOUT["nodes"],
            "by_plan": {
                "type": "branch",
                "else": None,
                "paths": [{"when": {"segment": "pros"}, "next": "vip"}],
            },
            "nudge": {"type": "message", "channel": "push", "next": None, "template": "nudge"},
        },
    }
    del draft["nodes"]["wait"], draft["nodes"]["by_value"]
    assert (await api.admin("PUT", "/v1/journeys/checkout", draft)).status_code == 200
    body = {"user": {**ADA, "plan": "pro"}}
    response = await api.admin("POST", "/v1/journeys/checkout/simulate", body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [step["node"] for step in result["path"]] == ["by_plan", "vip", "nudge"]
    vip, nudge = result["messages"]
    assert vip["status"] == "sent"
    assert (nudge["status"], nudge["skipped"]) == ("skipped", "frequency cap: 1 per 1d")
    assert nudge["content"] == {"title": "T", "body": "B"}


async def test_an_invalid_draft_is_422_with_its_problems(api: ApiClient) -> None:
    draft = {
        **CHECKOUT,
        "nodes": {
            **CHECKOUT["nodes"],
            "nudge": {"type": "message", "channel": "push", "next": None, "template": "nope"},
        },
    }
    assert (await api.admin("PUT", "/v1/journeys/checkout", draft)).status_code == 200
    response = await api.admin("POST", "/v1/journeys/checkout/simulate", {"version": "draft"})
    error = assert_error(response, 422, "invalid_journey")
    assert error["details"] == [
        {"path": "nodes.nudge.template", "message": "unknown template 'nope'"}
    ]


async def test_unknown_journeys_and_versions_are_404(api: ApiClient) -> None:
    response = await api.admin("POST", "/v1/journeys/nothing/simulate", {})
    assert_error(response, 404, "not_found")
    await _live(api, CHECKOUT)
    response = await api.admin("POST", "/v1/journeys/checkout/simulate", {"version": 2})
    error = assert_error(response, 404, "not_found")
    assert "no version 2" in error["message"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"horizon": "400d"}, "horizon"),
        ({"horizon": "soon"}, "horizon"),
        ({"events": [{"at": "1h"}]}, "events[0]"),
        ({"events": [{"at": "1h", "event": "X", "traits": {}}]}, "events[0]"),
        ({"events": [{"at": "-1h", "event": "X"}]}, "events[0].at"),
        ({"version": 0}, "version"),
        ({"version": "latest"}, "version"),
        ({"version": True}, "version"),
        ({"user": "ada"}, "user"),
        ({"users": {}}, "users"),
    ],
)
async def test_malformed_bodies_are_422_located(
    api: ApiClient, body: dict[str, Any], location: str
) -> None:
    await _live(api, CHECKOUT)
    response = await api.admin("POST", "/v1/journeys/checkout/simulate", body)
    error = assert_error(response, 422, "validation_error")
    assert location in [detail["path"] for detail in error["details"]], error


async def test_only_the_admin_token_may_simulate(api: ApiClient) -> None:
    await _live(api, CHECKOUT)
    http: httpx.AsyncClient = api.http
    for headers in ({}, SDK_AUTH):
        response = await http.post("/v1/journeys/checkout/simulate", json={}, headers=headers)
        assert_error(response, 401, "unauthorized")


async def test_simulations_at_once_through_the_api_keep_apart(api: ApiClient, served: str) -> None:
    await _live(api, CHECKOUT)

    def body(order_at: str | None) -> dict[str, Any]:
        events = [] if order_at is None else [{"at": order_at, "event": "Order Completed"}]
        return {"version": 1, "user": ADA, "entry": {"total": 20}, "events": events}

    async with httpx.AsyncClient(base_url=served, headers=bearer(ADMIN_TOKEN)) as http:
        answers = await asyncio.gather(
            *(
                http.post("/v1/journeys/checkout/simulate", json=body(at), timeout=30)
                for at in ("10m", "20h", None)
            )
        )
    early, late, never = (response.json() for response in answers)
    for result, ended in ((early, timedelta(minutes=10)), (late, timedelta(hours=20))):
        assert [step["node"] for step in result["path"]] == ["wait"]
        assert result["messages"] == []
        entered, end = (datetime.fromisoformat(result[k]) for k in ("entered_at", "ended_at"))
        assert _after(entered, end) == ended
    assert [step["node"] for step in never["path"]] == ["wait", "by_value", "nudge"]
    assert [m["content"]["body"] for m in never["messages"]] == ["20 in your cart"]

"""`journeys demo`: the seeded traffic plan, the demo journeys, and sending to a loopback API."""

from __future__ import annotations

import base64
import io
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from api_client import ApiClient
from cli.demo import (
    DEMO_JOURNEYS,
    DemoEvent,
    Traffic,
    load_demo_journeys,
    plan_traffic,
    progress_bar,
    run_demo,
)
from journeys.model import Journey, MessageNode, WaitForEventNode, WaitForInactivityNode
from journeys.templates import render_value
from journeys.validation import validate
from tests.conftest import run_journeys
from tests.journeys.loopback import LoopbackApi, Request, error_body

FUNNEL = ("Product Viewed", "Added to Cart", "Checkout Started", "Order Completed")
LAST_STEP = {
    "browser": "Product Viewed",
    "cart_abandoner": "Added to Cart",
    "checkout_abandoner": "Checkout Started",
    "buyer": "Order Completed",
}
DEMO_FOLDER = Path(__file__).parents[2] / "cli" / "demo_journeys"


def by_user(traffic: Traffic) -> dict[str, list[DemoEvent]]:
    events: dict[str, list[DemoEvent]] = defaultdict(list)
    for event in traffic.events:
        events[event.user_id].append(event)
    return events


# --- the traffic plan -------------------------------------------------------------------------


def test_the_same_seed_plans_the_same_traffic_and_another_seed_other_traffic() -> None:
    assert plan_traffic(30, seed=7, run="r") == plan_traffic(30, seed=7, run="r")
    assert plan_traffic(30, seed=7, run="r") != plan_traffic(30, seed=8, run="r")


@pytest.mark.parametrize("seed", [1, 2, 3, 42])
def test_every_shopper_follows_the_funnel(seed: int) -> None:
    traffic = plan_traffic(60, seed=seed, run="demo-x")
    assert [e.at for e in traffic.events] == sorted(e.at for e in traffic.events)
    assert len({e.message_id for e in traffic.events}) == len(traffic.events)
    events = by_user(traffic)
    assert set(events) == {shopper.user_id for shopper in traffic.shoppers}
    for shopper in traffic.shoppers:
        identify, *tracks = events[shopper.user_id]
        # Logged in first, with the profile the journeys will read.
        assert (identify.type, identify.traits) == ("identify", shopper.traits)
        assert all(e.type == "track" for e in tracks)
        names = [e.event for e in tracks]
        assert names[0] == "Product Viewed"
        # Steps only move forward through the funnel, and stop where the persona stops.
        steps = [FUNNEL.index(name) for name in names if name is not None]
        assert steps == sorted(steps)
        assert names[-1] == LAST_STEP[shopper.persona]
        assert names.count("Checkout Started") <= 1
        assert names.count("Order Completed") <= 1
        viewed = {e.properties["product_id"] for e in tracks if e.event == "Product Viewed"}
        carted = [e for e in tracks if e.event == "Added to Cart"]
        assert {e.properties["product_id"] for e in carted} <= viewed
        for event in tracks:
            match event.event:
                case "Checkout Started":
                    assert carted
                    assert event.properties["cart_id"] == carted[0].properties["cart_id"]
                    assert event.properties["value"] == carted[-1].properties["total_price"]
                case "Order Completed":
                    checkout = next(e for e in tracks if e.event == "Checkout Started")
                    assert checkout.at < event.at
                    assert event.properties["checkout_id"] == checkout.properties["checkout_id"]


def test_the_traffic_is_short_and_checkouts_come_before_the_cart_journey_times_out() -> None:
    traffic = plan_traffic(200, seed=42, run="demo-x")
    assert traffic.duration < 30
    assert {s.persona for s in traffic.shoppers} == set(LAST_STEP)
    for events in by_user(traffic).values():
        first_cart = next((e.at for e in events if e.event == "Added to Cart"), None)
        checkout = next((e.at for e in events if e.event == "Checkout Started"), None)
        if first_cart is not None and checkout is not None:
            assert checkout - first_cart < 15  # the demo cart journey waits 20 s


def test_shoppers_look_like_customers_and_belong_to_their_run() -> None:
    traffic = plan_traffic(100, seed=42, run="demo-123")
    assert len(traffic.shoppers) == 100
    assert all(s.user_id.startswith("demo-123-") for s in traffic.shoppers)
    traits = [s.traits for s in traffic.shoppers]
    assert all({"first_name", "last_name", "timezone"} <= t.keys() for t in traits)
    with_email = sum("email" in t for t in traits)
    with_push = sum("push_tokens" in t for t in traits)
    with_phone = sum("phone" in t for t in traits)
    assert 70 <= with_email < 100
    assert 25 <= with_push <= 75
    assert 15 <= with_phone <= 65
    assert any("push_tokens" in t and "email" not in t for t in traits)


def test_expected_messages_follow_personas_and_addresses() -> None:
    traffic = plan_traffic(100, seed=5, run="r")
    expected: Counter[str] = Counter()
    for shopper in traffic.shoppers:
        email, push = "email" in shopper.traits, "push_tokens" in shopper.traits
        if shopper.persona == "browser":
            expected.update(["email"] if email else ["push"] if push else [])
        elif shopper.persona == "cart_abandoner":
            expected.update((["email"] if email else []) + (["push"] if push else []))
    assert traffic.expected_messages() == expected
    assert expected["email"] > 0
    assert expected["push"] > 0


def test_events_are_segment_messages() -> None:
    traffic = plan_traffic(3, seed=1, run="r")
    identify, track = traffic.events[0], next(e for e in traffic.events if e.type == "track")
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert identify.to_segment(stamp) == {
        "type": "identify",
        "userId": identify.user_id,
        "messageId": identify.message_id,
        "timestamp": "2025-01-02T03:04:05+00:00",
        "traits": identify.traits,
        "context": {"library": {"name": "journeys-demo", "version": "1"}},
    }
    message = track.to_segment(stamp)
    assert (message["type"], message["event"]) == ("track", "Product Viewed")
    assert message["properties"]["product_id"]


def test_progress_bar() -> None:
    assert progress_bar(0, 40, width=10) == "[          ]"
    assert progress_bar(12, 40, width=10) == "[###       ]"
    assert progress_bar(40, 40, width=10) == "[##########]"
    assert progress_bar(0, 0, width=4) == "[####]"


def test_at_least_one_user() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        plan_traffic(0)


# --- the demo journeys ------------------------------------------------------------------------


def test_the_demo_journeys_are_valid_with_waits_of_seconds() -> None:
    documents = load_demo_journeys()
    assert [d["id"] for d in documents] == list(DEMO_JOURNEYS)
    assert sorted(p.stem for p in DEMO_FOLDER.glob("*.json")) == sorted(DEMO_JOURNEYS)
    for document in documents:
        assert validate(document) == []
    cart, browse = (Journey.model_validate(d) for d in documents)
    wait = cart.nodes[cart.start]
    assert isinstance(wait, WaitForEventNode)
    assert (wait.paths[0].event, wait.timeout) == ("Checkout Started", "20s")
    quiet = browse.nodes[browse.start]
    assert isinstance(quiet, WaitForInactivityNode)
    assert quiet.duration == "15s"


def test_the_cli_validates_the_demo_journeys() -> None:
    result = run_journeys("validate", *map(str, sorted(DEMO_FOLDER.glob("*.json"))))
    assert (result.returncode, result.stdout) == (0, "")


def test_the_demo_messages_render_with_the_demo_traffic() -> None:
    traffic = plan_traffic(40, seed=42, run="r")
    shopper = next(s for s in traffic.shoppers if s.persona == "cart_abandoner")
    events = by_user(traffic)[shopper.user_id]
    entries = {
        "demo-abandoned-cart": next(e for e in events if e.event == "Added to Cart"),
        "demo-browse-abandonment": next(e for e in events if e.event == "Product Viewed"),
    }
    for document in load_demo_journeys():
        journey = Journey.model_validate(document)
        entry = entries[journey.id].properties
        context = {
            "user": {**shopper.traits, "id": shopper.user_id},
            "entry": entry,
            "event": entry,
            "journey": {"id": journey.id, "name": journey.name, "version": 1},
            "variant": None,
        }
        for node in journey.nodes.values():
            if isinstance(node, MessageNode) and isinstance(node.content, dict):
                rendered = render_value(node.content, context)
                text = str(rendered)
                assert "{{" not in text
                assert all(str(value).strip() for value in rendered.values()), rendered
                # Every message names what the shopper looked at or put in the cart.
                assert entry.get("first_item_name", entry["name"])[:20] in text


# --- sending ----------------------------------------------------------------------------------


class DemoApi:
    """Publishes, accepts batches, and reports one sent email per user who received events."""

    def __init__(self) -> None:
        self.users: set[str] = set()

    def __call__(self, request: Request) -> tuple[int, Any]:
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        match request.method, parts:
            case "PUT", ["v1", "journeys", _]:
                return 200, {}
            case "POST", ["v1", "journeys", _, "publish"]:
                return 200, {"version": 4}
            case "POST", ["v1", "batch"]:
                self.users.update(m["userId"] for m in request.body["batch"])
                return 200, {"success": True}
            case "GET", ["v1", "users", user_id] if user_id in self.users:
                deliveries = [
                    {"journey_id": "demo-abandoned-cart", "channel": "email", "status": "sent"},
                    {"journey_id": "demo-abandoned-cart", "channel": "push", "status": "skipped"},
                    {"journey_id": "other", "channel": "sms", "status": "sent"},
                ]
                return 200, {"user_id": user_id, "traits": {}, "deliveries": deliveries}
        return 404, error_body("not_found", "no such thing")


def test_run_demo_publishes_sends_every_event_with_the_write_key_and_counts_deliveries() -> None:
    traffic = plan_traffic(6, seed=3, run="demo-t")
    fake = DemoApi()
    out, err = io.StringIO(), io.StringIO()
    with (
        LoopbackApi(fake) as server,
        ApiClient(server.url, admin_token="admin", write_key="wk") as client,
    ):
        landed = run_demo(
            client,
            traffic,
            temporal_ui_url="http://127.0.0.1:8233",
            temporal_address="127.0.0.1:7233",
            speed=1000.0,
            wait=0.0,
            out=out,
            err=err,
        )
    requests = server.requests
    assert [(r.method, r.path) for r in requests[:4]] == [
        ("PUT", "/v1/journeys/demo-abandoned-cart"),
        ("POST", "/v1/journeys/demo-abandoned-cart/publish"),
        ("PUT", "/v1/journeys/demo-browse-abandonment"),
        ("POST", "/v1/journeys/demo-browse-abandonment/publish"),
    ]
    assert {r.headers["authorization"] for r in requests[:4]} == {"Bearer admin"}
    batches = [r for r in requests if r.path == "/v1/batch"]
    basic = "Basic " + base64.b64encode(b"wk:").decode()
    assert {r.headers["authorization"] for r in batches} == {basic}
    sent = [message for r in batches for message in r.body["batch"]]
    assert [m["messageId"] for m in sent] == [e.message_id for e in traffic.events]
    assert all(m["timestamp"].endswith("+00:00") for m in sent)
    reads = [r for r in requests if r.path.startswith("/v1/users/")]
    assert {r.headers["authorization"] for r in reads} == {"Bearer admin"}
    assert landed == Counter({"email": 6})

    printed = out.getvalue()
    assert "published demo-abandoned-cart v4" in printed
    assert "6 of " in printed
    assert "http://127.0.0.1:8233/namespaces/default/workflows?query=" in printed
    assert "temporal workflow list --address 127.0.0.1:7233" in printed
    assert "--query \"JourneyId='demo-abandoned-cart'\"" in printed
    progress = err.getvalue()
    assert "\r[" in progress
    assert f"6/6 users · {len(traffic.events)}/{len(traffic.events)} events" in progress


def test_demo_without_credentials_is_a_clear_error() -> None:
    result = run_journeys("demo", "--users", "2", clean=True)
    assert result.returncode == 2
    assert "the demo needs JOURNEYS_ADMIN_TOKEN (the management" in result.stderr
    assert "; JOURNEYS_WRITE_KEY (the ingest credential)" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_reports_an_api_refusal_without_a_traceback() -> None:
    def refuse(request: Request) -> tuple[int, Any]:
        return 401, error_body("unauthorized", "invalid admin token")

    with LoopbackApi(refuse) as server:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
            "JOURNEYS_API_URL": server.url,
            "JOURNEYS_ADMIN_TOKEN": "wrong",
            "JOURNEYS_WRITE_KEY": "wk",
        }
        result = run_journeys("demo", "--users", "2", env=environment)
    assert result.returncode == 1
    assert "journeys: the API refused the demo: 401 unauthorized: invalid admin token" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr

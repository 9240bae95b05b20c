"""Journey management: drafts, validation, publish, status, versions and stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeys.contracts import EndStatus, FinalDeliveryStatus
from journeys.experiments import Counts, two_proportion_p, wilson_interval
from journeys.routing import RoutingUnavailable
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ApiClient, assert_error, journey_document
from tests.factories import enroll, finish, mark_converted, move, set_variant

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _save(api: ApiClient, document: dict[str, Any] | None = None) -> dict[str, Any]:
    document = document or journey_document()
    response = await api.admin("PUT", f"/v1/journeys/{document['id']}", document)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _publish(api: ApiClient, journey_id: str = "abandoned-cart") -> int:
    response = await api.admin("POST", f"/v1/journeys/{journey_id}/publish")
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


async def test_save_get_and_list_drafts(api: ApiClient) -> None:
    document = journey_document()
    saved = await _save(api, document)
    assert saved == {"draft": document, "status": "draft", "version": None, "published": None}
    assert (await api.admin("GET", "/v1/journeys/abandoned-cart")).json() == saved
    await _save(api, journey_document("b-journey", name="B"))
    listed = (await api.admin("GET", "/v1/journeys")).json()
    assert [(j["id"], j["name"], j["status"], j["version"]) for j in listed] == [
        ("abandoned-cart", "Abandoned cart recovery", "draft", None),
        ("b-journey", "B", "draft", None),
    ]
    assert all(set(j) == {"id", "name", "status", "version", "updated_at"} for j in listed)
    datetime.fromisoformat(listed[0]["updated_at"])


async def test_an_invalid_draft_is_422_with_every_problem(api: ApiClient, store: Store) -> None:
    document = journey_document()
    document["nodes"]["by_value"]["paths"][0]["next"] = "vip"
    document["nodes"]["copy_test"]["variants"][0]["weight"] = 55
    response = await api.admin("PUT", "/v1/journeys/abandoned-cart", document)
    error = assert_error(response, 422, "invalid_journey")
    assert error["details"] == [
        {"path": "nodes.by_value.paths[0].next", "message": "unknown node 'vip'"},
        {"path": "nodes.vip_offer", "message": "unreachable from start"},
        {"path": "nodes.copy_test.variants", "message": "weights sum to 105, not 100"},
    ]
    assert store.get_journey("abandoned-cart") is None


async def test_a_keyed_wait_on_a_segment_entrys_fields_is_422_at_the_match(
    api: ApiClient,
) -> None:
    document = journey_document(entry={"segment": "vips"})
    keyed = {"event": "Checkout Started", "match": {"cart_id": "{{ entry.cart_id }}"}, "next": None}
    document["nodes"]["wait_checkout"]["paths"] = [keyed]
    response = await api.admin("PUT", "/v1/journeys/abandoned-cart", document)
    [problem] = assert_error(response, 422, "invalid_journey")["details"]
    assert problem["path"] == "nodes.wait_checkout.paths[0].match.cart_id"
    assert problem["message"].startswith("reads entry.cart_id: a segment entry provides no entry")
    keyed["match"] = {"cart_id": "{{ user.cart_id }}"}
    await _save(api, document)


async def test_draft_id_must_match_the_path(api: ApiClient) -> None:
    response = await api.admin("PUT", "/v1/journeys/other", journey_document())
    error = assert_error(response, 400, "id_mismatch")
    assert "other" in error["message"]
    response = await api.http.put(
        "/v1/journeys/x", content=b"{", headers={"Authorization": "Bearer test-admin-token"}
    )
    assert_error(response, 400, "invalid_json")


async def test_validate_answers_200_either_way(api: ApiClient) -> None:
    response = await api.admin("POST", "/v1/journeys/validate", journey_document())
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}
    response = await api.admin("POST", "/v1/journeys/validate", {"id": "x", "name": "X"})
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {e["path"] for e in body["errors"]} == {"entry", "start", "nodes"}
    assert all(set(e) == {"path", "message"} for e in body["errors"])


async def test_validate_for_publish_checks_segments_and_templates(api: ApiClient) -> None:
    document = journey_document()
    document["entry"]["audience"] = {"segment": "nobody-made-this"}
    response = await api.admin("POST", "/v1/journeys/validate", document)
    assert response.json()["valid"] is True
    response = await api.admin("POST", "/v1/journeys/validate?publish=true", document)
    assert response.json() == {
        "valid": False,
        "errors": [
            {"path": "entry.audience.segment", "message": "unknown segment 'nobody-made-this'"}
        ],
    }


async def test_publish_versions_and_detail(api: ApiClient, store: Store) -> None:
    await _save(api)
    assert await _publish(api) == 1
    document = journey_document(name="Renamed")
    await _save(api, document)
    assert await _publish(api) == 2
    detail = (await api.admin("GET", "/v1/journeys/abandoned-cart")).json()
    assert detail["status"] == "live"
    assert detail["version"] == 2
    assert detail["published"]["version"] == 2
    datetime.fromisoformat(detail["published"]["published_at"])
    versions = (await api.admin("GET", "/v1/journeys/abandoned-cart/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]
    first = (await api.admin("GET", "/v1/journeys/abandoned-cart/versions/1")).json()
    assert first["definition"]["name"] == "Abandoned cart recovery"
    assert set(first) == {"version", "published_at", "published_by", "definition"}
    assert first["published_by"] == "bootstrap"
    response = await api.admin("GET", "/v1/journeys/abandoned-cart/versions/3")
    assert_error(response, 404, "not_found")


async def test_publish_checks_segments_and_templates(api: ApiClient, store: Store) -> None:
    document = journey_document()
    document["entry"]["audience"] = {"segment": "vips"}
    document["nodes"]["push_a"] = {"type": "message", "channel": "push", "template": "nudge"}
    await _save(api, document)
    error = assert_error(
        await api.admin("POST", "/v1/journeys/abandoned-cart/publish"), 422, "invalid_journey"
    )
    assert error["details"] == [
        {"path": "nodes.push_a.template", "message": "unknown template 'nudge'"},
        {"path": "entry.audience.segment", "message": "unknown segment 'vips'"},
    ]
    store.put_segment("vips", "VIPs", {"field": "user.vip", "op": "eq", "value": True})
    store.put_template("nudge", "email", {"subject": "Hi", "body": "Come back"})
    error = assert_error(
        await api.admin("POST", "/v1/journeys/abandoned-cart/publish"), 422, "invalid_journey"
    )
    assert error["details"] == [
        {
            "path": "nodes.push_a.template",
            "message": "template 'nudge' is for email messages, not push",
        }
    ]
    assert store.list_versions("abandoned-cart") == []
    store.put_template("nudge", "push", {"title": "Hi", "body": "Come back"})
    assert await _publish(api) == 1


async def test_pause_resume_and_archive(api: ApiClient, routing: RecordingRouting) -> None:
    await _save(api)
    for action in ("pause", "resume"):
        response = await api.admin("POST", f"/v1/journeys/abandoned-cart/{action}")
        error = assert_error(response, 409, "conflict")
        assert "never been published" in error["message"]
    await _publish(api)
    paused = (await api.admin("POST", "/v1/journeys/abandoned-cart/pause")).json()
    assert (paused["id"], paused["status"], paused["version"]) == ("abandoned-cart", "paused", 1)
    assert await _publish(api) == 2  # publishing keeps a paused journey paused
    resumed = (await api.admin("POST", "/v1/journeys/abandoned-cart/resume")).json()
    assert resumed["status"] == "live"
    routing.archive_answer = 3
    response = await api.admin("POST", "/v1/journeys/abandoned-cart/archive")
    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert response.json()["exited"] == 3
    assert routing.archived == ["abandoned-cart"]


async def test_archived_is_final(api: ApiClient, store: Store) -> None:
    await _save(api)
    await _publish(api)
    await api.admin("POST", "/v1/journeys/abandoned-cart/archive")
    for action in ("resume", "pause", "publish"):
        response = await api.admin("POST", f"/v1/journeys/abandoned-cart/{action}")
        error = assert_error(response, 409, "conflict")
        assert "archived" in error["message"]
    journey = store.get_journey("abandoned-cart")
    assert journey is not None
    assert (journey.status, journey.version) == ("archived", 1)


async def test_archive_while_temporal_is_down_can_be_repeated(
    api: ApiClient, routing: RecordingRouting, store: Store
) -> None:
    await _save(api)
    await _publish(api)
    routing.archive_answer = RoutingUnavailable("connection refused")
    response = await api.admin("POST", "/v1/journeys/abandoned-cart/archive")
    assert_error(response, 503, "temporal_unavailable")
    journey = store.get_journey("abandoned-cart")
    assert journey is not None
    assert journey.status == "archived"  # no new entries already
    routing.archive_answer = 2
    response = await api.admin("POST", "/v1/journeys/abandoned-cart/archive")
    assert response.status_code == 200
    assert response.json()["exited"] == 2
    assert routing.archived == ["abandoned-cart", "abandoned-cart"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/journeys/nope"),
        ("POST", "/v1/journeys/nope/publish"),
        ("POST", "/v1/journeys/nope/pause"),
        ("POST", "/v1/journeys/nope/resume"),
        ("POST", "/v1/journeys/nope/archive"),
        ("GET", "/v1/journeys/nope/versions"),
        ("GET", "/v1/journeys/nope/versions/1"),
        ("GET", "/v1/journeys/nope/stats"),
    ],
)
async def test_unknown_journeys_are_404(
    api: ApiClient, routing: RecordingRouting, method: str, path: str
) -> None:
    error = assert_error(await api.admin(method, path), 404, "not_found")
    assert "nope" in error["message"]
    assert routing.archived == []


async def test_stats_of_an_unpublished_journey_are_zero(api: ApiClient) -> None:
    await _save(api)
    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    assert stats == {
        "entered": 0,
        "active": 0,
        "completed": 0,
        "exited": 0,
        "converted": 0,
        "limited": 0,
        "nodes": {},
        "messages": {},
        "experiments": {},
    }


def _run(
    store: Store,
    user_id: str,
    path: list[str],
    *,
    variant: str | None = None,
    converted: bool = False,
    end: EndStatus | None = None,
) -> None:
    """An enrollment of `user_id` that went along `path`, as the activities record it."""
    enrollment = f"abandoned-cart:{user_id}"
    enroll(
        store,
        enrollment_id=enrollment,
        user_id=user_id,
        journey_id="abandoned-cart",
        version=1,
        workflow_id=f"journey:abandoned-cart:{user_id}",
        entered_at=T0,
    )
    for step, node_id in enumerate(path):
        move(store, enrollment, node_id, T0 + timedelta(minutes=step))
    if variant is not None:
        set_variant(store, enrollment, variant)
    if converted:
        mark_converted(store, enrollment, T0 + timedelta(hours=1))
    if end is not None:
        finish(store, enrollment, end, T0 + timedelta(hours=2))


def _deliver(
    store: Store, user_id: str, node_id: str, channel: str, status: FinalDeliveryStatus | None
) -> None:
    store.begin_delivery(
        idempotency_key=f"{user_id}:{node_id}",
        journey_id="abandoned-cart",
        version=1,
        node_id=node_id,
        user_id=user_id,
        channel=channel,
        variant=None,
        content={"title": "t", "body": "b"},
    )
    if status is not None:
        store.finish_delivery(f"{user_id}:{node_id}", status)


UNTOUCHED = {"opened": 0, "clicked": 0, "open_rate": None, "click_rate": None}
"""The engagement of a message nobody opened: no rate at all until one was sent."""


async def test_stats_have_exactly_the_spec_shape(api: ApiClient, store: Store) -> None:
    await _save(api)
    await _publish(api)
    experiment = ["wait_checkout", "by_value", "copy_test"]
    _run(store, "u1", ["wait_checkout"])
    _run(store, "u2", [*experiment, "push_a"], variant="urgency", converted=True, end="completed")
    _run(store, "u3", [*experiment, "push_a"], variant="urgency", end="completed")
    _run(store, "u4", experiment, variant="control", end="exited")
    _run(store, "u5", ["wait_checkout", "by_value", "vip_offer"], converted=True, end="completed")
    _deliver(store, "u2", "push_a", "push", "sent")
    _deliver(store, "u3", "push_a", "push", "skipped")
    _deliver(store, "u5", "vip_offer", "email", "failed")
    _deliver(store, "u6", "vip_offer", "email", None)  # pending: in flight

    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    assert stats == {
        "entered": 5,
        "active": 1,
        "completed": 3,
        "exited": 1,
        "converted": 2,
        "limited": 0,
        "nodes": {
            "wait_checkout": {"reached": 5, "waiting": 1},
            "by_value": {"reached": 4, "waiting": 0},
            "vip_offer": {"reached": 1, "waiting": 0},
            "copy_test": {"reached": 3, "waiting": 0},
            "push_a": {"reached": 2, "waiting": 0},
        },
        "messages": {
            "vip_offer": {"sent": 0, "skipped": 0, "failed": 1, **UNTOUCHED},
            "push_a": {
                "sent": 1,
                "skipped": 1,
                "failed": 0,
                **UNTOUCHED,
                "open_rate": 0.0,
                "click_rate": 0.0,
            },
        },
        "experiments": {
            "copy_test": {
                "variants": {
                    "urgency": {
                        "users": 2,
                        "conversions": 1,
                        "rate": 0.5,
                        "interval": list(wilson_interval(Counts(2, 1))),
                        "clicks": 0,
                        "click_rate": 0.0,
                    },
                    "control": {
                        "users": 1,
                        "conversions": 0,
                        "rate": 0.0,
                        "interval": list(wilson_interval(Counts(1, 0))),
                        "clicks": 0,
                        "click_rate": 0.0,
                    },
                },
                "p_value": two_proportion_p(Counts(2, 1), Counts(1, 0)),
                "winner": None,
                "decided_at": None,
                "looks": 0,
            }
        },
    }


async def test_stats_list_every_node_of_the_latest_version(api: ApiClient) -> None:
    await _save(api)
    await _publish(api)
    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    zero = {"reached": 0, "waiting": 0}
    assert stats["nodes"] == dict.fromkeys(journey_document()["nodes"], zero)
    nothing = {"sent": 0, "skipped": 0, "failed": 0, **UNTOUCHED}
    assert stats["messages"] == {"vip_offer": nothing, "push_a": nothing}
    variants = stats["experiments"]["copy_test"]["variants"]
    nobody = {
        "users": 0,
        "conversions": 0,
        "rate": 0.0,
        "interval": [0.0, 1.0],
        "clicks": 0,
        "click_rate": 0.0,
    }
    assert variants == {"urgency": nobody, "control": nobody}
    assert stats["experiments"]["copy_test"]["p_value"] is None

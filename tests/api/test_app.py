"""The app as a whole: configuration, credentials, the error shape, OpenAPI, lifespan."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from cli.serve import api_with_relay
from journeys.errors import ConfigurationError
from journeys.settings import Settings
from journeys.store import Store
from relay.router import EventRouter
from tests.api.conftest import RecordingRouting
from tests.api.helpers import (
    ADMIN,
    ADMIN_TOKEN,
    SDK_AUTH,
    UNSUBSCRIBE_SECRET,
    WRITE_KEY,
    ApiClient,
    assert_error,
    basic,
    bearer,
)

TRACK = {"userId": "u1", "event": "Viewed"}


@pytest.mark.parametrize(
    ("write_key", "admin_token", "unsubscribe_secret", "named"),
    [
        (None, ADMIN_TOKEN, UNSUBSCRIBE_SECRET, "JOURNEYS_WRITE_KEY"),
        (WRITE_KEY, None, UNSUBSCRIBE_SECRET, "JOURNEYS_ADMIN_TOKEN"),
        ("", "", UNSUBSCRIBE_SECRET, r"JOURNEYS_WRITE_KEY .*; JOURNEYS_ADMIN_TOKEN"),
        (WRITE_KEY, ADMIN_TOKEN, None, "JOURNEYS_UNSUBSCRIBE_SECRET"),
        ("same", "same", UNSUBSCRIBE_SECRET, "must differ"),
    ],
)
def test_refuses_to_start_without_distinct_credentials(
    store: Store,
    write_key: str | None,
    admin_token: str | None,
    unsubscribe_secret: str | None,
    named: str,
) -> None:
    settings = Settings(
        write_key=write_key, admin_token=admin_token, unsubscribe_secret=unsubscribe_secret
    )
    with pytest.raises(ConfigurationError, match=named):
        create_app(settings, store=store, routing=RecordingRouting())


async def test_ingest_accepts_the_write_key_as_basic_username_or_bearer(api: ApiClient) -> None:
    for headers in (SDK_AUTH, bearer(WRITE_KEY)):
        response = await api.http.post("/v1/track", json=TRACK, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("wrong-key"),
        basic(WRITE_KEY, "a-password"),  # the SDKs' password is empty
        basic(ADMIN_TOKEN),
        bearer(ADMIN_TOKEN),  # the admin token is not an ingest credential
        bearer("wrong-key"),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": WRITE_KEY},
    ],
)
async def test_ingest_refuses_anything_but_the_write_key(
    api: ApiClient, store: Store, headers: dict[str, str]
) -> None:
    for path, body in (("/v1/track", TRACK), ("/v1/batch", {"batch": []})):
        response = await api.http.post(path, json=body, headers=headers)
        error = assert_error(response, 401, "unauthorized")
        assert "Basic" in response.headers["WWW-Authenticate"], error
    response = await api.http.post(
        "/trigger", json={"user_id": "u1", "trigger_type": "x"}, headers=headers
    )
    assert_error(response, 401, "unauthorized")
    assert_error(await api.http.get("/v1/users/u1/inbox", headers=headers), 401, "unauthorized")
    assert store.events_for_user("u1") == []


async def test_credentials_are_checked_before_the_body(api: ApiClient) -> None:
    response = await api.http.post("/v1/track", content=b"{not json", headers=basic("wrong"))
    assert_error(response, 401, "unauthorized")
    response = await api.http.put("/v1/journeys/x", content=b"{not json", headers=SDK_AUTH)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(WRITE_KEY),  # the write key ships in apps: it never manages anything
        basic(WRITE_KEY),
        basic(ADMIN_TOKEN),
        bearer("wrong-token"),
    ],
)
async def test_management_needs_the_admin_token(api: ApiClient, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/journeys"),
        ("GET", "/v1/journeys/x"),
        ("POST", "/v1/journeys/x/publish"),
        ("GET", "/v1/segments/s"),
        ("GET", "/v1/templates/t"),
        ("GET", "/v1/settings"),
        ("GET", "/v1/users/u1"),
        ("GET", "/v1/users/u1/events"),
    ):
        response = await api.http.request(method, path, headers=headers)
        error = assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer", (path, error)


async def test_health_and_metrics_need_no_credentials(api: ApiClient) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "ok"}
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_health_reports_a_store_that_does_not_answer(
    settings: Settings, routing: RecordingRouting, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    store = Store(f"sqlite:///{folder / 'journeys.db'}")
    app = create_app(settings, store=store, routing=routing)
    async with _client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        store.close()
        shutil.rmtree(folder)  # new connections cannot open the database any more
        assert_error(await client.get("/healthz"), 503, "store_unavailable")


async def test_unknown_routes_and_methods_answer_in_the_error_shape(api: ApiClient) -> None:
    error = assert_error(await api.http.get("/nowhere", headers=ADMIN), 404, "not_found")
    assert "/nowhere" in error["message"]
    assert_error(await api.http.get("/v1/track", headers=SDK_AUTH), 405, "method_not_allowed")
    response = await api.http.delete("/v1/journeys", headers=ADMIN)
    assert_error(response, 405, "method_not_allowed")


async def test_request_validation_errors_answer_in_the_error_shape(api: ApiClient) -> None:
    error = assert_error(
        await api.admin("GET", "/v1/users/u1/events", params={"limit": "many"}),
        422,
        "validation_error",
    )
    assert error["details"][0]["path"] == "query.limit"
    assert set(error["details"][0]) == {"path", "message"}


async def test_metrics_count_events_and_requests(api: ApiClient) -> None:
    await api.ingest("/v1/track", {**TRACK, "messageId": "m1"})
    await api.ingest("/v1/track", {**TRACK, "messageId": "m1"})
    await api.ingest("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}})
    await api.http.get("/v1/users/u1", headers=ADMIN)
    await api.http.get("/v1/users/u2", headers=ADMIN)
    text = (await api.http.get("/metrics")).text
    assert 'journeys_events_accepted_total{type="track"} 1.0' in text
    assert 'journeys_events_accepted_total{type="identify"} 1.0' in text
    assert "journeys_events_duplicate_total 1.0" in text
    assert 'journeys_http_requests_total{method="POST",route="/v1/track",status="200"} 2.0' in text
    # Route templates, not raw paths, so ids never multiply the series.
    assert (
        'journeys_http_requests_total{method="GET",route="/v1/users/{user_id}",status="200"} 1.0'
        in text
    )
    assert (
        'journeys_http_requests_total{method="GET",route="/v1/users/{user_id}",status="404"} 1.0'
        in text
    )


def test_each_app_has_its_own_registry(
    settings: Settings, store: Store, routing: RecordingRouting
) -> None:
    first = create_app(settings, store=store, routing=routing)
    second = create_app(settings, store=store, routing=routing)
    assert first.state.metrics is not second.state.metrics
    assert first.state.metrics.get_sample_value("journeys_events_duplicate_total") == 0.0


SPEC_PATHS = {
    "/v1/track": {"post"},
    "/v1/identify": {"post"},
    "/v1/page": {"post"},
    "/v1/screen": {"post"},
    "/v1/batch": {"post"},
    "/trigger": {"post"},
    "/v1/journeys": {"get"},
    "/v1/journeys/validate": {"post"},
    "/v1/journeys/{journey_id}": {"put", "get"},
    "/v1/journeys/{journey_id}/publish": {"post"},
    "/v1/journeys/{journey_id}/pause": {"post"},
    "/v1/journeys/{journey_id}/resume": {"post"},
    "/v1/journeys/{journey_id}/archive": {"post"},
    "/v1/journeys/{journey_id}/versions": {"get"},
    "/v1/journeys/{journey_id}/versions/{version}": {"get"},
    "/v1/journeys/{journey_id}/stats": {"get"},
    "/v1/segments/{segment_id}": {"put", "get", "delete"},
    "/v1/segments/{segment_id}/count": {"get"},
    "/v1/templates/{template_id}": {"put", "get", "delete"},
    "/v1/templates/{template_id}/preview": {"post"},
    "/v1/settings": {"get", "put"},
    "/v1/users/{user_id}": {"get"},
    "/v1/users/{user_id}/events": {"get"},
    "/v1/users/{user_id}/timeline": {"get"},
    "/v1/users/{user_id}/inbox": {"get"},
    "/v1/users/{user_id}/inbox/{message_id}/read": {"post"},
    "/v1/users/{user_id}/inbox/stream": {"get"},
    "/v1/tokens": {"post", "get"},
    "/v1/tokens/{token_id}": {"delete"},
    "/v1/audit": {"get"},
    "/sdk/journeys.js": {"get"},
    "/healthz": {"get"},
    "/metrics": {"get"},
}


async def test_openapi_lists_every_path_of_the_spec(api: ApiClient) -> None:
    document = (await api.http.get("/openapi.json")).json()
    for path, methods in SPEC_PATHS.items():
        assert path in document["paths"], path
        assert methods <= set(document["paths"][path]), path
    assert (await api.http.get("/docs")).status_code == 200


async def test_openapi_documents_bodies_credentials_and_errors(api: ApiClient) -> None:
    document = (await api.http.get("/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    put_journey = paths["/v1/journeys/{journey_id}"]["put"]
    reference = put_journey["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert reference == "#/components/schemas/Journey"
    assert "nodes" in schemas["Journey"]["properties"]
    track = paths["/v1/track"]["post"]
    assert track["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SegmentMessage"
    )
    assert {name for option in track["security"] for name in option} == {
        "writeKeyBasic",
        "writeKeyBearer",
    }
    assert put_journey["security"] == [{"managementToken": []}]
    scheme = document["components"]["securitySchemes"]["managementToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    # Each management operation names its role (tests/api/test_roles.py checks them all).
    assert put_journey["x-required-role"] == "editor"
    assert "Role: `editor` or a role that includes it." in put_journey["description"]
    assert "403" in put_journey["responses"]
    assert paths["/v1/journeys"]["get"]["x-required-role"] == "viewer"
    assert "x-required-role" not in track
    assert track["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    # Every reference resolves, including those of the added body schemas.
    text = str(document)
    for name in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas, name


async def test_lifespan_runs_the_real_router_with_the_app_registry(
    settings: Settings, store: Store
) -> None:
    app = api_with_relay(settings, store=store)
    state = app.state.journeys
    assert state.routing is None
    async with app.router.lifespan_context(app):
        assert isinstance(state.routing, EventRouter)
        async with _client(app) as client:
            text = (await client.get("/metrics")).text
        assert "journeys_events_routed_total" in text
        assert "journeys_routing_lag_seconds" in text
    assert state.routing is None


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_without_a_router_ingest_still_stores_and_trigger_is_unavailable(
    settings: Settings, store: Store
) -> None:
    app = create_app(settings, store=store)  # lifespan not run: no router
    async with _client(app) as client:
        response = await client.post("/v1/track", json=TRACK, headers=SDK_AUTH)
        assert response.status_code == 200
        body = {"user_id": "u1", "trigger_type": "x"}
        response = await client.post("/trigger", json=body, headers=SDK_AUTH)
        assert_error(response, 503, "temporal_unavailable")
    assert len(store.unrouted_events()) == 1


async def test_unexpected_errors_are_500_in_the_error_shape_without_internals(
    app: FastAPI, routing: RecordingRouting
) -> None:
    routing.trigger_answer = RuntimeError("secret internals")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = {"user_id": "u1", "trigger_type": "x"}
        response = await client.post("/trigger", json=body, headers=SDK_AUTH)
        error = assert_error(response, 500, "internal_error")
        assert "secret" not in error["message"]
        text = (await client.get("/metrics")).text
    assert 'journeys_http_requests_total{method="POST",route="/trigger",status="500"} 1.0' in text


async def test_a_router_that_cannot_be_woken_does_not_fail_ingest(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    routing.wake_error = RuntimeError("router gone")
    response = await api.ingest("/v1/track", TRACK)
    assert response.status_code == 200
    assert routing.wakes == 1
    assert len(store.unrouted_events()) == 1  # the router finds it in the outbox later

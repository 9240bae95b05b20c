"""Personal tokens (created, listed without secrets, expiring, revoked at once) and the audit
log (newest first, paged, admin only) through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from journeys.access import BOOTSTRAP, Principal, Role, split_token
from journeys.routing import RoutingUnavailable
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import (
    ApiClient,
    assert_error,
    bearer,
    journey_document,
    paths_of,
)
from tests.factories import rows_holding

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")


async def create(api: ApiClient, **body: Any) -> dict[str, Any]:
    response = await api.admin("POST", "/v1/tokens", body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_token_is_shown_once_acts_under_its_role_and_is_kept_only_as_a_hash(
    api: ApiClient, store: Store
) -> None:
    now = store.clock()
    created = await create(api, name="ci-deploy", role="publisher", expires_in="30d")
    assert set(created) == {"id", "name", "role", "token", "expires_at"}
    assert (created["name"], created["role"]) == ("ci-deploy", "publisher")
    parts = split_token(created["token"])
    assert parts is not None
    assert parts[0] == created["id"]
    expires_at = store.tokens()[0].expires_at
    assert expires_at is not None
    assert timedelta(days=30) <= expires_at - now < timedelta(days=30, minutes=1)

    token = bearer(created["token"])
    assert (await api.http.get("/v1/journeys", headers=token)).status_code == 200
    response = await api.http.post("/v1/journeys/x/publish", headers=token)
    assert_error(response, 404, "not_found")  # a publisher gets through
    response = await api.http.post("/v1/tokens", json={"name": "x"}, headers=token)
    assert_error(response, 403, "forbidden")  # but is no admin

    listed = (await api.admin("GET", "/v1/tokens")).json()
    assert [(t["id"], t["name"], t["role"], t["expired"]) for t in listed] == [
        (created["id"], "ci-deploy", "publisher", False)
    ]
    assert set(listed[0]) == {
        "id", "name", "role", "created_by", "created_at", "expires_at", "expired"
    }  # fmt: skip
    assert listed[0]["created_by"] == "bootstrap"
    # The secret, and its key, are nowhere: not in the store, the list or the audit log.
    assert rows_holding(store, parts[1]) == []
    assert parts[1] not in str(listed)
    [entry] = store.audit_entries(10)
    assert (entry.actor, entry.action, entry.target) == ("bootstrap", "token.created", parts[0])
    assert entry.token_id is None  # the admin token's change
    assert entry.detail == {"name": "ci-deploy", "role": "publisher"}


async def test_a_revoked_token_gets_401_on_its_next_request(api: ApiClient, store: Store) -> None:
    created = await create(api, name="laptop", role="viewer", expires_in=None)
    assert created["expires_at"] is None
    token = bearer(created["token"])
    assert (await api.http.get("/v1/segments", headers=token)).status_code == 200

    assert (await api.admin("DELETE", f"/v1/tokens/{created['id']}")).status_code == 204
    error = assert_error(await api.http.get("/v1/segments", headers=token), 401, "unauthorized")
    assert "revoked" in error["message"]
    assert (await api.admin("GET", "/v1/tokens")).json() == []
    # Revoking it again, or a token that never was: 404; a malformed id: 422.
    assert_error(await api.admin("DELETE", f"/v1/tokens/{created['id']}"), 404, "not_found")
    assert_error(await api.admin("DELETE", "/v1/tokens/0123456789abcdef"), 404, "not_found")
    error = assert_error(await api.admin("DELETE", "/v1/tokens/nope"), 422, "validation_error")
    assert paths_of(error) == ["path.token_id"]
    assert [e.action for e in store.audit_entries(10)] == ["token.revoked", "token.created"]


async def test_an_expired_token_gets_401(api: ApiClient, store: Store) -> None:
    created = await create(api, name="contractor", role="editor", expires_in="PT1H")
    token = bearer(created["token"])
    assert (await api.http.get("/v1/templates", headers=token)).status_code == 200
    start = store.clock()
    store.clock = lambda: start + timedelta(minutes=59)
    assert (await api.http.get("/v1/templates", headers=token)).status_code == 200
    store.clock = lambda: start + timedelta(hours=1, seconds=1)
    assert_error(await api.http.get("/v1/templates", headers=token), 401, "unauthorized")
    [listed] = (await api.admin("GET", "/v1/tokens")).json()
    assert listed["expired"] is True  # listed until revoked


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "", "role": "viewer"}, "name"),
        ({"name": "x" * 101, "role": "viewer"}, "name"),
        ({"name": "two\nlines", "role": "viewer"}, "name"),
        ({"name": "   ", "role": "viewer"}, "name"),
        ({"name": "bootstrap", "role": "admin"}, "name"),
        ({"name": " Bootstrap ", "role": "admin"}, "name"),
        ({"name": "ｂｏｏｔｓｔｒａｐ", "role": "admin"}, "name"),  # full-width letters
        ({"name": 7, "role": "viewer"}, "name"),
        ({"role": "viewer"}, "name"),
        ({"name": "ci", "role": "owner"}, "role"),
        ({"name": "ci"}, "role"),
        ({"name": "ci", "role": "viewer", "expires_in": "0s"}, "expires_in"),
        ({"name": "ci", "role": "viewer", "expires_in": "400d"}, "expires_in"),
        ({"name": "ci", "role": "viewer", "expires_in": "soon"}, "expires_in"),
        ({"name": "ci", "role": "viewer", "expires_in": 30}, "expires_in"),
        ({"name": "ci", "role": "viewer", "secret": "mine"}, "secret"),
    ],
)
async def test_bad_token_requests_are_located_and_create_nothing(
    api: ApiClient, store: Store, body: dict[str, Any], path: str
) -> None:
    error = assert_error(await api.admin("POST", "/v1/tokens", body), 422, "validation_error")
    assert paths_of(error) == [path]
    assert store.tokens() == []
    assert store.audit_entries(10) == []


async def test_a_publish_is_in_the_audit_log_with_who_did_what(
    api: ApiClient, store: Store
) -> None:
    editing = await create(api, name="ed@example.com", role="editor")
    publishing = await create(api, name="pub@example.com", role="publisher")
    editor, publisher = bearer(editing["token"]), bearer(publishing["token"])
    document = journey_document("cart")
    response = await api.http.put("/v1/journeys/cart", json=document, headers=editor)
    assert response.status_code == 200
    assert_error(await api.http.post("/v1/journeys/cart/publish", headers=editor), 403, "forbidden")
    response = await api.http.post("/v1/journeys/cart/publish", headers=publisher)
    assert response.json() == {"version": 1}

    page = (await api.admin("GET", "/v1/audit?limit=2")).json()
    fields = ("actor", "token_id", "action", "target", "detail")
    shown = [{k: e[k] for k in fields} for e in page["entries"]]
    assert shown == [
        {"actor": "pub@example.com", "token_id": publishing["id"], "action": "journey.published",
         "target": "cart", "detail": {"version": 1}},
        {"actor": "ed@example.com", "token_id": editing["id"], "action": "journey.draft_saved",
         "target": "cart", "detail": {}},
    ]  # fmt: skip
    [version] = (await api.admin("GET", "/v1/journeys/cart/versions")).json()
    assert version["published_by"] == "pub@example.com"


async def test_the_audit_log_pages_newest_first(api: ApiClient, store: Store) -> None:
    for number in range(5):
        store.record_audit(Principal(BOOTSTRAP, Role.ADMIN), "segment.saved", f"s{number}")
    seen: list[str] = []
    page = (await api.admin("GET", "/v1/audit?limit=2")).json()
    while True:
        assert len(page["entries"]) <= 2
        for entry in page["entries"]:
            assert set(entry) == {"id", "at", "actor", "token_id", "action", "target", "detail"}
        seen += [entry["target"] for entry in page["entries"]]
        if page["next"] is None:
            break
        page = (await api.admin("GET", f"/v1/audit?limit=2&before={page['next']}")).json()
    assert seen == ["s4", "s3", "s2", "s1", "s0"]
    everything = (await api.admin("GET", "/v1/audit")).json()
    assert (len(everything["entries"]), everything["next"]) == (5, None)


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=many", "query.limit"),
        ("before=0", "query.before"),
        ("before=yesterday", "query.before"),
        (f"before={2**31}", "query.before"),
    ],
)
async def test_bad_audit_queries_are_located(api: ApiClient, query: str, path: str) -> None:
    error = assert_error(await api.admin("GET", f"/v1/audit?{query}"), 422, "validation_error")
    assert paths_of(error) == [path]


async def test_an_archive_or_erasure_that_finds_temporal_down_is_in_the_audit_log(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    # The journey is archived and the user suppressed before Temporal is asked: both changes
    # stand after the 503, so both are in the log.
    document = journey_document("cart")
    assert (await api.admin("PUT", "/v1/journeys/cart", document)).is_success
    routing.archive_answer = routing.erase_answer = RoutingUnavailable("temporal is down")
    assert_error(await api.admin("POST", "/v1/journeys/cart/archive"), 503, "temporal_unavailable")
    store.update_traits("ada", {"plan": "pro"}, [])
    assert_error(await api.admin("DELETE", "/v1/users/ada"), 503, "temporal_unavailable")
    actions = [entry.action for entry in store.audit_entries(2)]
    assert actions == ["user.erased", "journey.archived"]

"""People and sessions over HTTP: adding, listing and removing people (admin), signing in with
a password or vouched for by the admin token, the same answer and work for unknown accounts,
the slowdown after repeated failures, and signing out."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi import Request

from api.people import client_address
from journeys.people import ACCOUNT_LIMIT, ADDRESS_LIMIT
from journeys.settings import Settings
from journeys.store import Store, utcnow
from tests.api.helpers import ApiClient, assert_error, bearer

PASSWORD = "correct horse battery"
EDITOR = "edna@example.com"


async def add(
    api: ApiClient, email: str = EDITOR, role: str = "editor", password: str | None = PASSWORD
) -> dict[str, object]:
    body = {"email": email, "role": role} | ({} if password is None else {"password": password})
    response = await api.admin("POST", "/v1/people", body)
    assert response.status_code == 201, response.text
    added: dict[str, object] = response.json()
    return added


async def sign_in(api: ApiClient, email: str = EDITOR, password: str = PASSWORD) -> str:
    response = await api.http.post("/v1/sessions", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def test_people_are_added_listed_and_removed_by_an_admin(
    api: ApiClient, store: Store
) -> None:
    added = await add(api, email="  Edna@Example.COM ")
    assert added["email"] == EDITOR
    assert added["signs_in_with"] == "password"
    await add(api, email="olga@example.com", role="publisher", password=None)
    listed = (await api.admin("GET", "/v1/people")).json()
    assert [(p["email"], p["role"], p["signs_in_with"]) for p in listed] == [
        (EDITOR, "editor", "password"),
        ("olga@example.com", "publisher", "oidc"),
    ]
    assert all(
        set(p) == {"email", "role", "signs_in_with", "created_at", "created_by"} for p in listed
    )
    assert PASSWORD not in str(listed)
    assert "argon2" not in str(listed)
    stored = store.person(EDITOR)
    assert stored is not None
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2id$")

    token = await sign_in(api)
    removed = await api.admin("DELETE", "/v1/people/EDNA@example.com")
    assert removed.status_code == 200, removed.text
    assert_error(
        await api.http.get("/v1/sessions/current", headers=bearer(token)), 401, "unauthorized"
    )
    assert_error(await api.admin("DELETE", f"/v1/people/{EDITOR}"), 404, "not_found")
    actions = [(e.actor, e.action, e.target) for e in reversed(store.audit_entries(10))]
    assert actions == [
        ("bootstrap", "person.added", EDITOR),
        ("bootstrap", "person.added", "olga@example.com"),
        (EDITOR, "session.started", EDITOR),
        ("bootstrap", "person.removed", EDITOR),
    ]


async def test_adding_someone_twice_is_a_conflict_whatever_the_case(api: ApiClient) -> None:
    await add(api)
    again = await api.admin("POST", "/v1/people", {"email": "EDNA@example.com", "role": "admin"})
    error = assert_error(again, 409, "conflict")
    assert EDITOR in error["message"]
    listed = (await api.admin("GET", "/v1/people")).json()
    assert [p["role"] for p in listed] == ["editor"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"email": "edna", "role": "editor"}, "email"),
        ({"email": "edna @example.com", "role": "editor"}, "email"),
        ({"email": "ed\x01na@example.com", "role": "editor"}, "email"),
        ({"email": "a" * 320 + "@example.com", "role": "editor"}, "email"),
        ({"email": EDITOR, "role": "owner"}, "role"),
        ({"email": EDITOR, "role": "editor", "password": "short"}, "password"),
        ({"email": EDITOR, "role": "editor", "password": "x" * 1025}, "password"),
        ({"email": EDITOR, "role": "editor", "pasword": PASSWORD}, "pasword"),
        ({"role": "editor"}, "email"),
    ],
)
async def test_bad_people_are_refused_and_nothing_is_added(
    api: ApiClient, body: dict[str, str], path: str
) -> None:
    error = assert_error(await api.admin("POST", "/v1/people", body), 422, "validation_error")
    assert path in [detail["path"] for detail in error["details"]]
    assert (await api.admin("GET", "/v1/people")).json() == []


@pytest.mark.store_backends("sqlite", "postgresql")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/people", {"email": "0@\x00", "role": "editor"}),
        ("POST", "/v1/people", {"email": EDITOR, "role": "editor", "password": "\x00" * 12}),
        ("POST", "/v1/sessions", {"email": "0@\x00"}),
        ("POST", "/v1/sessions", {"email": EDITOR, "password": "\x00"}),
    ],
)
async def test_a_nul_in_a_body_is_refused_on_every_store(
    api: ApiClient, method: str, path: str, body: dict[str, str]
) -> None:
    error = assert_error(await api.admin(method, path, body), 400, "invalid_json")
    assert "NUL" in error["message"]
    assert (await api.admin("GET", "/v1/people")).json() == []


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_a_nul_in_a_persons_email_in_the_path_is_refused(api: ApiClient) -> None:
    await add(api)
    assert_error(await api.admin("DELETE", "/v1/people/0@%00"), 422, "validation_error")
    assert [p["email"] for p in (await api.admin("GET", "/v1/people")).json()] == [EDITOR]


async def test_people_need_the_admin_role(api: ApiClient, store: Store) -> None:
    await add(api, role="publisher")
    token = await sign_in(api)
    for method, path in (
        ("GET", "/v1/people"),
        ("POST", "/v1/people"),
        ("DELETE", f"/v1/people/{EDITOR}"),
    ):
        body = {"email": "eve@example.com", "role": "admin"} if method == "POST" else None
        response = await api.http.request(method, path, json=body, headers=bearer(token))
        assert_error(response, 403, "forbidden")
    assert [p.email for p in store.people()] == [EDITOR]


async def test_a_session_acts_as_the_person_until_it_expires(api: ApiClient, store: Store) -> None:
    await add(api, email="Pat@example.com", role="publisher")
    before = utcnow()
    response = await api.http.post(
        "/v1/sessions", json={"email": "PAT@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    session = response.json()
    assert (session["email"], session["role"]) == ("pat@example.com", "publisher")
    stored = {t.name: t for t in store.tokens()}["pat@example.com"]
    assert stored.expires_at is not None
    assert before + timedelta(hours=12) <= stored.expires_at <= utcnow() + timedelta(hours=12)
    current = await api.http.get("/v1/sessions/current", headers=bearer(session["token"]))
    assert current.json() == {"actor": "pat@example.com", "role": "publisher"}
    assert store.active_token(session["token"], stored.expires_at) is None  # expired by then


async def test_signing_out_ends_the_session(api: ApiClient, store: Store) -> None:
    await add(api)
    token = await sign_in(api)
    assert (await api.http.delete("/v1/sessions/current", headers=bearer(token))).status_code == 200
    refused = await api.http.get("/v1/sessions/current", headers=bearer(token))
    assert_error(refused, 401, "unauthorized")
    assert store.audit_entries(1)[0].action == "session.ended"
    assert_error(await api.admin("DELETE", "/v1/sessions/current"), 400, "bad_request")


async def test_a_wrong_password_and_an_unknown_account_get_the_same_answer_and_work(
    api: ApiClient,
) -> None:
    await add(api)
    await add(api, email="oidc@example.com", password=None)

    async def attempt(email: str) -> tuple[float, int, dict[str, object]]:
        started = time.perf_counter()
        response = await api.http.post(
            "/v1/sessions", json={"email": email, "password": "not the password"}
        )
        return time.perf_counter() - started, response.status_code, response.json()

    wrong = [await attempt(EDITOR) for _ in range(3)]
    unknown = [await attempt(f"nobody{i}@example.com") for i in range(3)]
    without_password = [await attempt("oidc@example.com") for _ in range(3)]
    answers = {(status, str(body)) for _, status, body in wrong + unknown + without_password}
    assert len(answers) == 1
    assert next(iter(answers))[0] == 401
    slowest_wrong = min(t for t, _, _ in wrong)
    # The Argon2 check dominates both: an unknown account that skipped it would be many times
    # faster. Loose bounds, for a busy machine.
    assert min(t for t, _, _ in unknown) > slowest_wrong / 3
    assert min(t for t, _, _ in without_password) > slowest_wrong / 3


async def test_repeated_failures_slow_an_account_down_whatever_it_is(api: ApiClient) -> None:
    await add(api)
    for email in (EDITOR, "nobody@example.com"):
        for _ in range(ACCOUNT_LIMIT.failures):
            response = await api.http.post(
                "/v1/sessions", json={"email": email, "password": "guess guess guess"}
            )
            assert_error(response, 401, "unauthorized")
        refused = await api.http.post("/v1/sessions", json={"email": email, "password": PASSWORD})
        error = assert_error(refused, 429, "too_many_requests")
        assert "try again in 15 minute(s)" in error["message"]
        assert 14 * 60 < int(refused.headers["Retry-After"]) <= 15 * 60


async def test_a_success_clears_the_accounts_failures(api: ApiClient) -> None:
    await add(api)
    for _round in range(2):
        for _ in range(ACCOUNT_LIMIT.failures - 1):
            response = await api.http.post(
                "/v1/sessions", json={"email": EDITOR, "password": "guess guess guess"}
            )
            assert_error(response, 401, "unauthorized")
        await sign_in(api)


async def test_repeated_failures_slow_an_address_down(api: ApiClient) -> None:
    await add(api)
    for i in range(ADDRESS_LIMIT.failures):
        response = await api.http.post(
            "/v1/sessions", json={"email": f"guess{i}@example.com", "password": "guess guess"}
        )
        assert_error(response, 401, "unauthorized")
    refused = await api.http.post("/v1/sessions", json={"email": EDITOR, "password": PASSWORD})
    assert_error(refused, 429, "too_many_requests")


async def test_the_designer_passes_on_each_browsers_address(api: ApiClient) -> None:
    # The in-process client connects from 127.0.0.1, which is trusted by default, as the
    # designer is: one browser's guesses do not lock out a person at another.
    await add(api)
    stranger = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(ADDRESS_LIMIT.failures):
        body = {"email": f"guess{i}@example.com", "password": "guess guess"}
        response = await api.http.post("/v1/sessions", json=body, headers=stranger)
        assert_error(response, 401, "unauthorized")
    body = {"email": EDITOR, "password": PASSWORD}
    refused = await api.http.post("/v1/sessions", json=body, headers=stranger)
    assert_error(refused, 429, "too_many_requests")
    elsewhere = {"X-Forwarded-For": "198.51.100.2"}
    assert (await api.http.post("/v1/sessions", json=body, headers=elsewhere)).status_code == 201


def test_only_a_trusted_peer_names_the_client_address() -> None:
    trusted = Settings(JOURNEYS_TRUSTED_PROXIES="10.0.0.0/8").trusted_networks

    def seen(peer: str, forwarded: str | None) -> str:
        headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
        scope = {"type": "http", "client": (peer, 1), "headers": headers}
        return client_address(Request(scope), trusted)

    assert seen("10.1.2.3", "198.51.100.2") == "198.51.100.2"
    assert seen("10.1.2.3", "192.0.2.1, 198.51.100.2") == "198.51.100.2"  # the proxy's entry
    assert seen("203.0.113.7", "198.51.100.2") == "203.0.113.7"  # anyone may send the header
    assert seen("10.1.2.3", "not an address") == "10.1.2.3"
    assert seen("10.1.2.3", None) == "10.1.2.3"


async def test_failures_are_logged_without_email_or_password(
    api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    await add(api)
    caplog.set_level(logging.INFO)
    for _ in range(ACCOUNT_LIMIT.failures + 1):
        await api.http.post("/v1/sessions", json={"email": EDITOR, "password": "secret guess!"})
    logged = caplog.text
    assert "sign-in failed (account " in logged
    assert "sign-in refused: too many failures" in logged
    assert "edna" not in logged.lower()
    assert "secret guess" not in logged


async def test_the_admin_token_vouches_for_members_only(api: ApiClient, store: Store) -> None:
    await add(api, email="olga@example.com", role="viewer", password=None)
    vouched = await api.admin("POST", "/v1/sessions", {"email": "Olga@example.com"})
    assert vouched.status_code == 201, vouched.text
    assert vouched.json()["role"] == "viewer"
    entry = store.audit_entries(1)[0]
    assert (entry.actor, entry.action, entry.detail) == (
        "olga@example.com",
        "session.started",
        {"method": "vouched", "by": "bootstrap"},
    )
    error = assert_error(
        await api.admin("POST", "/v1/sessions", {"email": "stranger@example.com"}),
        403,
        "forbidden",
    )
    assert error["message"] == "not a member: an admin adds them with journeys people add"
    # Only an admin vouches; without a token, the password is needed.
    viewer = vouched.json()["token"]
    again = await api.http.post(
        "/v1/sessions", json={"email": "olga@example.com"}, headers=bearer(viewer)
    )
    assert_error(again, 403, "forbidden")
    alone = await api.http.post("/v1/sessions", json={"email": "olga@example.com"})
    assert_error(alone, 401, "unauthorized")
    invalid = await api.http.post(
        "/v1/sessions", json={"email": "olga@example.com"}, headers=bearer("wrong")
    )
    assert_error(invalid, 401, "unauthorized")


async def test_an_editors_session_cannot_publish(api: ApiClient) -> None:
    await add(api)
    token = await sign_in(api)
    response = await api.http.post("/v1/journeys/x/publish", headers=bearer(token))
    assert_error(response, 403, "forbidden")


async def test_a_hash_of_older_parameters_is_replaced_at_sign_in(
    api: ApiClient, store: Store
) -> None:
    from journeys.access import Role

    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    store.add_person(EDITOR, Role.EDITOR, weak, created_by="test")
    await sign_in(api)
    renewed = store.person(EDITOR)
    assert renewed is not None
    assert renewed.password_hash not in (None, weak)
    await sign_in(api)  # the new hash holds the same password

"""`journeys tokens create|list|revoke` against the real API served on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY, bearer
from tests.conftest import run_journeys
from tests.reliability.helpers import serve_api


@pytest.fixture
async def api_url(store: Store) -> AsyncIterator[str]:
    """The API over the test's store, served by uvicorn on a loopback port."""
    settings = Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )
    async with serve_api(create_app(settings, store=store, routing=RecordingRouting())) as url:
        yield url


async def tokens(
    api_url: str, *args: str, token: str | None = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    """`journeys tokens ARGS` with the API's URL and `token` as the admin token (run in a
    thread: the API is served on this event loop)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    environment["JOURNEYS_API_URL"] = api_url
    if token is not None:
        environment["JOURNEYS_ADMIN_TOKEN"] = token
    return await asyncio.to_thread(run_journeys, "tokens", *args, env=environment)


async def test_create_list_and_revoke_a_token(api_url: str, store: Store) -> None:
    created = await tokens(api_url, "create", "ci deploy", "--role", "publisher",
                           "--expires-in", "30d")  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert created.stdout == f"{secret}\n"  # the secret alone, for scripts
    [record] = store.tokens()
    assert f"created token {record.id} 'ci deploy' (publisher), expires 20" in created.stderr
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(secret)) as http:
        assert (await http.get("/v1/journeys")).status_code == 200

        listed = await tokens(api_url, "list")
        assert listed.returncode == 0, listed.stderr
        header, line = listed.stdout.splitlines()
        assert header.split() == ["ID", "ROLE", "EXPIRES", "CREATED", "BY", "NAME"]
        assert line.split()[:2] == [record.id, "publisher"]
        assert line.split()[-3:] == ["bootstrap", "ci", "deploy"]
        assert secret not in listed.stdout

        revoked = await tokens(api_url, "revoke", record.id)
        assert (revoked.returncode, revoked.stdout) == (0, f"revoked token {record.id}\n")
        assert (await http.get("/v1/journeys")).status_code == 401
    assert (await tokens(api_url, "list")).stdout == "no tokens\n"
    again = await tokens(api_url, "revoke", record.id)
    assert again.returncode == 1
    assert f"no token '{record.id}'" in again.stderr
    assert "(HTTP 404 not_found)" in again.stderr
    assert [e.action for e in store.audit_entries(10)] == ["token.revoked", "token.created"]


async def test_bad_input_is_refused_with_where_it_is_wrong(api_url: str, store: Store) -> None:
    too_long = await tokens(api_url, "create", "ci", "--role", "viewer", "--expires-in", "400d")
    assert too_long.returncode == 1
    assert "expires_in: bad duration '400d': must be at most 365 days" in too_long.stderr
    assert too_long.stdout == ""
    no_role = await tokens(api_url, "create", "ci", "--role", "owner")
    assert no_role.returncode == 2  # argparse: invalid choice
    assert "invalid choice: 'owner'" in no_role.stderr
    malformed = await tokens(api_url, "revoke", "nope")
    assert malformed.returncode == 1
    assert "path.token_id" in malformed.stderr
    without = await tokens(api_url, "list", token=None)
    assert without.returncode == 2
    assert "managing tokens and people needs JOURNEYS_ADMIN_TOKEN" in without.stderr
    not_admin = await tokens(api_url, "list", token="not-the-admin-token")
    assert (not_admin.returncode, "HTTP 401 unauthorized" in not_admin.stderr) == (1, True)
    assert store.tokens() == []

"""`journeys people add|remove|list` against the real API on loopback."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from journeys.settings import Settings
from journeys.store import Store
from tests.api.conftest import RecordingRouting, serving
from tests.api.helpers import ADMIN_TOKEN, UNSUBSCRIBE_SECRET, WRITE_KEY
from tests.conftest import installed_binary, run_journeys

PASSWORD = "correct horse battery"


@pytest.fixture
def api_url(store: Store) -> Iterator[str]:
    settings = Settings(
        write_key=WRITE_KEY, admin_token=ADMIN_TOKEN, unsubscribe_secret=UNSUBSCRIBE_SECRET
    )
    with serving(create_app(settings, store=store, routing=RecordingRouting())) as url:
        yield url


def environment(api_url: str, token: str | None = ADMIN_TOKEN) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return (
        kept
        | {"JOURNEYS_API_URL": api_url}
        | ({} if token is None else {"JOURNEYS_ADMIN_TOKEN": token})
    )


def people(api_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_journeys("people", *args, env=environment(api_url))
    return subprocess.run(
        [installed_binary("journeys"), "people", *args],
        env=environment(api_url),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def signs_in(api_url: str, email: str, password: str) -> bool:
    response = httpx.post(f"{api_url}/v1/sessions", json={"email": email, "password": password})
    return response.status_code == 201


def test_people_are_added_listed_and_removed(api_url: str, store: Store) -> None:
    added = people(
        api_url,
        "add",
        "Edna@example.com",
        "--role",
        "editor",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout == "added edna@example.com as editor (signs in with a password)\n"
    assert signs_in(api_url, "edna@example.com", PASSWORD)
    oidc = people(api_url, "add", "olga@example.com", "--role", "admin", "--oidc-only")
    assert oidc.stdout == "added olga@example.com as admin (signs in with OIDC only)\n"

    listed = people(api_url, "list")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t")[:4] for line in listed.stdout.splitlines()]
    assert lines == [
        ["edna@example.com", "editor", "password", "added by bootstrap on " + lines[0][3][-10:]],
        ["olga@example.com", "admin", "oidc", "added by bootstrap on " + lines[1][3][-10:]],
    ]

    removed = people(api_url, "remove", "edna@example.com")
    assert removed.returncode == 0, removed.stderr
    assert "their sessions have ended" in removed.stdout
    assert not signs_in(api_url, "edna@example.com", PASSWORD)
    assert [p.email for p in store.people()] == ["olga@example.com"]


def read_until(controller: int, wanted: bytes | None, seen: bytearray) -> None:
    """Read the terminal into `seen` until it shows `wanted` (None: until it closes)."""
    deadline = time.monotonic() + 30
    while wanted is None or wanted not in seen:
        assert time.monotonic() < deadline, f"waited 30 s for {wanted!r}; saw {bytes(seen)!r}"
        if not select.select([controller], [], [], 0.1)[0]:
            continue
        try:
            chunk = os.read(controller, 1024)
        except OSError:  # EIO: the process closed the terminal
            chunk = b""
        if not chunk:
            assert wanted is None, f"the terminal closed before {wanted!r}; saw {bytes(seen)!r}"
            return
        seen.extend(chunk)


def add_on_a_terminal(api_url: str, first: str, second: str) -> tuple[int, bytes]:
    """`journeys people add` on a terminal answering its two prompts (each only once asked:
    turning echo off discards what was typed before)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [installed_binary("journeys"), "people", "add", "pat@example.com", "--role", "viewer"],
        env=environment(api_url),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = bytearray()
    try:
        read_until(controller, b"Password for pat@example.com: ", seen)
        os.write(controller, first.encode() + b"\n")
        read_until(controller, b"Again: ", seen)
        os.write(controller, second.encode() + b"\n")
        read_until(controller, None, seen)
        return process.wait(timeout=30), bytes(seen)
    finally:
        process.kill()
        os.close(controller)


def test_on_a_terminal_the_password_is_asked_twice(api_url: str, store: Store) -> None:
    code, shown = add_on_a_terminal(api_url, PASSWORD, "something else")
    assert code == 2, shown
    assert b"the two passwords differ: nothing was added" in shown
    assert store.people() == []
    code, shown = add_on_a_terminal(api_url, PASSWORD, PASSWORD)
    assert code == 0, shown
    assert PASSWORD.encode() not in shown  # never echoed
    assert [p.email for p in store.people()] == ["pat@example.com"]
    assert signs_in(api_url, "pat@example.com", PASSWORD)


def test_bad_input_is_refused_clearly_and_adds_nobody(api_url: str, store: Store) -> None:
    short = people(
        api_url, "add", "edna@example.com", "--role", "editor", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 1
    assert "password: String should have at least 12 characters" in short.stderr
    bad_email = people(api_url, "add", "edna", "--role", "editor", "--oidc-only")
    assert bad_email.returncode == 1
    assert "email: expected an email address" in bad_email.stderr
    empty = people(
        api_url, "add", "edna@example.com", "--role", "editor", "--password-stdin", stdin=""
    )
    assert empty.returncode == 2
    assert "standard input holds no password" in empty.stderr
    not_a_terminal = people(api_url, "add", "edna@example.com", "--role", "editor", stdin="")
    assert not_a_terminal.returncode == 2
    assert (
        "run on a terminal to be asked, or pass --password-stdin or --oidc-only"
        in not_a_terminal.stderr
    )
    role = people(api_url, "add", "edna@example.com", "--role", "owner", "--oidc-only")
    assert role.returncode == 2
    assert "invalid choice: 'owner'" in role.stderr
    both = people(
        api_url, "add", "edna@example.com", "--role", "editor", "--oidc-only", "--password-stdin"
    )
    assert both.returncode == 2
    assert store.people() == []

    people(api_url, "add", "edna@example.com", "--role", "editor", "--oidc-only")
    again = people(api_url, "add", "EDNA@example.com", "--role", "admin", "--oidc-only")
    assert again.returncode == 1
    assert "edna@example.com is already a member (HTTP 409 conflict)" in again.stderr
    unknown = people(api_url, "remove", "nobody@example.com")
    assert unknown.returncode == 1
    assert "no person 'nobody@example.com' (HTTP 404 not_found)" in unknown.stderr


def test_without_the_admin_token_or_the_api_it_says_so(api_url: str) -> None:
    no_token = run_journeys("people", "list", env=environment(api_url, token=None))
    assert no_token.returncode == 2
    assert "JOURNEYS_ADMIN_TOKEN" in no_token.stderr
    wrong = run_journeys("people", "list", env=environment(api_url, token="wrong"))
    assert wrong.returncode == 1
    assert "HTTP 401 unauthorized" in wrong.stderr
    gone = run_journeys("people", "list", env=environment("http://127.0.0.1:9"))
    assert gone.returncode == 2
    assert "cannot reach the API" in gone.stderr

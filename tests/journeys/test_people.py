"""People in the store and the counts of failed sign-ins, on SQLite and PostgreSQL; password
checks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from journeys.access import Role
from journeys.errors import Conflict
from journeys.people import (
    ACCOUNT_LIMIT,
    SignInLimit,
    account_key,
    address_key,
    check_password,
    hash_password,
    is_email,
    normalised_email,
)
from journeys.store import Store, utcnow
from tests.factories import rows_holding

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

SECRET = "test-secret"
LIMITS = {account_key(SECRET, "ada@example.com"): SignInLimit(3, timedelta(minutes=15))}


def test_attempts_are_refused_once_a_window_is_used_up_until_it_ends(store: Store) -> None:
    start = utcnow()
    for minute in range(3):
        assert store.take_sign_in_attempt(LIMITS, start + timedelta(minutes=minute)) is None
    wait = store.take_sign_in_attempt(LIMITS, start + timedelta(minutes=5))
    assert wait == pytest.approx(10 * 60)
    # The refused attempt was not counted; after the window a new count starts.
    assert store.take_sign_in_attempt(LIMITS, start + timedelta(minutes=15)) is None
    assert store.take_sign_in_attempt(LIMITS, start + timedelta(minutes=16)) is None


def test_parallel_attempts_never_take_more_than_the_limit(store: Store) -> None:
    # Counted before the password is checked, in one locked transaction: however many come
    # at once, three go through (each would then cost a password check) and the rest wait.
    now = utcnow()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: store.take_sign_in_attempt(LIMITS, now), range(16)))
    assert sum(answer is None for answer in answers) == 3


def test_a_success_forgets_the_account_and_gives_the_address_its_attempt_back(
    store: Store,
) -> None:
    now = utcnow()
    account, address = account_key(SECRET, "ada@example.com"), address_key(SECRET, "10.0.0.1")
    limits = {
        account: SignInLimit(2, ACCOUNT_LIMIT.window),
        address: SignInLimit(3, ACCOUNT_LIMIT.window),
    }
    assert store.take_sign_in_attempt(limits, now) is None
    assert store.take_sign_in_attempt(limits, now) is None
    assert store.take_sign_in_attempt(limits, now) is not None  # the account's used up
    store.settle_sign_in(account, address)  # the second attempt was right after all
    assert store.take_sign_in_attempt(limits, now) is None  # the address's second
    assert store.take_sign_in_attempt({address: limits[address]}, now) is None  # its third
    assert store.take_sign_in_attempt(limits, now) is not None


def test_windows_that_passed_are_forgotten(store: Store) -> None:
    start = utcnow()
    others = {account_key(SECRET, f"u{n}@example.com"): ACCOUNT_LIMIT for n in range(3)}
    assert store.take_sign_in_attempt(others, start) is None
    assert store.take_sign_in_attempt(LIMITS, start + timedelta(hours=1)) is None
    remaining = {row[2] for row in rows_holding(store, "account:")}
    assert remaining == set(LIMITS)


def test_a_session_is_started_with_the_role_the_person_has_now(store: Store) -> None:
    store.add_person("ada@example.com", Role.EDITOR, None, created_by="bootstrap")
    later = utcnow() + timedelta(hours=1)
    started = store.start_session("ada@example.com", created_by="ada@example.com", expires_at=later)
    assert started is not None
    person, token, secret = started
    assert (person.role, token.role, token.name) == ("editor", "editor", "ada@example.com")
    assert store.active_token(secret, utcnow()) is not None
    store.remove_person("ada@example.com")
    assert store.active_token(secret, utcnow()) is None
    assert store.start_session("ada@example.com", created_by="x", expires_at=later) is None


def test_a_person_is_added_once_and_removing_revokes_their_tokens(store: Store) -> None:
    store.add_person("ada@example.com", Role.EDITOR, None, created_by="bootstrap")
    with pytest.raises(Conflict, match="already a member"):
        store.add_person("ada@example.com", Role.ADMIN, None, created_by="bootstrap")
    _, session = store.create_token(
        "ada@example.com", Role.EDITOR, created_by="ada@example.com", expires_at=None
    )
    _, other = store.create_token("ci", Role.EDITOR, created_by="bootstrap", expires_at=None)
    _, made = store.create_token(
        "backup", Role.ADMIN, created_by="ada@example.com", expires_at=None
    )
    removed = store.remove_person("ada@example.com")
    assert removed is not None
    assert removed.role == "editor"
    assert store.active_token(session, utcnow()) is None
    assert store.active_token(made, utcnow()) is None  # a token they made goes with them
    assert store.active_token(other, utcnow()) is not None
    assert store.remove_person("ada@example.com") is None
    assert store.people() == []


def test_passwords_are_checked_against_their_hash_only() -> None:
    stored = hash_password("correct horse battery")
    assert check_password("correct horse battery", stored).right
    assert not check_password("correct horse batter", stored).right
    assert not check_password("correct horse battery", None).right
    assert not check_password("correct horse battery", "not a hash").right


def test_emails_are_compared_in_one_form() -> None:
    assert normalised_email(" Ada@Example.COM ") == "ada@example.com"
    assert account_key(SECRET, "Ada@example.com") == account_key(SECRET, "ada@example.com ")
    assert "ada" not in account_key(SECRET, "ada@example.com")
    # Keyed: nobody without the secret can hash staff emails or every address to match them.
    assert account_key("another", "ada@example.com") != account_key(SECRET, "ada@example.com")
    assert is_email("ada@example.com")
    assert not is_email("ada example.com")
    assert not is_email("ada@ex ample.com")
    assert not is_email("ed\x9bna@example.com")  # a C1 control character
    assert not is_email("ada@example.com\n")

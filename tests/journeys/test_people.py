"""People in the store and the counts of failed sign-ins, on SQLite and PostgreSQL; password
checks."""

from __future__ import annotations

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

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

LIMITS = {account_key("ada@example.com"): SignInLimit(3, timedelta(minutes=15))}


def test_failures_refuse_sign_ins_until_their_window_ends(store: Store) -> None:
    start = utcnow()
    for minute in range(3):
        assert store.sign_in_refused_for(LIMITS, start + timedelta(minutes=minute)) is None
        store.record_sign_in_failure(LIMITS, start + timedelta(minutes=minute))
    wait = store.sign_in_refused_for(LIMITS, start + timedelta(minutes=5))
    assert wait == pytest.approx(10 * 60)
    assert store.sign_in_refused_for(LIMITS, start + timedelta(minutes=15)) is None
    # A failure after the window starts a new count.
    store.record_sign_in_failure(LIMITS, start + timedelta(minutes=16))
    assert store.sign_in_refused_for(LIMITS, start + timedelta(minutes=16)) is None


def test_each_key_is_counted_and_cleared_on_its_own(store: Store) -> None:
    now = utcnow()
    account, address = account_key("ada@example.com"), address_key("10.0.0.1")
    limits = {
        account: SignInLimit(2, ACCOUNT_LIMIT.window),
        address: SignInLimit(3, ACCOUNT_LIMIT.window),
    }
    store.record_sign_in_failure(limits, now)
    store.record_sign_in_failure(limits, now)
    assert store.sign_in_refused_for(limits, now) is not None
    assert store.sign_in_refused_for({address: limits[address]}, now) is None
    store.clear_sign_in_failures(account)
    assert store.sign_in_refused_for(limits, now) is None
    store.record_sign_in_failure({address: limits[address]}, now)
    assert store.sign_in_refused_for(limits, now) is not None  # the address's third


def test_a_person_is_added_once_and_removing_revokes_their_tokens(store: Store) -> None:
    store.add_person("ada@example.com", Role.EDITOR, None, created_by="bootstrap")
    with pytest.raises(Conflict, match="already a member"):
        store.add_person("ada@example.com", Role.ADMIN, None, created_by="bootstrap")
    _, session = store.create_token(
        "ada@example.com", Role.EDITOR, created_by="ada@example.com", expires_at=None
    )
    _, other = store.create_token("ci", Role.EDITOR, created_by="bootstrap", expires_at=None)
    removed = store.remove_person("ada@example.com")
    assert removed is not None
    assert removed.role == "editor"
    assert store.active_token(session, utcnow()) is None
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
    assert account_key("Ada@example.com") == account_key("ada@example.com ")
    assert "ada" not in account_key("ada@example.com")
    assert is_email("ada@example.com")
    assert not is_email("ada example.com")
    assert not is_email("ada@ex ample.com")

"""`Settings.require`: the one place that says which credentials a component needs."""

from __future__ import annotations

import re

import pytest

from journeys.errors import ConfigurationError
from journeys.settings import NEEDS, Component, Settings, load_settings

FULL = Settings(write_key="w", admin_token="a", unsubscribe_secret="u")
VARIABLES = {
    "write_key": "JOURNEYS_WRITE_KEY",
    "admin_token": "JOURNEYS_ADMIN_TOKEN",
    "unsubscribe_secret": "JOURNEYS_UNSUBSCRIBE_SECRET",
}


@pytest.mark.parametrize("component", list(Component))
def test_a_component_with_its_credentials_starts(component: Component) -> None:
    assert FULL.require(component) is FULL


@pytest.mark.parametrize(
    ("component", "secret"),
    [(component, secret) for component, needs in NEEDS.items() for secret in needs],
)
@pytest.mark.parametrize("absent", [None, ""])
def test_each_missing_credential_is_named_with_its_variable(
    component: Component, secret: str, absent: str | None
) -> None:
    settings = FULL.model_copy(update={secret: absent})
    with pytest.raises(ConfigurationError) as refused:
        settings.require(component)
    message = str(refused.value)
    assert message.startswith(f"{component} needs {VARIABLES[secret]} (")
    assert "set it in the environment" in message


def test_every_missing_credential_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError, match=r"JOURNEYS_ADMIN_TOKEN .*; JOURNEYS_WRITE_KEY "):
        Settings(write_key=None, admin_token=None).require(Component.DEMO)


def test_credentials_a_component_does_not_need_are_not_asked_for() -> None:
    nothing = Settings(write_key=None, admin_token=None, unsubscribe_secret=None)
    nothing.model_copy(update={"unsubscribe_secret": "u"}).require(Component.WORKER)
    nothing.model_copy(update={"admin_token": "a"}).require(Component.DESIGNER)


def test_the_api_refuses_a_write_key_that_is_also_the_admin_token() -> None:
    with pytest.raises(ConfigurationError, match="must differ"):
        Settings(write_key="same", admin_token="same", unsubscribe_secret="u").require(
            Component.API
        )


@pytest.mark.parametrize(
    ("sign_in", "needs_token"), [("off", True), ("oidc", True), ("accounts", False)]
)
def test_the_designer_needs_the_admin_token_unless_people_sign_in_with_accounts(
    monkeypatch: pytest.MonkeyPatch, sign_in: str, needs_token: bool
) -> None:
    monkeypatch.setenv("JOURNEYS_DESIGNER_SIGN_IN", sign_in)
    monkeypatch.delenv("JOURNEYS_ADMIN_TOKEN", raising=False)
    settings = load_settings()
    assert settings.designer_sign_in == sign_in
    if needs_token:
        with pytest.raises(ConfigurationError, match="the designer needs JOURNEYS_ADMIN_TOKEN"):
            settings.require(Component.DESIGNER)
    else:
        assert settings.require(Component.DESIGNER) is settings


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (
            "JOURNEYS_DESIGNER_SIGN_IN",
            "password",
            "JOURNEYS_DESIGNER_SIGN_IN: Input should be 'off', 'accounts' or 'oidc'",
        ),
        ("JOURNEYS_SESSION_HOURS", "0", "JOURNEYS_SESSION_HOURS: Input should be greater than 0"),
        (
            "JOURNEYS_SESSION_HOURS",
            "a day",
            "JOURNEYS_SESSION_HOURS: Input should be a valid number",
        ),
    ],
)
def test_bad_sign_in_settings_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        load_settings()

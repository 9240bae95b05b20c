"""`Settings.require`: the one place that says which credentials a component needs."""

from __future__ import annotations

import pytest

from journeys.errors import ConfigurationError
from journeys.settings import NEEDS, Component, Settings

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

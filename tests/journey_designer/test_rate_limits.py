"""The settings page's rate limits, against the real API on loopback."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.helpers import errors, ok, start, texts


def save(app: AppTest, limits: dict[str, str]) -> AppTest:
    for channel, text in limits.items():
        app.text_input(key=f"settings.rate_limits.{channel}").input(text)
    app.button(key="FormSubmitter:settings.rate_limits-Save rate limits").click().run()
    return ok(app)


def test_rate_limits_are_set_per_channel_and_bad_ones_refused(api: LiveApi) -> None:
    api.store.put_settings({"timezone": "Europe/Paris"})
    app = start("views/settings.py")
    assert app.text_input(key="settings.rate_limits.sms").value == ""
    save(app, {"sms": " 20 / s ", "email": "600/m"})
    assert "Saved: Email 600/m, SMS 20/s." in texts(app)
    stored = api.store.get_settings()
    assert stored["rate_limits"] == {"email": "600/m", "sms": "20/s"}
    assert stored["timezone"] == "Europe/Paris"  # the other settings are kept

    app = start("views/settings.py")
    assert app.text_input(key="settings.rate_limits.sms").value == "20/s"
    save(app, {"sms": "fast"})
    [error] = errors(app)
    assert error.startswith("Could not save the rate limits.")
    assert "rate_limits.sms" in error
    assert "bad rate 'fast'" in error
    assert api.store.get_settings()["rate_limits"] == {"email": "600/m", "sms": "20/s"}

    save(app, {"sms": ""})
    assert "Saved: Email 600/m." in texts(app)
    assert api.store.get_settings()["rate_limits"] == {"email": "600/m"}

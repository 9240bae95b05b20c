"""The settings page's event retention, against the real API on loopback."""

from __future__ import annotations

from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.helpers import ok, start, texts


def test_the_settings_page_sets_how_long_events_are_kept(api: LiveApi) -> None:
    api.store.put_settings({"timezone": "Europe/Paris", "rate_limits": {"sms": "20/s"}})
    app = start("views/settings.py")
    [days] = [n for n in app.number_input if n.label.startswith("Days to keep events")]
    assert days.value == 400
    days.set_value(90)
    app.button(key="FormSubmitter:settings.retention-Save retention").click().run()
    ok(app)
    assert "Saved: events are kept 90 days." in texts(app)
    stored = api.store.get_settings()
    assert stored["events_retention_days"] == 90
    assert (stored["timezone"], stored["rate_limits"]) == ("Europe/Paris", {"sms": "20/s"})

    again = start("views/settings.py")
    [days] = [n for n in again.number_input if n.label.startswith("Days to keep events")]
    assert days.value == 90

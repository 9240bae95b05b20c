"""The Broadcasts page against the real API on loopback: write and send a broadcast (now or at
a set time), see its problems beside its fields when refused, follow its progress, cancel it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from streamlit.testing.v1 import AppTest

from journeys.store import Store
from tests.factories import broadcast_delivery
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.helpers import at_path, button, errors, ok, start, texts

PAGE = "views/broadcasts.py"


def with_segment(store: Store) -> None:
    store.put_segment("vips", "VIPs", {"field": "user.plan", "op": "eq", "value": "vip"})


def write(app: AppTest, broadcast_id: str, subject: str = "Spring sale", rate: str = "") -> None:
    """Fill in the new broadcast's id, email subject and body, and pace."""
    at_path(app.text_input, "id").input(broadcast_id)
    at_path(app.text_input, "message.content.subject").input(subject)
    at_path(app.text_area, "message.content.body").input("20% off this week")
    at_path(app.text_input, "rate").input(rate)


def test_without_a_segment_the_page_says_to_make_one(api: LiveApi) -> None:
    app = start(PAGE)
    assert "Make a segment first" in texts(app)
    assert "No broadcast yet." in texts(app)


def test_a_broadcast_is_written_and_sent(api: LiveApi) -> None:
    with_segment(api.store)
    app = start(PAGE)
    write(app, "spring-sale", rate="200/s")
    button(app, "Send broadcast").click().run()
    ok(app)
    assert "Broadcast 'spring-sale' sending." in texts(app), errors(app)
    [sent] = api.routing.broadcasts
    assert (sent.segment, sent.rate, sent.at) == ("vips", "200/s", None)
    assert sent.message.content == {"subject": "Spring sale", "body": "20% off this week"}
    assert sent.message.channel == "email"
    # The form starts afresh, and the list shows the broadcast.
    assert at_path(app.text_input, "id").value == ""
    assert "**spring-sale** 📤 sending · segment `vips` · email · 200/s" in texts(app)


def test_a_broadcast_at_a_set_time_is_scheduled(api: LiveApi) -> None:
    with_segment(api.store)
    app = start(PAGE)
    write(app, "later-sale")
    app.radio(key="broadcasts.when").set_value("later").run()
    day = date.today() + timedelta(days=60)
    picker = app.date_input(key="broadcasts.day")
    # Only the days the API takes: from today to 366 days ahead (UTC, as the time is).
    today = datetime.now(UTC).date()
    last = today + timedelta(days=366)
    assert (picker.proto.min, picker.proto.max) == (today.isoformat(), last.isoformat())
    picker.set_value(day).run()
    app.time_input(key="broadcasts.time").set_value(time(8, 30)).run()
    quiet = [c for c in app.checkbox if c.label.startswith("Quiet hours")]
    quiet[0].check().run()
    at_path(app.text_input, "quiet_hours.start").input("21:30").run()
    button(app, "Send broadcast").click().run()
    ok(app)
    assert "Broadcast 'later-sale' scheduled." in texts(app), errors(app)
    [sent] = api.routing.broadcasts
    assert sent.at is not None
    assert sent.at.isoformat() == f"{day.isoformat()}T08:30:00+00:00"
    assert sent.quiet_hours is not None
    assert (sent.quiet_hours.start, sent.quiet_hours.end) == ("21:30", "08:00")


def test_a_refused_broadcast_shows_why_beside_its_fields(api: LiveApi) -> None:
    with_segment(api.store)
    app = start(PAGE)
    write(app, "bad-one", subject="{{ user.name | nope }}", rate="fast")
    button(app, "Send broadcast").click().run()
    ok(app)
    # Said at once, and beside the field from then on.
    [error] = errors(app)
    assert error.startswith("Could not send the broadcast.")
    assert "`rate: bad rate 'fast'" in error
    assert errors(app.run()) == ["bad rate 'fast': use <count>/<s, m or h>, e.g. '20/s'"]
    assert api.routing.broadcasts == []
    assert api.store.get_broadcast("bad-one") is None

    write(app, "bad-one", subject="{{ user.name | nope }}", rate="20/s")
    button(app, "Send broadcast").click().run()
    assert "`message.content.subject: template does not parse" in errors(app)[-1]
    [beside] = errors(app.run())
    assert beside.startswith("template does not parse")

    write(app, "Bad Id")
    button(app, "Send broadcast").click().run()
    assert "The id must be lower-case letters" in errors(app)[-1]


def test_progress_is_shown_and_a_running_broadcast_cancelled(api: LiveApi) -> None:
    with_segment(api.store)
    definition = {
        "id": "running",
        "segment": "vips",
        "message": {"channel": "sms", "content": {"body": "Hi"}},
        "rate": "10/s",
    }
    api.store.add_broadcast("running", definition, "sending")
    api.store.set_broadcast_status("running", "sending", targeted=4)
    for user in ("a", "b"):
        broadcast_delivery(api.store, "running", user)
    app = start(PAGE)
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Targeted"], metrics["Sent"], metrics["Pending"]) == ("4", "2", "0")
    [bar] = app.get("progress")
    assert bar.proto.text == "2 of 4 members taken so far"
    button(app, "Cancel").click().run()
    ok(app)
    assert "Broadcast 'running' cancelled." in texts(app)
    assert api.routing.cancelled == ["running"]
    record = api.store.get_broadcast("running")
    assert record is not None
    assert record.status == "cancelled"
    app.run()
    assert [b for b in app.button if b.label == "Cancel"] == []  # ended: nothing to cancel

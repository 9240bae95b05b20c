"""The designer's entry limit and holdout: the forms that write them, the graph that shows them,
the analytics' plain reading of the lift, and the settings page's global holdout (Streamlit's
app tester against the real API on loopback, and the pure helpers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from journey_designer.graph import journey_dot
from journey_designer.stats import holdout_reading
from journeys.contracts import EnrollInput, ProgressInput
from journeys.holdouts import in_journey_holdout
from journeys.model import EntryLimit, Journey
from tests.factories import admit
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import example
from tests.journey_designer.helpers import at_path, button, ok, start, texts
from tests.journey_designer.test_app import create_from_gallery


def test_the_entry_and_settings_forms_write_the_limit_and_the_holdout(api: LiveApi) -> None:
    app = create_from_gallery("blank", "Limited")
    at_path(app.checkbox, "entry.limit?").check().run()
    at_path(app.number_input, "entry.limit.count").set_value(250).run()
    at_path(app.text_input, "entry.limit.per").input("12h").run()
    at_path(app.checkbox, "holdout?").check().run()
    at_path(app.number_input, "holdout.percent").set_value(15).run()
    ok(app)
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("limited")
    assert stored is not None
    assert stored.draft["entry"]["limit"] == {"count": 250, "per": "12h"}
    assert stored.draft["holdout"] == {"percent": 15}

    at_path(app.number_input, "holdout.percent").set_value(60).run()
    assert "holdout.percent" in texts(app)  # over 50: shown beside the form


def test_the_graph_shows_the_limit_and_the_holdout() -> None:
    document = example("abandoned-cart")
    document["entry"]["limit"] = {"count": 100, "per": "1d"}
    document["holdout"] = {"percent": 10}
    assert 'label="on event\\nAdded to Cart\\nat most 100 per 1d\\n10% held out"' in journey_dot(
        document
    )


def _holdout(users: int, treated: int, **figures: Any) -> dict[str, Any]:
    return {"users": users, "treated_users": treated, **figures}


def test_the_plain_reading_of_the_lift() -> None:
    found = _holdout(400, 3600, lift=0.021, interval=(0.004, 0.038), p_value=0.031)
    assert holdout_reading(found) == (
        "Treated users converted 2.1 points more than held-out users (95 % interval 0.4 to "
        "3.8), p = 0.031: the journey's messages make a difference."
    )
    unsure = _holdout(400, 3600, lift=0.01, interval=(-0.01, 0.03), p_value=0.32)
    assert holdout_reading(unsure).endswith("p = 0.32: not yet distinguishable from chance.")
    harm = _holdout(400, 3600, lift=-0.03, interval=(-0.05, -0.01), p_value=0.004)
    assert "converted 3.0 points less" in holdout_reading(harm)
    assert holdout_reading(harm).endswith("do harm.")
    few = _holdout(8, 70, lift=0.2, interval=(-0.1, 0.4), p_value=0.2)
    assert holdout_reading(few).startswith("Too few users to tell yet: 8 held out and 70")
    empty = _holdout(0, 12, lift=None, interval=None, p_value=None)
    assert holdout_reading(empty).startswith("No comparison yet")


def test_analytics_show_the_holdout_and_the_limited(api: LiveApi) -> None:
    document = example("abandoned-cart")
    document["holdout"] = {"percent": 50}
    document["entry"]["limit"] = {"count": 2, "per": "1d"}
    api.store.save_draft(document["id"], document)
    api.store.publish(document["id"])
    journey = Journey.model_validate(document)
    now = datetime.now(UTC)
    for n in range(200):
        user_id = f"user-{n}"
        held_out = in_journey_holdout(journey, user_id)
        enrollment = EnrollInput(
            enrollment_id=f"e-{n}", user_id=user_id, journey_id=journey.id, version=1,
            workflow_id=f"w-{n}", entered_at=now, holdout="holdout" if held_out else None,
        )  # fmt: skip
        converts = n % (10 if held_out else 3) == 0  # about 10% against 33%
        steps = [ProgressInput(enrollment_id=f"e-{n}", at=now, converted=True)]
        api.store.record_steps(steps if converts else [], enrollment=enrollment)
    for n in range(3):
        admit(api.store, journey.id, f"late-{n}", now, EntryLimit(count=2, per="1d"))

    app = start("views/analytics.py")
    shown = texts(app)
    assert "Treated users converted" in shown
    assert "the journey's messages make a difference" in shown
    assert "The entry limit kept out 1 user: they did not enter." in shown
    assert any(m.label.startswith("Held out: ") for m in app.metric)


def test_the_settings_page_sets_the_global_holdout(api: LiveApi) -> None:
    api.store.put_settings({"timezone": "Europe/Paris"})
    app = start("views/settings.py")
    app.number_input[0].set_value(5.0)
    app.button[0].click().run()
    ok(app)
    stored = api.store.get_settings()
    assert (stored["timezone"], stored["holdout"]) == ("Europe/Paris", {"percent": 5.0})
    assert "Saved: 5% of all users are held out." in texts(app)

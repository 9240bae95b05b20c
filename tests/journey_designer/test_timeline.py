"""The Users page's timeline (Streamlit's app tester, against the real API): every entry with
its time, kind, what happened and why, a link to its run, and paging through a long one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from journeys.store import NewEvent
from tests.journey_designer.conftest import TEMPORAL_UI, LiveApi
from tests.journey_designer.helpers import button, ok, start, texts
from tests.journey_designer.test_app import seed_activity

RUN = f"{TEMPORAL_UI}/namespaces/default/workflows/journey%3Aabandoned-cart%3Aada"


def test_the_users_page_shows_the_timeline_with_reasons_and_links(api: LiveApi) -> None:
    seed_activity(api.store)
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    ok(app)
    assert app.subheader[-1].value == "Timeline"
    rows = app.dataframe[-1].value
    assert list(rows.columns) == ["at", "kind", "what happened", "why", "journey", "step", "run"]
    shown = [tuple(row) for row in rows[["kind", "what happened", "why"]].itertuples(index=False)]
    assert shown[:4] == [
        ("event", "event Added to Cart", ""),
        ("entered", "entered Abandoned cart recovery", "entry event Added to Cart"),
        ("step", "reached wait_checkout (wait_for_event)", ""),
        ("wait ended", "wait over at wait_checkout", "timeout: no Checkout Started within 24h"),
    ]
    assert ("step", "reached copy_test (experiment)", "variant urgency") in shown
    assert ("message", "email message sent", "") in shown
    assert ("converted", "converted", "the goal: Order Completed within 3d") in shown
    assert rows.iloc[0]["at"].endswith(" UTC")
    assert not isinstance(rows.iloc[0]["run"], str)  # an event belongs to no run
    assert set(rows["run"][1:]) == {RUN}
    assert "What happened to the user and why, oldest first" in texts(app)
    assert not [b for b in app.button if b.label in ("Earlier", "Later")]  # one page


def test_a_long_timeline_pages_later_and_earlier(api: LiveApi) -> None:
    start_at = datetime(2026, 1, 1, tzinfo=UTC)
    api.store.append_events(
        [
            NewEvent(
                message_id=f"view-{n}", user_id="busy", type="track", name=f"Viewed {n}",
                properties={}, timestamp=start_at + timedelta(minutes=n),
            )  # fmt: skip
            for n in range(130)
        ]
    )
    app = start("views/users.py")
    app.text_input(key="users.id").input("busy").run()
    first = list(app.dataframe[-1].value["what happened"])
    assert first == [f"event Viewed {n}" for n in range(100)]
    assert [b.label for b in app.button if b.label in ("Earlier", "Later")] == ["Later"]
    button(app, "Later").click().run()
    ok(app)
    assert list(app.dataframe[-1].value["what happened"]) == [
        f"event Viewed {n}" for n in range(100, 130)
    ]
    button(app, "Earlier").click().run()
    ok(app)
    assert list(app.dataframe[-1].value["what happened"]) == first
    # Another user starts from their beginning.
    app.text_input(key="users.id").input("nobody").run()
    assert "Could not look up 'nobody'. Not found: no user 'nobody'" in [e.value for e in app.error]

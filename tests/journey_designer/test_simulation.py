"""The editor's Test tab: a described or known user, scripted events, the path on the graph
with its times, and every message rendered as the preview shows it (Streamlit's app tester,
against the real API and its time-skipping engine)."""

from __future__ import annotations

import json

from journeys.store import Store
from tests.factories import merge_traits
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import example
from tests.journey_designer.helpers import button, errors, ok, open_in_editor, texts


def test_a_described_user_walks_the_graph_and_gets_the_rendered_offer(api: LiveApi) -> None:
    app = open_in_editor(api.store, example("abandoned-cart"))
    entry = {"total_price": 250, "currency": "USD", "item_count": 2, "cart_url": "https://s/c"}
    app.text_area(key="test.entry").input(json.dumps(entry)).run()
    button(app, "Run the test").click().run()
    ok(app)
    shown = texts(app)
    assert "The user's run: **completed**" in shown
    [spec] = [c.proto.spec for c in app.get("graphviz_chart") if "✓ reached" in c.proto.spec]
    assert "wait_checkout\\nwait for event (max 24h)\\n✓ reached +" in spec  # at entry
    assert 'by_cart_value\\nbranch\\n✓ reached +1d"' in spec  # a day later
    assert 'color="#16a34a"' in spec  # the path outlined green
    path = app.dataframe[-1].value
    assert list(path["step"])[:3] == ["wait_checkout", "by_cart_value", "vip_email"]
    assert list(path["after entry"])[1] == "+1d"
    assert "**vip\\_email** · email · sent" in shown
    assert "**Subject:** Ada, your cart is on us \\(almost\\)" in shown
    assert any("worth $250" in t.value for t in app.text)
    # Nothing happened for real.
    assert api.store.get_user("test-user") is None
    assert api.store.deliveries_for_user("test-user") == []


def test_a_known_user_with_scripted_events(api: LiveApi) -> None:
    merge_traits(api.store, "ada", {"first_name": "Ada", "email": "ada@example.com"})
    app = open_in_editor(api.store, example("abandoned-cart"))
    app.radio(key="test.who").set_value("known").run()
    app.text_input(key="test.user_id").input("ada").run()
    assert "This journey listens for: Checkout Started, Order Completed" in texts(app)
    button(app, "Script an event").click().run()
    button(app, "Script an event").click().run()
    app.text_input(key="test.event:1").input("Checkout Started").run()
    app.text_input(key="test.at:1").input("30m").run()
    app.text_input(key="test.event:2").input("Order Completed").run()
    app.text_input(key="test.at:2").input("40d").run()
    button(app, "Run the test").click().run()
    ok(app)
    shown = texts(app)
    assert "The user's run: **completed**" in shown
    assert "Not delivered: Order Completed at 40d is after the horizon." in shown
    assert "No message reached the user." in shown
    assert list(app.dataframe[-1].value["step"]) == ["wait_checkout"]
    assert api.store.deliveries_for_user("ada") == []


def test_bad_input_says_what_is_wrong(api: LiveApi, store: Store) -> None:
    app = open_in_editor(api.store, example("abandoned-cart"))
    app.radio(key="test.who").set_value("known").run()
    app.text_input(key="test.user_id").input("nobody").run()
    button(app, "Run the test").click().run()
    assert "Could not load user 'nobody'. Not found: no user 'nobody'" in errors(app)

    app.radio(key="test.who").set_value("describe").run()
    app.text_input(key="test.horizon").input("400d").run()
    button(app, "Run the test").click().run()
    assert any("horizon" in e and "at most 365 days" in e for e in errors(app))

    app.text_input(key="test.horizon").input("2d").run()
    app.text_area(key="test.traits").input("[1, 2]").run()
    assert 'Traits (JSON; "id" names the user): must be a JSON object' in errors(app)

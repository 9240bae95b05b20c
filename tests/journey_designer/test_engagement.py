"""The designer's engagement surfaces, driven by Streamlit's app tester against the real API
on loopback: tracking on message steps, waits on a message's opens and clicks, keyed matches,
the message condition, experiments decided on clicks, and engagement in Analytics and on the
Users page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from journeys.experiments import Counts, wilson_interval
from journeys.store import Store
from journeys.tracking import PRIVACY_PROXY, click_token, open_token
from tests.api.helpers import UNSUBSCRIBE_SECRET
from tests.factories import enroll, move, set_variant
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import engagement_journey, example
from tests.journey_designer.helpers import (
    at_path,
    button,
    choose,
    errors,
    ok,
    open_in_editor,
    start,
    texts,
)


def step(app: AppTest, node_id: str) -> AppTest:
    """The editor with `node_id`'s form shown."""
    return ok(choose(app.selectbox(key="editor.node"), node_id).run())


def node(app: AppTest, node_id: str) -> dict[str, Any]:
    """A node of the document being edited."""
    found: dict[str, Any] = app.session_state["journey"]["nodes"][node_id]
    return found


def test_tracking_shows_its_default_and_follows_transactional(api: LiveApi) -> None:
    app = step(open_in_editor(api.store, engagement_journey()), "reminder")
    track = at_path(app.checkbox, "nodes.reminder.track")
    assert track.value is True  # the default of a marketing email, not written down
    assert "Default: on." in texts(app)
    assert "track" not in node(app, "reminder")
    track.uncheck().run()
    assert node(app, "reminder")["track"] is False
    assert "Default: on. Turned off here." in texts(app)
    at_path(app.checkbox, "nodes.reminder.track").check().run()
    assert "track" not in node(app, "reminder")  # back to the default: left out again

    # Transactional: the default turns off, and the box shows it at once.
    at_path(app.checkbox, "nodes.reminder.transactional").check().run()
    ok(app)
    assert at_path(app.checkbox, "nodes.reminder.track").value is False
    assert "Default for a transactional message: off." in texts(app)
    at_path(app.checkbox, "nodes.reminder.track").check().run()
    assert node(app, "reminder")["track"] is True
    assert "Default for a transactional message: off. Turned on here." in texts(app)

    # A webhook is never tracked: no box, and switching to one forgets `track`.
    choose(at_path(app.selectbox, "nodes.reminder.channel"), "Webhook").run()
    ok(app)
    assert "track" not in node(app, "reminder")
    assert not [c for c in app.checkbox if str(c.key).endswith(":nodes.reminder.track")]
    assert "Webhooks are never tracked: there is nothing to open or click." in texts(app)
    assert "The journey is valid." in texts(app)
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["reminder"]["transactional"] is True
    assert "track" not in stored.draft["nodes"]["reminder"]


def test_tracking_a_webhook_is_refused_beside_the_step(api: LiveApi) -> None:
    document = engagement_journey()
    document["nodes"]["hook"]["track"] = True
    app = step(open_in_editor(api.store, document), "hook")
    shown = errors(app)
    assert any(e.startswith("1 problem(s) to fix") for e in shown)
    # Shown beside the (absent) tracking control: the message alone, without its path.
    [problem] = [e for e in shown if "webhook" in e and "problem(s)" not in e]
    assert "nodes.hook.track" not in problem


def test_a_wait_on_the_clicks_of_an_earlier_message(api: LiveApi) -> None:
    app = step(open_in_editor(api.store, engagement_journey()), "wait")
    of = at_path(app.selectbox, "nodes.wait.paths[0].of")
    # Only the tracked email before the wait; the others are named with why they are not.
    assert list(of.options) == ["any such event (not about one message)", "reminder · Email"]
    assert (
        "Not offered: `receipt` (its tracking is off); `hook` (webhooks are never tracked); "
        "`later` (it does not come before this step)." in texts(app)
    )
    choose(of, "reminder").run()
    ok(app)
    assert node(app, "wait")["paths"][0] == {
        "event": "Email Opened", "of": "reminder", "next": None,
    }  # fmt: skip
    event = at_path(app.selectbox, "nodes.wait.paths[0].event")
    assert list(event.options) == ["Email Opened", "Email Link Clicked"]
    choose(event, "Email Link Clicked").run()

    # Keyed: only this cart's events.
    at_path(app.button, "$#add:nodes.wait.paths[0].match").click().run()
    assert node(app, "wait")["paths"][0]["match"] == {"property_1": "{{ entry.property_1 }}"}
    name = at_path(app.text_input, "nodes.wait.paths[0].match.property_1<name>")
    name.input("cart_id").run()
    # The value made for the new row follows its name.
    assert at_path(app.text_input, "nodes.wait.paths[0].match.cart_id").value == (
        "{{ entry.cart_id }}"
    )
    ok(app)
    assert "The journey is valid." in texts(app)
    assert 'label="Email Link Clicked · reminder"' in app.get("graphviz_chart")[0].proto.spec
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["wait"]["paths"][0] == {
        "event": "Email Link Clicked", "of": "reminder", "next": None,
        "match": {"cart_id": "{{ entry.cart_id }}"},
    }  # fmt: skip

    # Back to any event: `of` goes, the event stays and can be typed again.
    choose(at_path(app.selectbox, "nodes.wait.paths[0].of"), "any such event").run()
    assert "of" not in node(app, "wait")["paths"][0]
    at_path(app.text_input, "nodes.wait.paths[0].event").input("Order Completed").run()
    at_path(app.button, "$#remove:nodes.wait.paths[0].match.cart_id").click().run()
    assert node(app, "wait")["paths"][0] == {"event": "Order Completed", "next": None}


def test_a_wait_with_no_tracked_message_before_it_says_why(api: LiveApi) -> None:
    document = engagement_journey()
    document["nodes"]["reminder"]["track"] = False
    app = step(open_in_editor(api.store, document), "wait")
    of = at_path(app.selectbox, "nodes.wait.paths[0].of")
    assert list(of.options) == ["any such event (not about one message)"]
    shown = texts(app)
    assert "No message step to choose: a wait can react to the opens and clicks of a tracked " in (
        shown
    )
    assert "`reminder` (its tracking is off)" in shown


def test_an_of_naming_an_untracked_message_is_refused_beside_the_field(api: LiveApi) -> None:
    document = engagement_journey()
    document["nodes"]["wait"]["paths"][0] |= {"event": "Email Opened", "of": "receipt"}
    app = step(open_in_editor(api.store, document), "wait")
    of = at_path(app.selectbox, "nodes.wait.paths[0].of")
    # Kept and shown as it is (never dropped silently), with why it cannot be chosen.
    assert of.value == "receipt"
    assert "receipt · Email (cannot be chosen: its tracking is off)" in of.options
    shown = errors(app)
    assert any(e.startswith("1 problem(s) to fix") for e in shown)
    # Beside the field: the message alone, without its path (not the step's leftovers list).
    beside = [e for e in shown if "receipt" in e and "problem(s)" not in e]
    assert beside
    assert not any("nodes.wait.paths[0].of" in e for e in beside)
    button(app, "Save draft").click().run()
    assert any(e.startswith("Could not save the draft.") for e in errors(app))

    # Turning the email's tracking on makes it a valid choice.
    step(app, "receipt")
    at_path(app.checkbox, "nodes.receipt.track").check().run()
    ok(app)
    assert "The journey is valid." in texts(app)


def test_exit_rules_and_the_goal_can_be_keyed(api: LiveApi) -> None:
    app = open_in_editor(api.store, engagement_journey())
    button(app, "Add an exit rule").click().run()
    at_path(app.button, "$#add:exit[0].match").click().run()
    at_path(app.text_input, "exit[0].match.property_1<name>").input("cart_id").run()
    at_path(app.checkbox, "goal?").check().run()
    at_path(app.button, "$#add:goal.match").click().run()
    at_path(app.text_input, "goal.match.property_1").input("{{ entry.order_ref }}").run()
    ok(app)
    assert "The journey is valid." in texts(app)
    document = app.session_state["journey"]
    assert document["exit"] == [
        {"event": "Order Completed", "match": {"cart_id": "{{ entry.cart_id }}"}}
    ]
    assert document["goal"]["match"] == {"property_1": "{{ entry.order_ref }}"}
    # Renamed once edited, a value stays as written.
    at_path(app.text_input, "goal.match.property_1<name>").input("order_ref").run()
    assert app.session_state["journey"]["goal"]["match"] == {"order_ref": "{{ entry.order_ref }}"}
    # A name already taken is refused: the row keeps its name.
    at_path(app.button, "$#add:goal.match").click().run()
    at_path(app.text_input, "goal.match.property_1<name>").input("order_ref").run()
    assert list(app.session_state["journey"]["goal"]["match"]) == ["order_ref", "property_1"]
    # A template that does not parse is shown beside its field.
    at_path(app.text_input, "goal.match.property_1").input("{{ entry.x").run()
    assert [e for e in errors(app) if "template" in e and "goal.match" not in e]


def test_a_segment_journey_is_keyed_on_the_user(api: LiveApi) -> None:
    document = engagement_journey()
    document["entry"] = {"segment": "vips"}
    app = step(open_in_editor(api.store, document), "wait")
    at_path(app.button, "$#add:nodes.wait.paths[0].match").click().run()
    # A segment entry gives the run no entry fields: the new row reads the user's trait.
    assert node(app, "wait")["paths"][0]["match"] == {"property_1": "{{ user.property_1 }}"}
    at_path(app.text_input, "nodes.wait.paths[0].match.property_1<name>").input("account").run()
    assert node(app, "wait")["paths"][0]["match"] == {"account": "{{ user.account }}"}
    assert "A segment entry has no entry fields to match on" in texts(app)
    ok(app)
    assert "The journey is valid." in texts(app)
    # Reading the entry anyway is refused beside the field.
    at_path(app.text_input, "nodes.wait.paths[0].match.account").input("{{ entry.account }}").run()
    beside = [e for e in errors(app) if "problem(s)" not in e]
    assert any(e.startswith("reads entry.account: a segment entry provides no") for e in beside)


def test_the_message_condition_in_a_branch(api: LiveApi) -> None:
    document = engagement_journey()
    document["nodes"]["hook"]["next"] = "clicked"
    document["nodes"]["clicked"] = {
        "type": "branch",
        "paths": [{"when": {"field": "user.email", "op": "exists"}, "next": "wait"}],
    }
    app = step(open_in_editor(api.store, document), "clicked")
    base = "nodes.clicked.paths[0].when"
    choose(at_path(app.selectbox, f"{base}.<kind>"), "A message step was sent").run()
    ok(app)
    when = node(app, "clicked")["paths"][0]["when"]
    assert when == {"message": "receipt", "engagement": "opened"}
    assert list(at_path(app.selectbox, f"{base}.message").options) == [
        "receipt · Email", "reminder · Email", "hook · Webhook (HTTP request)", "later · SMS",
    ]  # fmt: skip
    # Opens of an untracked step are never known: refused, beside the step picker.
    untracked = "'receipt' is transactional, so not tracked unless it sets track: true"
    assert untracked in errors(app)
    choose(at_path(app.selectbox, f"{base}.message"), "reminder").run()
    choose(at_path(app.selectbox, f"{base}.engagement"), "was clicked").run()
    ok(app)
    assert untracked not in errors(app)
    when = node(app, "clicked")["paths"][0]["when"]
    assert when == {"message": "reminder", "engagement": "clicked"}
    assert 'label="if reminder was clicked"' in app.get("graphviz_chart")[0].proto.spec
    assert "The journey is valid." in texts(app)
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["clicked"]["paths"][0]["when"] == {
        "message": "reminder", "engagement": "clicked",
    }  # fmt: skip

    # A step that is not a message: refused by the API, shown beside the picker.
    document = app.session_state["journey"]
    document["nodes"]["clicked"]["paths"][0]["when"]["message"] = "wait"
    app.run()
    assert "wait (not a message step!)" in at_path(app.selectbox, f"{base}.message").options
    assert [e for e in errors(app) if "wait" in e and "problem(s)" not in e]


def test_segments_offer_no_message_condition(api: LiveApi) -> None:
    app = start("views/segments.py")
    kinds = at_path(app.selectbox, "condition.all[0].<kind>").options
    assert "Has done an event (how many times)" in kinds
    assert not [k for k in kinds if k.startswith("A message step")]


def test_an_experiment_decided_on_clicks(api: LiveApi) -> None:
    document = engagement_journey()
    document["nodes"]["hook"]["next"] = "split"
    document["nodes"]["split"] = {
        "type": "experiment",
        "variants": [{"name": "a", "weight": 50, "next": "wait"}, {"name": "b", "weight": 50}],
    }
    app = step(open_in_editor(api.store, document), "split")
    at_path(app.checkbox, "nodes.split.winner?").check().run()
    metric = at_path(app.selectbox, "nodes.split.winner.metric")
    assert list(metric.options) == [
        "conversion (the journey's goal)", "click-through (a click on a tracked message)",
    ]  # fmt: skip
    # No goal: conversions could never happen, and the form says so.
    assert "Conversions are the journey's goal (Goal & settings tab)" in texts(app)
    choose(metric, "click-through").run()
    ok(app)
    assert node(app, "split")["winner"] == {"after": "14d", "min_users": 100, "metric": "click"}
    within = at_path(app.text_input, "nodes.split.winner.within")
    assert within.placeholder == "7d"
    within.input("3d").run()
    assert "The journey is valid." in texts(app)
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["split"]["winner"]["within"] == "3d"

    # A time that is not a duration is refused beside its field.
    at_path(app.text_input, "nodes.split.winner.within").input("soon").run()
    assert [e for e in errors(app) if "problem(s)" not in e and "split.winner" not in e]

    # Back to conversions: the click time goes with the metric.
    choose(at_path(app.selectbox, "nodes.split.winner.metric"), "conversion").run()
    assert node(app, "split")["winner"] == {"after": "14d", "min_users": 100}

    # Clicks with no tracked message after the split: refused beside the metric.
    choose(at_path(app.selectbox, "nodes.split.winner.metric"), "click-through").run()
    step(app, "later")
    at_path(app.checkbox, "nodes.later.track").uncheck().run()
    step(app, "split")
    refused = "no tracked message can follow this experiment: no click to count"
    assert refused in errors(app)  # the message alone: beside its field


BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"
"""A person's phone following a link."""


def deliver(store: Store, enrollment: str, user_id: str, node_id: str, channel: str) -> int:
    """A sent delivery of `node_id` to `user_id`, as the worker records one; its id."""
    key = f"{enrollment}:{node_id}"
    record, _ = store.begin_delivery(
        idempotency_key=key, journey_id="abandoned-cart", version=1, node_id=node_id,
        user_id=user_id, channel=channel, variant="urgency", content={"title": "Hi"},
    )  # fmt: skip
    store.finish_delivery(key, "sent")
    assert record.id is not None
    return record.id


def seed_engagement(api: LiveApi) -> None:
    """The abandoned cart published with its experiment decided on clicks and the VIP email
    untracked; four users through the experiment. Both urgency users get the urgency email and
    the cart push: user-0 taps the push's tracked link on their phone, user-1's email is only
    opened by a mail privacy proxy (which never counts)."""
    document = example("abandoned-cart")
    document["nodes"]["copy_test"]["winner"] |= {"metric": "click", "within": "3d"}
    document["nodes"]["vip_email"]["track"] = False
    api.store.save_draft(document["id"], document)
    api.store.publish(document["id"])
    now = datetime.now(UTC)
    for i, variant in enumerate(["urgency", "urgency", "friendly", "control"]):
        enrollment, user_id = f"e-{i}", f"user-{i}"
        enroll(
            api.store, enrollment_id=enrollment, user_id=user_id, journey_id="abandoned-cart",
            version=1, workflow_id=f"journey:abandoned-cart:{user_id}", entered_at=now,
        )  # fmt: skip
        for node_id in ("wait_checkout", "by_cart_value", "copy_test"):
            move(api.store, enrollment, node_id, now)
        set_variant(api.store, enrollment, variant)
        if variant != "urgency":
            continue
        for node_id in ("urgency_email", "pause_before_push", "cart_push"):
            move(api.store, enrollment, node_id, now)
        email = deliver(api.store, enrollment, user_id, "urgency_email", "email")
        push = deliver(api.store, enrollment, user_id, "cart_push", "push")
        with httpx.Client(base_url=api.url) as http:
            if i == 0:
                token = click_token(UNSUBSCRIBE_SECRET, push, "https://shop.example.com/cart")
                clicked = http.get(f"/c/{token}", headers={"User-Agent": BROWSER})
                assert clicked.status_code == 302, clicked.text
            else:
                pixel = f"/o/{open_token(UNSUBSCRIBE_SECRET, email)}.gif"
                assert http.get(pixel, headers={"User-Agent": PRIVACY_PROXY}).status_code == 200


def test_analytics_show_open_and_click_rates_beside_each_message(api: LiveApi) -> None:
    seed_engagement(api)
    app = ok(start("views/analytics.py"))
    spec = app.get("graphviz_chart")[0].proto.spec
    # Beside each message node: its sends and rates (the proxy's open counts nowhere).
    assert 'reached 2 · waiting 2\\nsent 2 · open 50% · click 50%", style' in spec  # cart_push
    assert 'reached 2 · waiting 0\\nsent 2 · open 0% · click 0%", style' in spec  # urgency_email
    assert 'reached 0 · waiting 0\\nsent 0 · not tracked", style' in spec  # vip_email
    assert 'behi…\\nreached 0 · waiting 0\\nsent 0", style' in spec  # nothing sent: no rates
    table = app.dataframe[0].value.set_index("step")
    push = table.loc["cart_push"]
    assert (push["sent"], push["opened"], push["clicked"]) == (2, 1, 1)
    assert (push["open rate"], push["click rate"], push["tracked"]) == (0.5, 0.5, True)
    assert (table.loc["urgency_email", "opened"], table.loc["urgency_email", "open rate"]) == (0, 0)
    assert bool(table.loc["vip_email", "tracked"]) is False
    # Nothing sent: no rate at all (not 0%).
    assert table["click rate"].isna()["friendly_email"]


def test_analytics_show_the_ctr_of_each_variant_with_its_interval(api: LiveApi) -> None:
    seed_engagement(api)
    app = ok(start("views/analytics.py"))
    variants = app.dataframe[1].value.set_index("variant")
    assert list(variants.index) == ["urgency", "friendly", "control"]
    assert (variants.loc["urgency", ["users", "clicks", "CTR"]] == [2, 1, 0.5]).all()
    assert (variants.loc["friendly", ["users", "clicks", "CTR"]] == [1, 0, 0.0]).all()
    low, high = wilson_interval(Counts(users=2, conversions=1))
    urgency = variants.loc["urgency"]
    assert (urgency["CTR 95% CI low"], urgency["CTR 95% CI high"]) == (low, high)
    # Conversions are still shown beside the clicks.
    assert list(variants.loc["urgency", ["conversions", "rate"]]) == [0, 0.0]
    shown = texts(app)
    assert (
        "Decided on click-through: a user counts when they click a tracked message within 3d"
        in (shown)
    )
    assert "if the variants were clicked through alike" in shown


def test_the_users_page_shows_whether_and_when_each_message_was_opened_and_clicked(
    api: LiveApi,
) -> None:
    seed_engagement(api)
    app = start("views/users.py")
    app.text_input(key="users.id").input("user-0").run()
    ok(app)
    deliveries = app.dataframe[-1].value.set_index("step")
    [push] = [d for d in api.store.deliveries_for_user("user-0") if d.node_id == "cart_push"]
    assert push.opened_at is not None
    assert push.clicked_at is not None
    assert list(deliveries.loc["cart_push", ["opened", "clicked"]]) == [
        push.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        push.clicked_at.strftime("%Y-%m-%d %H:%M UTC"),
    ]
    assert list(deliveries.loc["urgency_email", ["opened", "clicked"]]) == ["no", "no"]
    # Only a mail privacy proxy opened user-1's email: not an open.
    app.text_input(key="users.id").input("user-1").run()
    deliveries = app.dataframe[-1].value.set_index("step")
    assert deliveries.loc["urgency_email", "opened"] == "no"

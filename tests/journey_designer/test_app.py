"""The designer's pages driven by Streamlit's app tester against the real API on loopback."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from api_client import ApiClient
from cli.main import designer_argv
from journeys.store import Store
from tests.api.helpers import ADMIN_TOKEN
from tests.conftest import run_journeys
from tests.factories import append_event, enroll, mark_converted, merge_traits, move, set_variant
from tests.journey_designer.conftest import APP, LiveApi, free_port
from tests.journey_designer.documents import example
from tests.journey_designer.helpers import (
    at_path,
    button,
    chart_rows,
    charts,
    choose,
    errors,
    ok,
    open_in_editor,
    start,
    texts,
)

EDITOR = "views/editor.py"


def create_from_gallery(key: str, name: str) -> AppTest:
    """Journeys page → gallery → name → create: the editor with the new journey."""
    app = start()
    app.button(key=f"gallery:{key}").click().run()
    app.text_input(key="journeys.name").input(name)
    app.button(key="FormSubmitter:journeys.create-Create and open in the editor").click().run()
    return ok(app)


def test_create_from_the_gallery_edit_save_and_publish(api: LiveApi) -> None:
    app = create_from_gallery("abandoned-cart", "Cart rescue")
    assert app.title[0].value == "Cart rescue"
    stored = api.store.get_journey("cart-rescue")
    assert stored is not None
    assert stored.status == "draft"
    assert stored.draft["nodes"]["wait_checkout"]["on_timeout"] == "by_cart_value"
    assert "The journey is valid." in texts(app)

    choose(app.selectbox(key="editor.node"), "vip_email").run()
    at_path(app.text_input, "nodes.vip_email.content.subject").input(
        "Come back, {{ user.first_name }}"
    ).run()
    assert "unsaved changes" in app.caption[0].value
    button(app, "Save draft").click().run()
    ok(app)
    assert "Draft saved" in texts(app)
    stored = api.store.get_journey("cart-rescue")
    assert stored is not None
    assert stored.draft["nodes"]["vip_email"]["content"]["subject"] == (
        "Come back, {{ user.first_name }}"
    )

    button(app, "Publish…").click().run()
    assert "Publish version 1?" in texts(app)
    assert "users already inside: they keep the version they entered with" in texts(app)
    button(app, "Yes, publish").click().run()
    ok(app)
    assert "Published version 1" in texts(app)
    stored = api.store.get_journey("cart-rescue")
    assert stored is not None
    assert (stored.status, stored.version) == ("live", 1)
    assert "status **live** · published version 1" in app.caption[0].value

    # A second version: the confirmation says what happens to users already inside.
    at_path(app.text_input, "nodes.vip_email.content.subject").input("Last call").run()
    button(app, "Publish…").click().run()
    assert "Publish version 2? New entries get it. Users already inside keep the version" in (
        texts(app)
    )
    button(app, "Yes, publish").click().run()
    stored = api.store.get_journey("cart-rescue")
    assert stored is not None
    assert stored.version == 2

    # The history says who published each version, and compares versions, and a version
    # with the editor's draft.
    history = next(d.value for d in app.dataframe if "published by" in d.value.columns)
    assert list(history["published by"]) == ["bootstrap", "bootstrap"]
    choose(app.selectbox(key="editor.diff.a"), "version 1").run()
    choose(app.selectbox(key="editor.diff.b"), "version 2").run()
    diff = app.code[0].value
    assert '-        "subject": "Come back, {{ user.first_name }}"' in diff
    assert '+        "subject": "Last call"' in diff
    choose(app.selectbox(key="editor.diff.a"), "version 2").run()
    choose(app.selectbox(key="editor.diff.b"), "the editor's draft").run()
    assert "No differences." in texts(app)


def test_validation_problems_show_beside_their_fields_and_block_saving(api: LiveApi) -> None:
    app = create_from_gallery("blank", "Welcome")
    at_path(app.text_input, "nodes.first_message.content.subject").input("Hi {{ user.name").run()
    at_path(app.text_input, "entry.event").input("").run()
    ok(app)
    shown = errors(app)
    assert any(e.startswith("2 problem(s) to fix") for e in shown)
    # Beside the fields: the error elements follow the widgets they concern.
    assert any("template does not parse" in e for e in shown)
    assert any("at least 1 character" in e for e in shown)
    assert "first_message" in app.get("graphviz_chart")[0].proto.spec
    assert '"first_message" [shape=box, fillcolor="#dbeafe", label=' in (
        app.get("graphviz_chart")[0].proto.spec
    )
    assert 'color="#dc2626"' in app.get("graphviz_chart")[0].proto.spec  # outlined red

    button(app, "Save draft").click().run()
    ok(app)
    refused = [e for e in errors(app) if e.startswith("Could not save the draft.")]
    assert refused
    assert "`nodes.first_message.content.subject: template does not parse" in (refused[0])
    stored = api.store.get_journey("welcome")
    assert stored is not None
    assert stored.draft["entry"] == {"event": "Signed Up"}


def test_add_rename_reconnect_and_delete_steps(api: LiveApi) -> None:
    app = create_from_gallery("blank", "Steps")
    # Add an SMS step after the first message (the default place: after the selected step).
    choose(app.selectbox(key="editor.add.type"), "Wait (a duration").run()
    app.text_input(key="editor.add.id").input("pause")
    button(app, "Add step").click().run()
    ok(app)
    document = app.session_state["journey"]
    assert document["nodes"]["first_message"]["next"] == "pause"
    assert document["nodes"]["pause"] == {"type": "delay", "duration": "1d"}
    assert app.selectbox(key="editor.node").value == "pause"

    at_path(app.text_input, "nodes.pause.duration").input("3h").run()
    app.text_input(key="editor.rename:pause").input("short_pause")
    button(app, "Rename").click().run()
    ok(app)
    document = app.session_state["journey"]
    assert document["nodes"]["first_message"]["next"] == "short_pause"
    assert document["nodes"]["short_pause"]["duration"] == "3h"

    # A second message, reconnected by hand from the pause.
    choose(app.selectbox(key="editor.add.type"), "Send a message").run()
    choose(app.selectbox(key="editor.add.edge"), "not connected").run()
    app.text_input(key="editor.add.id").input("follow_up")
    button(app, "Add step").click().run()
    assert "unreachable from start" in texts(app)
    choose(at_path(app.selectbox, "nodes.follow_up.channel"), "SMS").run()
    choose(app.selectbox(key="editor.node"), "short_pause").run()
    choose(at_path(app.selectbox, "nodes.short_pause.next"), "follow_up").run()
    ok(app)
    assert "The journey is valid." in texts(app)
    document = app.session_state["journey"]
    assert document["nodes"]["follow_up"]["channel"] == "sms"
    assert set(document["nodes"]["follow_up"]["content"]) == {"body"}

    button(app, "Delete step").click().run()
    document = app.session_state["journey"]
    assert "short_pause" not in document["nodes"]
    assert document["nodes"]["first_message"]["next"] == "follow_up"
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("steps")
    assert stored is not None
    assert set(stored.draft["nodes"]) == {"first_message", "follow_up"}


def test_the_condition_builder_edits_branch_paths(api: LiveApi) -> None:
    app = open_in_editor(api.store, example("abandoned-cart"))
    choose(app.selectbox(key="editor.node"), "by_cart_value").run()
    base = "nodes.by_cart_value.paths[0].when"
    at_path(app.text_input, f"{base}.value").input("250").run()
    # Make it a group, and add a second condition to it.
    choose(at_path(app.selectbox, f"{base}.<kind>"), "All of these").run()
    at_path(app.button, f"$#add:{base}.all").click().run()
    at_path(app.text_input, f"{base}.all[1].field").input("user.plan").run()
    choose(at_path(app.selectbox, f"{base}.all[1].op"), "is one of").run()
    at_path(app.text_input, f"{base}.all[1].value").input("pro, team").run()
    ok(app)
    document = app.session_state["journey"]
    assert document["nodes"]["by_cart_value"]["paths"][0]["when"] == {
        "all": [
            {"field": "entry.total_price", "op": "gte", "value": 250},
            {"field": "user.plan", "op": "in", "value": ["pro", "team"]},
        ]
    }
    # A segment condition picks from the stored segments.
    api.store.put_segment("vip", "VIP customers", {"field": "user.vip", "op": "eq", "value": True})
    app.run()
    choose(at_path(app.selectbox, f"{base}.all[1].<kind>"), "Is in a segment").run()
    document = app.session_state["journey"]
    assert document["nodes"]["by_cart_value"]["paths"][0]["when"]["all"][1] == {"segment": "vip"}
    button(app, "Save draft").click().run()
    ok(app)
    stored = api.store.get_journey("abandoned-cart")
    assert stored is not None
    assert stored.draft["nodes"]["by_cart_value"]["paths"][0]["when"]["all"][1] == {
        "segment": "vip"
    }


def test_entry_goal_and_settings_forms(api: LiveApi) -> None:
    app = create_from_gallery("blank", "Forms")
    at_path(app.text_input, "entry.event").input("Order Completed").run()
    at_path(app.checkbox, "entry.where?").check().run()
    at_path(app.text_input, "entry.where.field").input("event.total").run()
    choose(at_path(app.selectbox, "entry.where.op"), ">").run()
    at_path(app.text_input, "entry.where.value").input("50").run()
    choose(at_path(app.selectbox, "entry.<reentry>"), "Yes, once").run()
    at_path(app.text_input, "entry.reentry").input("30d").run()
    button(app, "Add an exit rule").click().run()
    at_path(app.text_input, "exit[0].event").input("Account Deleted").run()
    at_path(app.checkbox, "goal?").check().run()
    at_path(app.text_input, "goal.within").input("14d").run()
    choose(at_path(app.selectbox, "settings.timezone"), "Europe/Paris").run()
    at_path(app.checkbox, "settings.quiet_hours?").check().run()
    choose(at_path(app.selectbox, "settings.quiet_hours.action"), "are skipped").run()
    ok(app)
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("forms")
    assert stored is not None
    draft = stored.draft
    assert draft["entry"] == {
        "event": "Order Completed",
        "where": {"field": "event.total", "op": "gt", "value": 50},
        "reentry": "30d",
    }
    assert draft["exit"] == [{"event": "Account Deleted"}]
    assert draft["goal"] == {"event": "Order Completed", "within": "14d"}
    assert draft["settings"] == {
        "timezone": "Europe/Paris",
        "quiet_hours": {"start": "22:00", "end": "08:00", "action": "skip"},
    }


def test_a_page_entry_and_an_anchored_tooltip(api: LiveApi) -> None:
    app = create_from_gallery("checkout-help", "Pay help")
    assert at_path(app.selectbox, "entry.<kind>").value == "page"
    at_path(app.text_input, "entry.page").input("Cart").run()
    choose(app.selectbox(key="editor.node"), "offer_help").run()
    at_path(app.text_input, "nodes.offer_help.content.anchor").input("form .pay").run()
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("pay-help")
    assert stored is not None
    assert stored.draft["entry"] == {
        "page": "Cart",
        "reentry": "1d",
        "limit": {"count": 500, "per": "1d"},
    }
    assert stored.draft["nodes"]["offer_help"]["content"]["anchor"] == "form .pay"

    # Another kind points at nothing: the anchor goes with the tooltip.
    choose(at_path(app.selectbox, "nodes.offer_help.content.kind"), "banner").run()
    assert not [w for w in app.text_input if str(w.key).endswith("content.anchor")]
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("pay-help")
    assert stored is not None
    content = stored.draft["nodes"]["offer_help"]["content"]
    assert (content["kind"], "anchor" in content) == ("banner", False)
    choose(at_path(app.selectbox, "entry.<kind>"), "they perform an event").run()
    assert at_path(app.text_input, "entry.event").value == "Signed Up"


def test_message_preview_for_a_sample_context_and_a_real_user(api: LiveApi) -> None:
    merge_traits(api.store, "ada", {"first_name": "Ada", "email": "ada@example.com"})
    app = open_in_editor(api.store, example("abandoned-cart"))
    choose(app.selectbox(key="editor.preview.node"), "vip_email").run()
    app.radio(key="preview:vip_email:who").set_value("sample").run()
    button(app, "Render preview").click().run()
    ok(app)
    shown = texts(app)
    assert "**Subject:** Ada, your cart is on us \\(almost\\)" in shown
    assert any("You left 2 items worth $129.9" in t.value for t in app.text)

    app.radio(key="preview:vip_email:who").set_value("user").run()
    app.text_input(key="preview:vip_email:user").input("ada").run()
    button(app, "Render preview").click().run()
    assert "**Subject:** Ada, your cart is on us" in texts(app)

    choose(app.selectbox(key="editor.preview.node"), "cart_push").run()
    app.radio(key="preview:cart_push:who").set_value("sample").run()
    button(app, "Render preview").click().run()
    assert ":material/notifications: Push notification · now" in texts(app)
    assert "**Your cart misses you**" in texts(app)

    app.radio(key="preview:cart_push:who").set_value("user").run()
    app.text_input(key="preview:cart_push:user").input("nobody").run()
    button(app, "Render preview").click().run()
    assert "Could not render the preview. Not found: no user 'nobody'" in errors(app)


def test_in_app_preview_by_kind(api: LiveApi) -> None:
    app = open_in_editor(api.store, example("onboarding"))
    for node_id, marker in (
        ("pro_tips", ":material/lightbulb: Tooltip"),
        ("team_invite", ":material/web_asset: In-app modal"),
    ):
        choose(app.selectbox(key="editor.preview.node"), node_id).run()
        app.radio(key=f"preview:{node_id}:who").set_value("sample").run()
        button(app, "Render preview").click().run()
        ok(app)
        assert marker in texts(app)
    assert [b.label for b in app.button if b.disabled and b.label.startswith("Invite")] == [
        "Invite teammates"
    ]


def test_pause_resume_and_archive_with_confirmation(api: LiveApi) -> None:
    document = example("browse-abandonment")
    api.store.save_draft(document["id"], document)
    api.store.publish(document["id"])
    app = open_in_editor(api.store, document)
    button(app, "Pause").click().run()
    assert api.store.get_journey(document["id"]).status == "paused"  # type: ignore[union-attr]
    assert "is now paused" in texts(app)
    button(app, "Resume").click().run()
    assert api.store.get_journey(document["id"]).status == "live"  # type: ignore[union-attr]
    button(app, "Archive…").click().run()
    assert "every user inside (0 now) leaves the journey at once" in texts(app)
    button(app, "Cancel").click().run()
    assert api.store.get_journey(document["id"]).status == "live"  # type: ignore[union-attr]
    button(app, "Archive…").click().run()
    button(app, "Yes, archive").click().run()
    ok(app)
    assert api.store.get_journey(document["id"]).status == "archived"  # type: ignore[union-attr]
    assert api.routing.archived == [document["id"]]


def test_json_import_and_export(api: LiveApi) -> None:
    app = create_from_gallery("blank", "Imported")
    assert [b.proto.label for b in app.get("download_button")] == ["Export JSON"]
    imported = example("win-back")
    app.text_area(key="editor.paste").input(json.dumps(imported)).run()
    button(app, "Import").click().run()
    ok(app)
    assert "Imported. Check it, then save the draft." in texts(app)
    document = app.session_state["journey"]
    assert document["id"] == "imported"
    assert set(document["nodes"]) == set(imported["nodes"])
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("imported")
    assert stored is not None
    assert stored.draft["nodes"] == imported["nodes"]


def test_the_publish_confirmation_checks_what_publishing_checks(api: LiveApi) -> None:
    # The win-back example enters on a segment nobody stored: valid to save, not to publish.
    app = open_in_editor(api.store, example("win-back"))
    assert "The journey is valid." in texts(app)
    button(app, "Publish…").click().run()
    ok(app)
    shown = errors(app)
    assert any(e.startswith("Not publishable yet: 1 problem(s)") for e in shown)
    assert any(e.startswith("1 problem(s) to fix before publishing") for e in shown)
    # Beside its field: the entry's segment picker (the message alone, no path).
    assert "unknown segment 'inactive-7d'" in shown
    assert "- `entry.segment`: unknown segment 'inactive-7d'" in texts(app)
    assert not [b for b in app.button if b.label == "Yes, publish"]
    assert api.store.get_journey("win-back").version is None  # type: ignore[union-attr]

    # Once the segment exists, the same confirmation offers to publish.
    api.store.put_segment("inactive-7d", "Inactive", {"field": "user.email", "op": "exists"})
    app.run()
    assert not any("unknown segment" in e for e in errors(app))
    assert "Publish version 1?" in texts(app)
    button(app, "Yes, publish").click().run()
    ok(app)
    assert "Published version 1" in texts(app)
    assert api.store.get_journey("win-back").version == 1  # type: ignore[union-attr]
    # Cancelled, the editor checks as saving does again.
    button(app, "Publish…").click().run()
    button(app, "Cancel").click().run()
    assert "The journey is valid." in texts(app)


def test_segments_page_counts_as_you_edit_then_saves_and_counts(api: LiveApi) -> None:
    for user_id, plan in (("u1", "pro"), ("u2", "pro"), ("u3", "free")):
        merge_traits(api.store, user_id, {"plan": plan})
    app = start("views/segments.py")
    assert metrics(app) == {"Users matching this condition now": "0"}  # nobody has an email
    at_path(app.text_input, "id").input("pro-users").run()
    at_path(app.text_input, "name").input("Pro users").run()
    at_path(app.text_input, "condition.all[0].field").input("user.plan").run()
    choose(at_path(app.selectbox, "condition.all[0].op"), "=").run()
    at_path(app.text_input, "condition.all[0].value").input("pro").run()
    ok(app)
    # Counted before saving.
    assert metrics(app) == {"Users matching this condition now": "2"}
    assert api.store.get_segment("pro-users") is None

    # A bad field: no count, the problem beside the field, no message about the API.
    at_path(app.text_input, "condition.all[0].field").input("plan").run()
    ok(app)
    assert "Users matching this condition now" not in metrics(app)
    assert "Fix the condition to see how many users match it." in texts(app)
    assert errors(app) == ["bad field 'plan': use a dotted path in user.*, entry.* or event.*"]
    at_path(app.text_input, "condition.all[0].field").input("user.plan").run()
    assert errors(app) == []

    button(app, "Save segment").click().run()
    ok(app)
    stored = api.store.get_segment("pro-users")
    assert stored is not None
    assert stored.name == "Pro users"
    assert stored.condition == {"all": [{"field": "user.plan", "op": "eq", "value": "pro"}]}
    assert "Segment 'pro-users' saved." in texts(app)
    assert metrics(app)["Members of the saved segment"] == "2"

    # Edited but not saved: the live count follows the edit, the saved count the saved one.
    at_path(app.text_input, "condition.all[0].value").input("free").run()
    assert metrics(app) == {
        "Users matching this condition now": "1",
        "Members of the saved segment": "2",
    }
    assert "The condition has unsaved changes: this counts the saved one." in texts(app)
    merge_traits(api.store, "u3", {"plan": "pro"})
    button(app, "Count members").click().run()
    assert metrics(app) == {
        "Users matching this condition now": "0",
        "Members of the saved segment": "3",
    }


def test_prediction_traits_are_suggested_in_the_condition_builder(api: LiveApi) -> None:
    for user_id, score in (("u1", 0.91), ("u2", 0.72), ("u3", 0.1)):
        merge_traits(api.store, user_id, {"predicted_conversion": score})
    merge_traits(api.store, "u4", {"plan": "pro"})
    app = start("views/segments.py")
    suggestions = at_path(app.selectbox, "condition.all[0].field?suggested")
    assert [o.split(" — ")[0] for o in suggestions.options] == [
        "user.predicted_conversion", "user.preferred_channel", "user.most_active_hour",
    ]  # fmt: skip
    choose(suggestions, "user.predicted_conversion").run()
    ok(app)
    assert app.session_state["segment"]["condition"] == {
        "all": [{"field": "user.predicted_conversion", "op": "gte", "value": 0.7}]
    }
    # The row shows it (its widgets rebuilt), and the live count follows.
    assert at_path(app.text_input, "condition.all[0].field").value == "user.predicted_conversion"
    assert at_path(app.text_input, "condition.all[0].value").value == "0.7"
    assert metrics(app)["Users matching this condition now"] == "2"


def metrics(app: AppTest) -> dict[str, str]:
    """Every metric on the page, by label."""
    return {m.label: m.value for m in app.metric}


def seed_activity(store: Store) -> None:
    """A published abandoned-cart journey with users through it."""
    document = example("abandoned-cart")
    store.save_draft(document["id"], document)
    store.publish(document["id"])
    now = datetime.now(UTC)
    merge_traits(store, "ada", {"first_name": "Ada", "email": "ada@example.com"})
    append_event(
        store, message_id="m-1", user_id="ada", type="track", name="Added to Cart",
        properties={"total_price": 120}, timestamp=now,
    )  # fmt: skip
    for i, variant in enumerate(["urgency", "urgency", "friendly", "control"]):
        user_id = "ada" if i == 0 else f"user-{i}"
        enrollment = f"e-{i}"
        enroll(
            store, enrollment_id=enrollment, user_id=user_id, journey_id=document["id"], version=1,
            workflow_id=f"journey:{document['id']}:{user_id}", entered_at=now,
        )  # fmt: skip
        for node in ("wait_checkout", "by_cart_value", "copy_test"):
            move(store, enrollment, node, now)
        set_variant(store, enrollment, variant)
        if variant == "urgency":
            move(store, enrollment, "urgency_email", now)
            key = f"{enrollment}:urgency_email"
            store.begin_delivery(
                idempotency_key=key, journey_id=document["id"], version=1,
                node_id="urgency_email", user_id=user_id, channel="email", variant=variant,
                content={"subject": "Items in your cart are selling out"},
            )  # fmt: skip
            store.finish_delivery(
                key, "sent" if i == 0 else "skipped", None if i == 0 else "quiet hours"
            )
        if i == 0:
            mark_converted(store, enrollment, now)


def test_analytics_page(api: LiveApi) -> None:
    seed_activity(api.store)
    app = start("views/analytics.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Entered"] == "4"
    assert metrics["Converted"] == "1"
    assert metrics["Goal conversion"] == "25.0%"
    spec = app.get("graphviz_chart")[0].proto.spec
    assert "copy_test\\nexperiment\\nreached 4 · waiting 2" in spec
    deliveries = app.dataframe[0].value
    row = deliveries[deliveries["step"] == "urgency_email"].iloc[0]
    assert (row["sent"], row["skipped"], row["failed"]) == (1, 1, 0)


def test_analytics_experiments_show_the_api_figures_and_the_winner_rule(api: LiveApi) -> None:
    seed_activity(api.store)  # copy_test: urgency 1 of 2 converted, friendly 0 of 1, control 0
    app = start("views/analytics.py")
    with ApiClient(api.url, admin_token=ADMIN_TOKEN) as client:
        stats = client.stats("abandoned-cart")["experiments"]["copy_test"]
    variants = app.dataframe[1].value.set_index("variant")
    assert list(variants.index) == ["urgency", "friendly", "control"]
    assert (variants.loc["urgency", ["users", "conversions", "rate"]] == [2, 1, 0.5]).all()
    # The interval is the API's (not recomputed here).
    low, high = stats["variants"]["urgency"]["interval"]
    assert (variants.loc["urgency", "95% CI low"], variants.loc["urgency", "95% CI high"]) == (
        low, high,
    )  # fmt: skip
    shown = texts(app)
    assert f"p-value {stats['p_value']:.3g}: the chance of a difference this large" in shown
    assert "it may still be chance" in shown
    assert "**No winner yet.**" in shown
    # min_users 500, no look yet: the smallest variant (1 user) needs 500 for the first look.
    (progress,) = app.get("progress")
    assert progress.proto.value == 0  # 1 of 500, rounded down to 0 %
    assert "the smallest variant has 1 of the 500 users it needs" in progress.proto.text
    assert "at p < 0.025" in shown
    assert "0 look(s) so far" in shown

    # A look that found nothing: the next one needs twice the users, at half the p.
    api.store.record_experiment_look(
        "abandoned-cart", "copy_test", after_looks=0, looks=1, winner=None, p_value=0.3
    )
    app.run()
    (progress,) = app.get("progress")
    assert "1 of the 1000 users it needs" in progress.proto.text
    assert "at p < 0.0125" in texts(app)

    # Then a winner: highlighted, with when it was picked; no more progress.
    decision = api.store.record_experiment_look(
        "abandoned-cart", "copy_test", after_looks=1, looks=2, winner="urgency", p_value=0.001
    )
    app.run()
    ok(app)
    assert "urgency (winner)" in list(app.dataframe[1].value["variant"])
    assert decision.decided_at is not None
    picked = decision.decided_at.strftime("%Y-%m-%d %H:%M")
    assert f"Winner: **urgency**, picked {picked} UTC. Every new arrival now takes it." in [
        m.value for m in app.success
    ]
    assert not app.get("progress")
    assert "No winner yet" not in texts(app)


def test_analytics_of_an_unpublished_journey_says_so(api: LiveApi) -> None:
    api.store.save_draft("draft-only", example("win-back") | {"id": "draft-only"})
    app = start("views/analytics.py")
    assert "has not been published yet" in texts(app)


def test_users_page(api: LiveApi) -> None:
    seed_activity(api.store)
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    ok(app)
    assert json.loads(app.json[0].value) == {"first_name": "Ada", "email": "ada@example.com"}
    events, journeys, deliveries = (frame.value for frame in app.dataframe)
    assert list(events["event"]) == ["Added to Cart"]
    assert journeys.iloc[0]["current step"] == "urgency_email"
    assert journeys.iloc[0]["workflow"] == (
        "http://127.0.0.1:8233/namespaces/default/workflows/journey%3Aabandoned-cart%3Aada"
    )
    assert deliveries.iloc[0]["status"] == "sent"
    assert "No predictions for this user yet" in texts(app)
    assert not app.metric
    app.text_input(key="users.id").input("ghost").run()
    assert "Could not look up 'ghost'. Not found: no user 'ghost'" in errors(app)


def test_users_page_shows_prediction_traits_first(api: LiveApi) -> None:
    merge_traits(
        api.store, "grace",
        {"plan": "pro", "predicted_conversion": 0.734, "preferred_channel": "push",
         "most_active_hour": 19},
    )  # fmt: skip
    app = start("views/users.py")
    app.text_input(key="users.id").input("grace").run()
    ok(app)
    assert [(m.label, m.value) for m in app.metric] == [
        ("Predicted conversion", "73%"),
        ("Preferred channel", "push"),
        ("Most active hour", "19:00"),
    ]
    assert "most active around 19:00 (their time)" in texts(app)
    # Above the raw traits, which still hold everything.
    order = [type(e).__name__ for e in app.main if type(e).__name__ in ("Metric", "Json")]
    assert order == ["Metric", "Metric", "Metric", "Json"]
    assert json.loads(app.json[0].value)["predicted_conversion"] == 0.734


def test_predictions_page_before_the_first_run(api: LiveApi) -> None:
    app = start("views/predictions.py")
    assert app.title[0].value == "Predictions"
    assert "No prediction run yet, so no profile has prediction traits." in texts(app)
    assert "every night at 03:00 UTC" in texts(app)
    assert "`journeys predict`" in texts(app)
    assert not app.metric


def report(at: str, **fields: Any) -> dict[str, Any]:
    """A prediction run's report, as the nightly run records it."""
    return {
        "trained_at": at, "horizon_days": 7, "status": "trained", "users_scored": 1200,
        "training_users": 900, "converters": 140, "held_out_users": 300, "auc": 0.78,
        "coefficients": {"cart_adds_30d": 0.9, "days_since_last_event": -1.2, "purchases": 0.3},
        "message": "",
    } | fields  # fmt: skip


def test_predictions_page_shows_quality_drivers_and_history(api: LiveApi) -> None:
    api.store.record_prediction_run(report("2026-04-29T03:00:00+00:00", auc=0.64))
    api.store.record_prediction_run(report("2026-04-30T03:00:00+00:00", auc=0.71))
    api.store.record_prediction_run(report("2026-05-01T03:00:00+00:00"))
    app = start("views/predictions.py")
    ok(app)
    assert (
        "**Latest run:** 2026-05-01 03:00 UTC · trained · predicts conversion within 7 days"
        in texts(app)
    )
    figures = {m.label: m.value for m in app.metric}
    assert figures == {
        "Model quality (AUC)": "0.78", "Users scored": "1200", "Training users": "900",
        "Held-out users": "300", "Converters": "140",
    }  # fmt: skip
    assert "AUC 0.78: good: given a user who converted and one who did not" in texts(app)
    assert "(0.5 is a coin toss, 1.0 perfect)" in texts(app)
    drivers, quality = charts(app)
    # What drives the score: every coefficient, strongest pull up first.
    assert chart_rows(drivers) == [
        {"feature": "cart_adds_30d", "weight": 0.9},
        {"feature": "purchases", "weight": 0.3},
        {"feature": "days_since_last_event", "weight": -1.2},
    ]
    # The AUC of past runs over time, oldest first.
    assert [row["AUC"] for row in chart_rows(quality)] == [0.64, 0.71, 0.78]
    assert len(app.dataframe[0].value) == 3
    assert "03:00 UTC" in texts(app)


def test_predictions_page_when_there_was_not_enough_data(api: LiveApi) -> None:
    api.store.record_prediction_run(
        report(
            "2026-05-02T03:00:00+00:00", status="not enough data", auc=None, coefficients={},
            training_users=12, converters=2, held_out_users=0,
            message="only 2 converters: 10 of each kind are needed",
        )
    )  # fmt: skip
    app = start("views/predictions.py")
    ok(app)
    assert [w.value for w in app.warning] == ["only 2 converters: 10 of each kind are needed"]
    assert "2026-05-02 03:00 UTC · not enough data · predicts conversion within 7" in texts(app)
    figures = {m.label: m.value for m in app.metric}
    assert (figures["Model quality (AUC)"], figures["Converters"]) == ("—", "2")
    assert not charts(app)


def test_journeys_list_shows_status_version_and_figures(api: LiveApi) -> None:
    seed_activity(api.store)
    api.store.save_draft("draft-only", example("win-back") | {"id": "draft-only"})
    app = start()
    table = app.dataframe[0].value.set_index("id")
    assert table.loc["abandoned-cart", "status"] == "live"
    assert table.loc["abandoned-cart", "version"] == 1
    assert (table.loc["abandoned-cart", ["entered", "active", "converted"]] == [4, 4, 1]).all()
    assert table.loc["draft-only", "status"] == "draft"
    button(app, "Analytics").click().run()
    ok(app)
    assert app.title[0].value == "Analytics"


def test_an_unreachable_api_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("JOURNEYS_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "admin")
    app = ok(AppTest.from_file(str(APP), default_timeout=30).run())
    (message,) = errors(app)
    assert f"cannot reach the API at http://127.0.0.1:{port}" in message
    assert "journeys up" in message


def test_a_refused_token_is_a_message(api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_ADMIN_TOKEN", "wrong")
    app = start()
    assert "refused the admin token: check JOURNEYS_ADMIN_TOKEN" in errors(app)[0]


def test_without_the_admin_token_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_ADMIN_TOKEN", raising=False)
    app = ok(AppTest.from_file(str(APP), default_timeout=30).run())
    assert "the designer needs JOURNEYS_ADMIN_TOKEN" in errors(app)[0]


def test_journeys_designer_without_the_admin_token_refuses_to_start() -> None:
    result = run_journeys("designer", "--port", "1", clean=True)
    assert result.returncode == 2
    assert "journeys: the designer needs JOURNEYS_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_designer_command_line_serves_streamlit_headless_on_loopback() -> None:
    argv = designer_argv(8765)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == APP
    assert argv[5:] == [
        "--server.port", "8765",
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def test_every_step_type_has_a_working_form(api: LiveApi) -> None:
    document = example("onboarding")
    document["nodes"]["tips_email"]["next"] = "split"
    document["nodes"]["split"] = {
        "type": "experiment",
        "variants": [{"name": "a", "weight": 50, "next": "quiet"}, {"name": "b", "weight": 50}],
    }
    document["nodes"]["quiet"] = {"type": "wait_for_inactivity", "duration": "1d", "next": "hook"}
    document["nodes"]["hook"] = {
        "type": "message", "channel": "webhook", "next": "done",
        "content": {"url": "https://crm.example.com/{{ user.id }}", "body": {"k": "v"}},
    }  # fmt: skip
    app = open_in_editor(api.store, document)

    choose(app.selectbox(key="editor.node"), "tag_pro").run()
    base = "nodes.tag_pro.set"
    at_path(app.text_input, f"{base}.lifecycle_stage").input("onboarded").run()
    at_path(app.button, "$#add:nodes.tag_pro.set").click().run()
    at_path(app.text_input, "nodes.tag_pro.unset").input("a, b").run()

    choose(app.selectbox(key="editor.node"), "tips_morning").run()
    at_path(app.multiselect, "nodes.tips_morning.until.weekdays").select("mon").run()
    choose(at_path(app.selectbox, "nodes.tips_morning.until.<time>"), "the user's most").run()
    assert "most active in their event history (the last 90 days, in their time zone)" in (
        texts(app)
    )
    assert "fewer than 5 events) or two hours tie, it waits until the fallback time" in texts(app)

    choose(app.selectbox(key="editor.node"), "wait_profile").run()
    at_path(app.button, "$#add:nodes.wait_profile.paths").click().run()
    at_path(app.text_input, "nodes.wait_profile.paths[1].event").input("Account Deleted").run()

    choose(app.selectbox(key="editor.node"), "split").run()
    at_path(app.number_input, "nodes.split.variants[1].weight").set_value(45).run()
    assert "weights sum to 95, not 100" in errors(app)
    at_path(app.number_input, "nodes.split.variants[1].weight").set_value(50).run()
    at_path(app.checkbox, "nodes.split.winner?").check().run()

    choose(app.selectbox(key="editor.node"), "quiet").run()
    at_path(app.text_input, "nodes.quiet.events").input("Page Viewed, Order Completed").run()

    choose(app.selectbox(key="editor.node"), "hook").run()
    at_path(app.text_area, "nodes.hook.content.headers").input('{"X-Key": "1"}').run()
    ok(app)
    assert "The journey is valid." in texts(app)

    node = app.session_state["journey"]["nodes"]
    assert node["tag_pro"]["set"]["lifecycle_stage"] == "onboarded"
    assert node["tag_pro"]["set"]["trait_1"] == ""
    assert node["tag_pro"]["unset"] == ["a", "b"]
    assert node["tips_morning"]["until"] == {
        "time": "optimal", "fallback": "10:00", "weekdays": ["tue", "wed", "thu", "mon"],
        "timezone": "user",
    }  # fmt: skip
    assert node["wait_profile"]["paths"][1] == {"event": "Account Deleted", "next": None}
    assert node["split"]["winner"] == {"after": "14d", "min_users": 100}
    assert node["quiet"]["events"] == ["Page Viewed", "Order Completed"]
    assert node["hook"]["content"]["headers"] == {"X-Key": "1"}
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("onboarding")
    assert stored is not None
    assert stored.draft["nodes"] == node

"""The designer's pure parts: gallery documents, the DOT graph, document edits, statistics."""

from __future__ import annotations

from typing import Any

import pytest

from journey_designer.conditions import convert
from journey_designer.document import (
    MessageStep,
    add_node,
    delete_node,
    describe,
    earlier,
    engagement_sources,
    flow_order,
    message_steps,
    new_node,
    parse_value,
    problem_nodes,
    rename_node,
    tracked,
    tracked_by_default,
)
from journey_designer.forms.messages import TRACKING
from journey_designer.gallery import ORDER, gallery, slugify, starting_point
from journey_designer.graph import journey_dot, message_line, short_percent
from journey_designer.stats import (
    auc_reading,
    engaged,
    funnel,
    hour_of_day,
    locale_rows,
    message_rows,
    next_look,
    percent,
    variant_rows,
    when,
)
from journeys.engagement import TRACKED_CHANNELS
from journeys.experiments import Counts, wilson_interval
from journeys.validation import validate
from tests.journey_designer.documents import engagement_journey, example


@pytest.mark.parametrize("key", ORDER)
def test_every_gallery_document_is_a_valid_journey(key: str) -> None:
    document = gallery()[key]
    assert validate(document) == []
    # Self-contained: publishable on a fresh install (no segments or templates to create first).
    assert validate(document, segments=set(), templates_known=set()) == []
    assert document["description"]


def test_a_starting_point_takes_the_new_id_and_name() -> None:
    document = starting_point("abandoned-cart", "cart-eu", "Cart (EU)")
    assert (document["id"], document["name"]) == ("cart-eu", "Cart (EU)")
    assert gallery()["abandoned-cart"]["id"] == "abandoned-cart"  # the gallery is not changed
    assert slugify("Abandoned cart (EU) ") == "abandoned-cart-eu"
    assert slugify("!!!") == "journey"


@pytest.mark.parametrize("node_type", ["message", "delay", "wait_for_event",
                                       "wait_for_inactivity", "branch", "experiment",
                                       "update_user", "exit"])  # fmt: skip
def test_a_new_node_of_every_type_is_valid(node_type: str) -> None:
    document = {"id": "j", "name": "J", "entry": {"event": "E"}, "start": "n",
                "nodes": {"n": new_node(node_type)}}  # fmt: skip
    assert validate(document) == []


def test_the_graph_draws_shapes_and_labels_every_way_out() -> None:
    dot = journey_dot(example("abandoned-cart"))
    assert dot.startswith("digraph journey {")
    assert dot.endswith("}")
    assert '"wait_checkout" [shape=hexagon' in dot
    assert '"by_cart_value" [shape=diamond' in dot
    assert '"vip_email" [shape=box' in dot
    assert '"copy_test" [shape=trapezium' in dot
    assert '"pause_before_push" [shape=ellipse' in dot
    assert '__entry__ -> "wait_checkout";' in dot
    assert '"wait_checkout" -> __end__ [label="Checkout Started"];' in dot
    assert '"wait_checkout" -> "by_cart_value" [label="after 24h", style=dashed];' in dot
    assert '"by_cart_value" -> "vip_email" [label="if entry.total_price ≥ 200"];' in dot
    assert '"by_cart_value" -> "gentle_reminder" [label="else"];' in dot
    assert '"copy_test" -> "urgency_email" [label="urgency 45%"];' in dot
    assert '"copy_test" -> __end__ [label="control 10%"];' in dot
    assert '"vip_email" -> "vip_push" [label="on failure", style=dashed' in dot
    assert "__end__ [shape=circle" in dot


def test_the_graph_shows_stats_problems_and_missing_nodes() -> None:
    document = example("win-back")
    document["nodes"]["has_phone"]["else"] = "nowhere"
    dot = journey_dot(
        document,
        stats={"offer_email": {"reached": 12, "waiting": 3}},
        flagged={"has_phone"},
        selected="wait_order",
    )
    assert "offer_email\\nemail: We miss you, {{ user.fi…\\nreached 12 · waiting 3" in dot
    assert '"has_phone" -> "missing:nowhere" [label="else"];' in dot
    assert '"missing:nowhere" [shape=box, style=dashed, color="#dc2626"' in dot
    assert 'label="has_phone\\nbranch", color="#dc2626", penwidth=2.5' in dot
    assert 'color="#2563eb"' in dot  # the selected node
    assert 'label="on entering segment\\ninactive-7d"' in dot


def test_the_graph_names_a_page_entry_and_its_limit() -> None:
    dot = journey_dot(gallery()["checkout-help"])
    assert 'label="on page view\\nCheckout\\nat most 500 per 1d"' in dot


def test_the_graph_of_a_broken_document_still_draws() -> None:
    dot = journey_dot({"nodes": {"a": {"type": "teleport"}, "b": "junk"}, "start": 3})
    assert '"a" [shape=box' in dot
    assert "unknown type 'teleport'" in dot
    assert "entry ?" in dot


def test_renaming_a_node_updates_every_reference_and_the_start() -> None:
    document = example("abandoned-cart")
    rename_node(document, "vip_push", "vip_push_2")
    rename_node(document, "wait_checkout", "wait")
    assert document["start"] == "wait"
    assert document["nodes"]["vip_email"]["on_failure"] == "vip_push_2"
    assert next(iter(document["nodes"])) == "wait"  # the order is kept
    assert validate(document) == []


def test_deleting_a_node_reconnects_what_led_to_it() -> None:
    document = example("abandoned-cart")
    delete_node(document, "pause_before_push")
    assert document["nodes"]["urgency_email"]["next"] == "cart_push"
    delete_node(document, "vip_push")  # only an on_failure led there: it goes
    assert "on_failure" not in document["nodes"]["vip_email"]
    delete_node(document, "wait_checkout")  # the start: the next node starts
    assert document["start"] == "by_cart_value"
    assert validate(document) == []


def test_adding_a_node_on_an_edge_inserts_it() -> None:
    document = example("win-back")
    add_node(document, "wait_a_bit", "delay", ("offer_email", ("next",)))
    assert document["nodes"]["offer_email"]["next"] == "wait_a_bit"
    assert document["nodes"]["wait_a_bit"] == {
        "type": "delay", "duration": "1d", "next": "wait_order",
    }  # fmt: skip
    add_node(document, "loose", "exit", None)
    assert [(p.path, p.message) for p in validate(document)] == [
        ("nodes.loose", "unreachable from start")
    ]
    blank: dict[str, Any] = {"nodes": {}}
    add_node(blank, "first", "message", None)
    assert blank["start"] == "first"


def test_flow_order_follows_the_graph_from_start() -> None:
    order = flow_order(example("abandoned-cart"))
    assert order[:3] == ["wait_checkout", "by_cart_value", "vip_email"]
    assert order.index("copy_test") < order.index("cart_push")


def test_conditions_read_as_words() -> None:
    condition = {
        "all": [
            {"field": "entry.total_price", "op": "gte", "value": 40},
            {"any": [{"segment": "vip"}, {"not": {"field": "user.email", "op": "exists"}}]},
            {"event_count": {"event": "*", "within": "7d"}, "op": "eq", "value": 0},
            {"field": "entry.currency", "op": "in", "value": ["USD", "CAD"]},
        ]
    }
    assert describe(condition) == (
        "entry.total_price ≥ 40 and (in segment vip or not (user.email exists)) and "
        "count of any event in 7d = 0 and entry.currency is one of USD, CAD"
    )


def test_typed_values_become_json_values() -> None:
    assert parse_value("200") == 200
    assert parse_value(" 12.5 ") == 12.5
    assert parse_value("true") is True
    assert parse_value("gold") == "gold"
    assert parse_value("USD, CAD, 3", as_list=True) == ["USD", "CAD", 3]
    assert parse_value('["a,b", "c"]', as_list=True) == ["a,b", "c"]


def test_problem_paths_name_their_nodes() -> None:
    problems = [
        {"path": "nodes.by_value.paths[0].next", "message": "unknown node 'vip'"},
        {"path": "nodes.send-1", "message": "unreachable from start"},
        {"path": "entry", "message": "exactly one of event, page, segment, api is required"},
    ]
    assert problem_nodes(problems) == {"by_value", "send-1"}


def test_funnel_and_variant_rows() -> None:
    document = example("abandoned-cart")
    stats = {"nodes": {"wait_checkout": {"reached": 10, "waiting": 4}}}
    rows = funnel(document, stats)
    assert rows[0] == {"step": "01 wait_checkout", "node": "wait_checkout",
                       "type": "wait_for_event", "reached": 10, "waiting": 4}  # fmt: skip
    assert rows[1]["reached"] == 0
    experiment = {
        "variants": {
            "a": {"users": 100, "conversions": 10, "rate": 0.1, "interval": [0.0552, 0.1744]},
            "b": {"users": 0, "conversions": 0, "rate": 0.0},
        },
        "winner": "a",
    }
    variants = variant_rows(experiment)
    # The interval is the API's, not recomputed; the winner is marked.
    assert variants[0] == {"variant": "a (winner)", "users": 100, "conversions": 10, "rate": 0.1,
                           "95% CI low": 0.0552, "95% CI high": 0.1744}  # fmt: skip
    assert (variants[1]["95% CI low"], variants[1]["95% CI high"]) == (0.0, 1.0)


def test_the_next_look_of_a_winner_rule() -> None:
    variants = {"a": {"users": 700}, "b": {"users": 260}}
    first = next_look({"variants": variants, "looks": 0}, min_users=500)
    assert (first.smallest, first.needed, first.threshold) == (260, 500, 0.025)
    assert first.progress == pytest.approx(0.52)
    later = next_look({"variants": variants, "looks": 2}, min_users=100)
    assert (later.needed, later.threshold, later.progress) == (400, 0.00625, 0.65)
    assert next_look({"variants": {"a": {"users": 900}}, "looks": 0}, 100).progress == 1.0


def test_plain_readings() -> None:
    assert auc_reading(0.5).startswith("no better than a coin toss")
    assert auc_reading(0.78).startswith("good: given a user who converted")
    assert "higher 78% of the time" in auc_reading(0.78)
    assert auc_reading(0.91).startswith("very good")
    assert auc_reading(None).startswith("not measured")
    assert when("2026-05-01T03:00:00Z") == "2026-05-01 03:00 UTC"
    assert when(None) == "—"
    assert when("soon") == "soon"
    assert (hour_of_day(19), hour_of_day(7.0), hour_of_day(24), hour_of_day("19")) == (
        "19:00", "07:00", None, None,
    )  # fmt: skip
    assert (percent(0.734), percent(1), percent(True), percent(1.5)) == ("73%", "100%", None, None)


def email(**fields: Any) -> dict[str, Any]:
    """An email step with `fields` added."""
    return {"type": "message", "channel": "email", "content": {"subject": "s", "body": "b"}} | (
        fields
    )


def test_tracking_follows_the_model_rule() -> None:
    assert tracked(email())
    assert not tracked(email(transactional=True))
    assert tracked(email(transactional=True, track=True))
    assert not tracked(email(track=False))
    assert not tracked(email(channel="webhook", content={"url": "https://x.example"}))
    # Not a valid message step (yet): never offered as tracked.
    assert not tracked({"type": "message", "channel": "email"})
    assert not tracked("junk")
    # The default ignores what `track` says.
    assert tracked_by_default(email(track=False))
    assert not tracked_by_default(email(transactional=True, track=True))
    assert not tracked_by_default(None)
    # Every tracked channel has a word on what tracking does to it, and only those.
    assert set(TRACKING) == set(TRACKED_CHANNELS)


def test_message_steps_and_what_a_wait_can_react_to() -> None:
    document = engagement_journey()
    assert message_steps(document) == {
        "receipt": MessageStep("email", tracked=False),
        "reminder": MessageStep("email", tracked=True),
        "hook": MessageStep("webhook", tracked=False),
        "later": MessageStep("sms", tracked=True),
    }
    assert earlier(document, "wait") == {"receipt", "reminder", "hook"}
    assert earlier(document, "receipt") == set()
    allowed, refused = engagement_sources(document, "wait")
    assert allowed == ["reminder"]
    assert refused == {
        "receipt": "its tracking is off",
        "hook": "webhooks are never tracked",
        "later": "it does not come before this step",
    }
    # Nothing before the first step: every message step is refused, with its reason.
    assert engagement_sources(document, "receipt")[0] == []
    assert MessageStep("email", tracked=True).events == ["Email Opened", "Email Link Clicked"]
    assert MessageStep("in_app", tracked=True).events == [
        "In-App Message Viewed", "In-App Message Clicked", "In-App Message Dismissed",
    ]  # fmt: skip
    assert MessageStep("webhook", tracked=False).events == []
    assert MessageStep("fax", tracked=False).events == []


def test_a_message_condition_reads_as_words_and_is_made_from_the_first_message() -> None:
    condition = {"any": [{"message": "reminder", "engagement": "clicked"}, {"segment": "vip"}]}
    assert describe(condition) == "reminder was clicked or in segment vip"
    steps = message_steps(engagement_journey())
    first = {"message": "receipt", "engagement": "opened"}
    assert convert(condition, "message", {}, steps) == first
    assert convert(condition, "message", {}, {}) == {"message": "", "engagement": "opened"}


def test_the_graph_shows_engagement_paths_and_message_rates() -> None:
    document = engagement_journey()
    document["nodes"]["wait"]["paths"][0] |= {"event": "Email Link Clicked", "of": "reminder"}
    dot = journey_dot(
        document,
        messages={
            "reminder": {"sent": 200, "opened": 84, "clicked": 7, "open_rate": 0.42,
                         "click_rate": 0.035},
            "receipt": {"sent": 3, "open_rate": 0.0, "click_rate": 0.0},
            "later": {"sent": 0, "open_rate": None, "click_rate": None},
        },
    )  # fmt: skip
    assert '"wait" -> __end__ [label="Email Link Clicked · reminder"];' in dot
    assert "reminder\\nemail: Still there?\\nsent 200 · open 42% · click 3.5%" in dot
    assert "receipt\\nemail: Your cart\\nsent 3 · not tracked" in dot
    assert 'later\\nsms: Last call! Reply STOP t…\\nsent 0"' in dot
    assert (short_percent(0.42), short_percent(0.035), short_percent(0), short_percent(1)) == (
        "42%", "3.5%", "0%", "100%",
    )  # fmt: skip
    assert message_line(email(), {}) == "sent 0"


def test_message_rows_carry_engagement() -> None:
    document = engagement_journey()
    stats = {
        "messages": {
            "reminder": {"sent": 4, "skipped": 1, "failed": 0, "opened": 2, "clicked": 1,
                         "open_rate": 0.5, "click_rate": 0.25},
            "receipt": {"sent": 0, "skipped": 0, "failed": 1, "opened": 0, "clicked": 0,
                        "open_rate": None, "click_rate": None},
        }
    }  # fmt: skip
    assert message_rows(stats, document) == [
        {"step": "reminder", "channel": "email", "tracked": True, "sent": 4, "skipped": 1,
         "failed": 0, "opened": 2, "clicked": 1, "open rate": 0.5, "click rate": 0.25},
        {"step": "receipt", "channel": "email", "tracked": False, "sent": 0, "skipped": 0,
         "failed": 1, "opened": 0, "clicked": 0, "open rate": None, "click rate": None},
    ]  # fmt: skip
    assert message_rows({}, document) == []


def test_locale_rows_list_each_language_of_each_localised_step() -> None:
    de = {"sent": 2, "opened": 1, "clicked": 0, "open_rate": 0.5, "click_rate": 0.0}
    base = {"sent": 0, "opened": 0, "clicked": 0, "open_rate": None, "click_rate": None}
    stats = {"messages": {"reminder": {"sent": 2, "locales": {"base": base, "de": de}},
                          "receipt": {"sent": 1}}}  # fmt: skip
    assert locale_rows(stats) == [
        {"step": "reminder", "language": "base", "sent": 0, "open rate": None,
         "click rate": None, "opened": 0, "clicked": 0},
        {"step": "reminder", "language": "de", "sent": 2, "open rate": 0.5, "click rate": 0.0,
         "opened": 1, "clicked": 0},
    ]  # fmt: skip
    assert locale_rows({}) == []


def test_variant_rows_with_clicks_carry_the_ctr_and_its_interval() -> None:
    experiment = {
        "variants": {
            "a": {"users": 100, "conversions": 10, "rate": 0.1, "interval": [0.05, 0.17],
                  "clicks": 30, "click_rate": 0.3},
            "b": {"users": 0, "conversions": 0, "rate": 0.0, "clicks": 0, "click_rate": 0.0},
        },
    }  # fmt: skip
    a, b = variant_rows(experiment)
    low, high = wilson_interval(Counts(users=100, conversions=30))
    assert a == {"variant": "a", "users": 100, "conversions": 10, "rate": 0.1,
                 "95% CI low": 0.05, "95% CI high": 0.17, "clicks": 30, "CTR": 0.3,
                 "CTR 95% CI low": low, "CTR 95% CI high": high}  # fmt: skip
    assert low < 0.3 < high
    assert (b["CTR"], b["CTR 95% CI low"], b["CTR 95% CI high"]) == (0.0, 0.0, 1.0)
    # Without click counts from the API, no click columns.
    assert "CTR" not in variant_rows({"variants": {"a": {"users": 1}}})[0]


def test_whether_and_when_a_delivery_was_engaged_with() -> None:
    opened = {"status": "sent", "opened_at": "2026-05-01T03:00:00+00:00", "clicked_at": None}
    assert engaged(opened, "opened_at") == "2026-05-01 03:00 UTC"
    assert engaged(opened, "clicked_at") == "no"
    assert engaged({"status": "skipped"}, "opened_at") == "—"

"""The forms of the steps that route or change users: a branch (conditions checked in
order), an experiment (variants and the automatic winner) and a profile update."""

from __future__ import annotations

import streamlit as st

from journey_designer import widgets
from journey_designer.conditions import condition_builder
from journey_designer.document import (
    DEFAULT_CONDITION,
    Path,
    format_value,
    message_steps,
    parse_value,
)
from journey_designer.forms.common import DURATION_HELP, Catalog, goto, split_list
from journey_designer.widgets import Doc
from journeys.model import CLICK_WINDOW

METRICS: dict[str, str] = {
    "conversion": "conversion (the journey's goal)",
    "click": "click-through (a click on a tracked message)",
}
"""What a winner can be picked on, as the form offers it."""


def branch_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """Paths checked top to bottom, each a condition and a way on, and the else way."""
    base: Path = ("nodes", node_id)
    messages = message_steps(doc.value)

    def path_row(item: Path) -> None:
        st.markdown(f"**Path {int(item[-1]) + 1}: if…**")
        condition_builder(doc, (*item, "when"), segments=catalog.segments, messages=messages)
        goto(doc, (*item, "next"), "…then go to", node_id)

    st.caption("Paths are checked from the top when the user arrives; the first true one wins.")
    widgets.rows(
        doc,
        (*base, "paths"),
        path_row,
        make=lambda: {"when": dict(DEFAULT_CONDITION), "next": None},
        add_label="Add a path",
        noun="path",
        minimum=1,
    )
    goto(doc, (*base, "else"), "Otherwise (else), go to", node_id)


def experiment_form(doc: Doc, node_id: str) -> None:
    """Variants with weights and ways on, and the optional automatic winner."""
    base: Path = ("nodes", node_id)

    def variant_row(item: Path) -> None:
        name, weight, target = st.columns([3, 2, 4])
        with name:
            widgets.text(doc, (*item, "name"), "Variant", keep_empty=True)
        with weight:
            widgets.number(doc, (*item, "weight"), "Weight %", help="Weights must sum to 100.")
        with target:
            goto(
                doc,
                (*item, "next"),
                "Go to",
                node_id,
                help="The end of the journey: a control group.",
            )

    variants = doc.get((*base, "variants")) or []
    total = sum(v.get("weight", 0) for v in variants if isinstance(v, dict))
    st.caption(f"Each user gets one variant for good. Weights sum to {total} (must be 100).")
    widgets.rows(
        doc,
        (*base, "variants"),
        variant_row,
        make=lambda: {"name": f"variant-{len(doc.get((*base, 'variants')) or []) + 1}",
                      "weight": 0, "next": None},
        add_label="Add a variant",
        noun="variant",
        minimum=2,
    )  # fmt: skip
    if widgets.optional(
        doc, (*base, "winner"), "Pick a winner automatically",
        lambda: {"after": "14d", "min_users": 100},
        help="Once the time has passed and every variant has enough users, the best variant "
        "(by the metric chosen) gets every new arrival.",
    ):  # fmt: skip
        after, users = st.columns(2)
        with after:
            widgets.text(doc, (*base, "winner", "after"), "After", help=DURATION_HELP)
        with users:
            widgets.number(doc, (*base, "winner", "min_users"), "Users per variant", minimum=1)
        winner_metric_form(doc, (*base, "winner"))


def _set_metric(doc: Doc, rule: Path, metric: str) -> None:
    if metric == "click":
        doc.set((*rule, "metric"), metric)
    else:  # the default metric, which has no time of its own
        doc.drop((*rule, "metric"))
        doc.drop((*rule, "within"))


def winner_metric_form(doc: Doc, rule: Path) -> None:
    """What the winner is picked on: conversions (the goal) or clicks within a time."""
    metric = doc.get((*rule, "metric"), "conversion")
    widgets.select(
        doc,
        (*rule, "metric"),
        "Best by",
        list(METRICS),
        labels=lambda m: METRICS.get(m, str(m)),
        default="conversion",
        on_select=lambda chosen: _set_metric(doc, rule, chosen),
        structural=True,
    )
    if metric == "click":
        widgets.text(
            doc, (*rule, "within"), "Clicks within", placeholder=CLICK_WINDOW,
            help="A user counts as a success when they click a tracked message sent to them "
            f"after they got their variant, within this time (empty: {CLICK_WINDOW}). Clicks "
            f"by link scanners never count. {DURATION_HELP}",
        )  # fmt: skip
    elif doc.get(("goal",)) is None:
        st.caption(
            "Conversions are the journey's goal (Goal & settings tab): set one, or nobody "
            "ever converts and no winner is picked."
        )


def update_user_form(doc: Doc, node_id: str) -> None:
    """Traits to set (values may be templates) and traits to remove."""
    base: Path = ("nodes", node_id)
    st.markdown("**Set these traits**")
    widgets.entries(
        doc,
        (*base, "set"),
        name_label="Trait",
        value_label="Value",
        noun="trait",
        make=lambda _: "",
        add_label="Add a trait",
        value_help="Numbers and true/false are stored as such; text may use templates.",
        parse=parse_value,
        show=format_value,
    )
    widgets.text(
        doc, (*base, "unset"), "Remove these traits (comma-separated)",
        parse=split_list, show=", ".join,
    )  # fmt: skip
    goto(doc, (*base, "next"), "Then go to", node_id)

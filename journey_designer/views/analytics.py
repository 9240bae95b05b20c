"""Analytics page: per journey, the graph annotated with who reached and waits where (and the
open and click rates of each message step), the funnel, deliveries and engagement per message
step, goal conversions, the holdout's lift and experiment results (conversion and
click-through)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from api_client import ApiClient
from journey_designer.api import call, require
from journey_designer.graph import journey_dot
from journey_designer.state import JOURNEY
from journey_designer.stats import (
    funnel,
    holdout_reading,
    locale_rows,
    message_rows,
    next_look,
    variant_rows,
    when,
)
from journeys.experiments import ALPHA
from journeys.model import CLICK_WINDOW

KEY = "analytics.journey"
PERCENT = st.column_config.NumberColumn(format="percent")


def load(client: ApiClient, journey_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The journey's stats and its latest published definition (None if never published)."""
    detail = client.get_journey(journey_id)
    if detail.get("version") is None:
        return {}, None
    version = client.version(journey_id, int(detail["version"]))
    return client.stats(journey_id), version["definition"]


def headline(stats: dict[str, Any]) -> None:
    """Entered, active, completed, exited, converted and the conversion rate."""
    entered = int(stats.get("entered", 0))
    converted = int(stats.get("converted", 0))
    columns = st.columns(6)
    for column, name in zip(
        columns, ("entered", "active", "completed", "exited", "converted"), strict=False
    ):
        column.metric(name.capitalize(), stats.get(name, 0))
    columns[5].metric("Goal conversion", f"{converted / entered:.1%}" if entered else "—")
    limited = int(stats.get("limited", 0))
    if limited:
        users = "user" if limited == 1 else "users"
        st.caption(f"The entry limit kept out {limited} {users}: they did not enter.")


def holdout(stats: dict[str, Any]) -> None:
    """The journey's holdout against its treated users, and what that says."""
    figures = stats.get("holdout")
    if figures is None:
        return
    st.subheader("Holdout", anchor=False)
    held, treated = st.columns(2)
    for column, name, prefix in ((held, "Held out", ""), (treated, "Treated", "treated_")):
        rate = figures.get(f"{prefix}rate")
        column.metric(
            f"{name}: {figures.get(f'{prefix}users', 0)} users",
            "—" if rate is None else f"{rate:.1%}",
            help="conversion rate (the journey's goal)",
        )
    st.markdown(holdout_reading(figures))
    st.caption(
        "Held-out users go through the journey without its marketing messages, so their rate "
        "is what would happen anyway; the lift is the difference the messages make."
    )


def funnel_chart(rows: list[dict[str, Any]]) -> None:
    """Users who reached each step (and wait there now), in the order users meet them."""
    st.bar_chart(
        rows,
        x="step",
        y=["reached", "waiting"],
        x_label="users",
        y_label="",
        horizontal=True,
        sort=False,
        stack=False,
    )


def deliveries(stats: dict[str, Any], definition: dict[str, Any]) -> None:
    """Sent, skipped and failed per message step, and who opened and clicked it."""
    rows = message_rows(stats, definition)
    if not rows:
        st.caption("No message steps.")
        return
    _rates_table(
        rows,
        "Open and click rates: the unique users who opened and clicked, of those sent the "
        "message (None until something is sent). Opens and clicks by link scanners and mail "
        "privacy proxies are left out; an untracked step has none.",
    )
    languages = locale_rows(stats)
    if languages:
        st.markdown("**By language**")
        _rates_table(
            languages,
            "Steps written in several languages, per language the message was sent in (the "
            "one each user's `locale` trait picked; base: the base content).",
        )


def _rates_table(rows: list[dict[str, Any]], caption: str) -> None:
    st.dataframe(rows, hide_index=True, column_config={"open rate": PERCENT, "click rate": PERCENT})
    st.caption(caption)


def experiments(stats: dict[str, Any], definition: dict[str, Any]) -> None:
    """Each experiment step: its variants, the p-value, the winner or where the winner rule
    stands."""
    found = stats.get("experiments") or {}
    if not found:
        st.caption("No experiment steps.")
        return
    nodes = definition.get("nodes", {})
    for node_id, experiment in found.items():
        with st.container(border=True):
            st.markdown(f"**{node_id}**")
            experiment_figures(experiment, (nodes.get(node_id) or {}).get("winner"))


def experiment_figures(experiment: dict[str, Any], rule: dict[str, Any] | None) -> None:
    """One experiment: variants (the winner highlighted), p-value, winner or progress."""
    winner = experiment.get("winner")
    rows = variant_rows(experiment)
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            column: PERCENT
            for column in (rows[0] if rows else {})
            if column in ("rate", "CTR") or "CI" in column
        },
    )
    clicks = (rule or {}).get("metric") == "click"
    if clicks:
        within = (rule or {}).get("within", CLICK_WINDOW)
        st.caption(
            "Decided on click-through: a user counts when they click a tracked message within "
            f"{within} of getting their variant (scanner clicks never count)."
        )
    p_value = experiment.get("p_value")
    if p_value is None:
        st.caption("p-value: not yet — every variant needs users first.")
    else:
        reading = "a real difference is likely" if p_value < ALPHA else "it may still be chance"
        alike = "were clicked through alike" if clicks else "converted alike"
        st.caption(
            f"p-value {p_value:.3g}: the chance of a difference this large if the variants "
            f"{alike} ({reading}). Intervals: 95% confidence of each rate."
        )
    if winner is not None:
        st.success(
            f"Winner: **{winner}**, picked {when(experiment.get('decided_at'))}. "
            "Every new arrival now takes it.",
            icon=":material/trophy:",
        )
        return
    if rule is None:
        st.markdown("**No winner yet** — and no winner rule: the split holds as it is.")
        return
    look = next_look(experiment, int(rule.get("min_users", 1)))
    st.markdown("**No winner yet.**")
    st.progress(
        look.progress,
        text=f"Toward the next look: the smallest variant has {look.smallest} of the "
        f"{look.needed} users it needs",
    )
    st.caption(
        f"The rule looks after {rule.get('after', '?')} from publishing and whenever the "
        f"smallest variant reaches min_users · 2^looks users ({experiment.get('looks', 0)} "
        f"look(s) so far); the best variant must win at p < {look.threshold:.3g}, as the 5% "
        "risk of a false winner is split over the looks (2.5%, 1.25%, …)."
    )


def main() -> None:
    """Render the page."""
    st.title("Analytics")
    journeys = require(lambda client: client.list_journeys(), doing="list the journeys")
    if not journeys:
        st.info("No journeys yet.")
        return
    ids = [j["id"] for j in journeys]
    default = st.session_state.get(KEY) or (JOURNEY.value.get("id") if JOURNEY.loaded else None)
    journey_id = st.selectbox(
        "Journey", ids, index=ids.index(default) if default in ids else 0, key="analytics.choice"
    )
    st.session_state[KEY] = journey_id
    loaded = call(lambda client: load(client, journey_id), doing="load the stats")
    if loaded is None:
        return
    stats, definition = loaded
    if definition is None:
        st.info("This journey has not been published yet: publish it to see how it performs.")
        return
    headline(stats)
    graph, figures = st.columns([3, 2])
    with graph:
        st.subheader("Where users are", anchor=False)
        dot = journey_dot(
            definition, stats=stats.get("nodes") or {}, messages=stats.get("messages") or {}
        )
        st.graphviz_chart(dot, width="stretch")
    with figures:
        st.subheader("Funnel", anchor=False)
        funnel_chart(funnel(definition, stats))
        st.subheader("Deliveries", anchor=False)
        deliveries(stats, definition)
    holdout(stats)
    st.subheader("Experiments", anchor=False)
    experiments(stats, definition)


main()

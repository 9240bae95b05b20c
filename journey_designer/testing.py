"""The editor's Test tab: run the journey for one user on the API's time-skipping engine
(`POST /v1/journeys/{id}/simulate`) and see where they go, when, and every message as the
preview shows it. Nothing is sent and no real user or statistic is touched.

The user is a known one (their stored traits) or described by traits; the events they perform
are scripted at offsets after entry ("Checkout Started after 30m").
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st
from pydantic import ValidationError

from journey_designer.api import call
from journey_designer.graph import journey_dot
from journey_designer.preview import SAMPLE_CONTEXT, escape, show_message
from journey_designer.state import JOURNEY, meta, remember_saved, unsaved
from journeys.simulation import (
    DEFAULT_HORIZON,
    SimulationRequest,
    SimulationResult,
    after_entry,
)

KEY = "test"
RESULT = f"{KEY}.result"
EVENTS = f"{KEY}.events"
SAMPLE_USER = {k: v for k, v in SAMPLE_CONTEXT["user"].items() if k != "id"}


def listened_events(document: dict[str, Any]) -> list[str]:
    """The events the journey reacts to (waits, exit rules, goal), to suggest in the script."""
    names: list[Any] = []
    for node in (document.get("nodes") or {}).values():
        if isinstance(node, dict):
            names += [p.get("event") for p in node.get("paths") or [] if isinstance(p, dict)]
            names += node.get("events") or []
    names += [rule.get("event") for rule in document.get("exit") or [] if isinstance(rule, dict)]
    goal = document.get("goal")
    if isinstance(goal, dict):
        names.append(goal.get("event"))
    return [name for name in dict.fromkeys(names) if isinstance(name, str) and name]


def test_tab(journey_id: str) -> None:
    """Describe the user and their events, run, and show the path and messages."""
    document = JOURNEY.value
    st.caption(
        "Runs the journey for one user on a time-skipping engine: days of waits take a second. "
        "Nothing is sent, and no real user or statistic is touched."
    )
    version = _version()
    request_user = _user()
    entry = _json_object("Entry properties (entry.*)", f"{KEY}.entry", SAMPLE_CONTEXT["entry"])
    events = _script(listened_events(document))
    horizon = st.text_input(
        "Follow the user for", value=DEFAULT_HORIZON, key=f"{KEY}.horizon",
        help='How long after entry (at most 365d): "24h", "7d"…',
    )  # fmt: skip
    if st.button("Run the test", key=f"{KEY}.run", type="primary", icon=":material/science:"):
        user = request_user()
        if user is not None and entry is not None and events is not None:
            body = {"user": user, "entry": entry, "events": events, "horizon": horizon}
            _run(journey_id, version, body)
    result = st.session_state.get(RESULT)
    if isinstance(result, SimulationResult):
        show_result(document, result)


def _version() -> int | str:
    """The draft (saved first, when the editor has changes) or a published version."""
    published = meta().get("version")
    options: list[int | str] = ["draft", *range(int(published or 0), 0, -1)]
    names = {"draft": "the draft"} | {n: f"version {n}" for n in options if n != "draft"}
    chosen: int | str = st.selectbox(
        "Test", options, format_func=names.__getitem__, key=f"{KEY}.version",
        help="The draft is saved first when the editor has unsaved changes.",
    )  # fmt: skip
    return chosen


def _user() -> Any:
    """The user choice; returns how to get the user's traits (with `id`) when running."""
    who = st.radio(
        "User",
        ["describe", "known"],
        format_func={"describe": "describe traits", "known": "a known user (by id)"}.__getitem__,
        horizontal=True,
        key=f"{KEY}.who",
    )
    if who == "known":
        user_id = st.text_input("User id", key=f"{KEY}.user_id", placeholder="ada").strip()

        def known() -> dict[str, Any] | None:
            if not user_id:
                st.warning("Enter a user id (or describe the user's traits).")
                return None
            found = call(lambda client: client.user(user_id), doing=f"load user '{user_id}'")
            return None if found is None else {**found["traits"], "id": found["user_id"]}

        return known
    traits = _json_object(
        'Traits (JSON; "id" names the user)', f"{KEY}.traits", {"id": "test-user", **SAMPLE_USER}
    )
    return lambda: traits


def _json_object(label: str, key: str, default: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON object typed by the user; None (with the reason shown) when it is not one."""
    raw = st.text_area(label, value=json.dumps(default, indent=2), height=150, key=key)
    try:
        value = json.loads(raw)
    except ValueError as error:
        st.error(f"{label}: not valid JSON: {error}")
        return None
    if not isinstance(value, dict):
        st.error(f"{label}: must be a JSON object")
        return None
    return value


def _script(suggested: list[str]) -> list[dict[str, Any]] | None:
    """The scripted events, one row each: what, how long after entry, with which properties."""
    st.markdown("**Events the user performs**")
    if suggested:
        st.caption("This journey listens for: " + ", ".join(escape(n) for n in suggested))
    rows: list[int] = st.session_state.setdefault(EVENTS, [])
    events: list[dict[str, Any]] | None = []
    for row in list(rows):
        name, at, properties, remove = st.columns([3, 1, 3, 1], vertical_alignment="bottom")
        event = name.text_input(
            "Event", key=f"{KEY}.event:{row}", value=suggested[0] if suggested else ""
        )
        offset = at.text_input("after", key=f"{KEY}.at:{row}", value="30m")
        raw = properties.text_input("Properties (JSON)", key=f"{KEY}.props:{row}", value="{}")
        if remove.button("Remove", key=f"{KEY}.remove:{row}", icon=":material/close:"):
            rows.remove(row)
            st.rerun()
        try:
            loaded = json.loads(raw or "{}")
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            st.error(f"The properties of {event or 'the event'} are not a JSON object.")
            events = None
        elif events is not None:
            events.append({"event": event.strip(), "at": offset.strip(), "properties": loaded})
    if st.button("Script an event", key=f"{KEY}.add", icon=":material/add:"):
        rows.append(max(rows, default=0) + 1)
        st.rerun()
    return events


def _run(journey_id: str, version: int | str, body: dict[str, Any]) -> None:
    """Save the draft if need be, then simulate `body` (user, entry, events, horizon); the
    result is kept for the page."""
    st.session_state.pop(RESULT, None)
    try:
        request = SimulationRequest.model_validate({"version": version, **body})
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            st.error(f"{where}: {problem['msg']}")
        return
    if version == "draft" and unsaved():
        saved = call(lambda client: client.put_journey(JOURNEY.value), doing="save the draft")
        if saved is None:
            return
        remember_saved(saved)
    with st.spinner("Running the journey…"):
        result = call(lambda client: client.simulate(journey_id, request), doing="run the test")
    if result is not None:
        st.session_state[RESULT] = result


def show_result(document: dict[str, Any], result: SimulationResult) -> None:
    """The outcome, the path on the graph with its times, and every message rendered."""

    def after(moment: Any) -> str:
        return after_entry(moment - result.entered_at)

    outcome = result.status.replace("_", " ") + (f": {result.ended}" if result.ended else "")
    summary = f"The user's run: **{escape(outcome)}**"
    if result.status == "active":
        summary += f" (still inside {after(result.horizon_at)} after entry)"
    st.info(summary, icon=":material/route:")
    facts = [] if result.ended_at is None else [f"ended {after(result.ended_at)} after entry"]
    if result.variant is not None:
        facts.append(f"experiment variant **{escape(result.variant)}**")
    if result.converted_at is not None:
        facts.append(f"converted {after(result.converted_at)}")
    facts.append(f"simulated in {result.duration:.1f} s")
    st.caption(" · ".join(facts))
    for ignored in result.ignored_events:
        st.warning(
            f"Not delivered: {escape(ignored.what)} at {escape(ignored.at)} is after the horizon.",
            icon=":material/schedule:",
        )
    walked = {step.node: after(step.at) for step in result.path}
    st.graphviz_chart(journey_dot(document, walked=walked), width="stretch")
    st.dataframe(
        [{"step": s.node, "after entry": after(s.at), "at": s.at.isoformat()} for s in result.path],
        hide_index=True,
    )
    st.subheader(f"Messages ({len(result.messages)})", anchor=False)
    if not result.messages:
        st.caption("No message reached the user.")
    for message in result.messages:
        why = message.skipped or message.failed
        line = f"{after(message.at)} · **{escape(message.node)}** · {message.channel} · "
        line += f"{message.locale} · " if message.locale else ""
        line += message.status + (f" — {escape(why)}" if why else "")
        st.markdown(line)
        show_message(message.channel, message.content)

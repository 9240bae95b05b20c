"""Segments page: build a segment with the condition builder, see how many users match it as it
changes (before saving), save it, and count the saved segment's members."""

from __future__ import annotations

import streamlit as st

from journey_designer import widgets
from journey_designer.api import call, needs, require
from journey_designer.conditions import condition_builder
from journey_designer.document import DEFAULT_CONDITION, SLUG
from journey_designer.state import SEGMENT
from journeys.access import Role

NEW = ""
CHOICE = "segments.choice"
COUNT = "segments.count"
PENDING = "segments.pending"


def load(choice: str, segments: dict[str, dict[str, object]]) -> None:
    """Put the chosen segment (or a new one) into the editor."""
    if choice == NEW:
        SEGMENT.load({"id": "", "name": "", "condition": {"all": [dict(DEFAULT_CONDITION)]}})
    else:
        found = segments[choice]
        SEGMENT.load({k: found[k] for k in ("id", "name", "condition")})
    st.session_state[COUNT] = None


def save() -> None:
    """Store the segment, then count its members."""
    segment = SEGMENT.value
    if not SLUG.match(str(segment.get("id", ""))):
        st.error("The id must be lower-case letters, digits and dashes (at most 64).")
        return
    SEGMENT.set_problems([])
    stored = call(
        lambda client: client.put_segment(segment), doing="save the segment", problems_to=SEGMENT
    )
    if stored is None:
        return
    st.session_state[PENDING] = segment["id"]
    st.session_state["segments.loaded"] = segment["id"]
    count(str(segment["id"]))
    st.success(f"Segment '{segment['id']}' saved.")


def count(segment_id: str) -> None:
    """Count the segment's members now."""
    members = call(lambda client: client.segment_count(segment_id), doing="count the members")
    st.session_state[COUNT] = members


def live_count() -> int | None:
    """How many users the condition being edited holds for now (`POST /v1/segments/count`);
    None when the condition is invalid (its problems then show beside its fields) or the API
    could not say (a message says why)."""
    condition = SEGMENT.value.get("condition")
    # Problems elsewhere (a refused save's, say of the name) stay until the next save.
    others = [p for p in SEGMENT.problems if not p["path"].startswith("condition")]
    members = call(
        lambda client: client.count_condition(condition),
        doing="count the matching users",
        problems_to=SEGMENT,
        only_beside=True,
    )
    found = [p for p in SEGMENT.problems if p["path"].startswith("condition")]
    SEGMENT.set_problems(others + ([] if members is not None else found))
    return members


def main() -> None:
    """Render the page."""
    st.title("Segments")
    st.caption(
        "A segment is a named condition over users: journeys can start when users enter it, "
        "and conditions can test membership."
    )
    listed = require(lambda client: client.list_segments(), doing="list the segments")
    segments = {s["id"]: s for s in listed}
    options = [NEW, *segments]
    if PENDING in st.session_state:  # just saved: select it (before the picker is drawn)
        st.session_state[CHOICE] = st.session_state.pop(PENDING)
    if st.session_state.get(CHOICE) not in options:
        st.session_state[CHOICE] = NEW
    labels = {NEW: "New segment…"} | {sid: f"{s['name']} ({sid})" for sid, s in segments.items()}
    choice = st.selectbox(
        "Segment",
        options,
        key=CHOICE,
        format_func=labels.__getitem__,
    )
    if not SEGMENT.loaded or st.session_state.get("segments.loaded") != choice:
        load(choice, segments)
        st.session_state["segments.loaded"] = choice
    cannot_save = needs(Role.EDITOR, "saving a segment")
    # Before the fields, so its problems show beside them; counting a condition as it is
    # edited is an editor's (POST /v1/segments/count).
    matching = live_count() if cannot_save is None else None
    ident, name = st.columns([1, 2])
    with ident:
        widgets.text(
            SEGMENT, ("id",), "Id", keep_empty=True, placeholder="vip-customers",
            help="Lower-case letters, digits and dashes; journeys refer to the segment by it.",
        )  # fmt: skip
    with name:
        widgets.text(SEGMENT, ("name",), "Name", keep_empty=True, placeholder="VIP customers")
    st.markdown("**Members are users for whom this is true**")
    condition_builder(
        SEGMENT, ("condition",), segments={sid: s["name"] for sid, s in segments.items()}
    )
    SEGMENT.flag_within(())
    if st.button(
        "Save segment", icon=":material/save:", type="primary", key="segments.save",
        disabled=cannot_save is not None, help=cannot_save,
    ):  # fmt: skip
        save()
    live, saved = st.columns(2)
    with live:
        if matching is not None:
            st.metric(
                "Users matching this condition now", matching,
                help="Counted as you edit, before saving: who would be a member right now.",
            )  # fmt: skip
        elif cannot_save is None:
            st.caption("Fix the condition to see how many users match it.")
    with saved:
        if choice != NEW and st.button(
            "Count members", icon=":material/tag:", key="segments.count.button",
            help="Count the members of the segment as saved.",
        ):  # fmt: skip
            count(choice)
        members = st.session_state.get(COUNT)
        if members is not None:
            st.metric("Members of the saved segment", members)
            if choice in segments and segments[choice]["condition"] != SEGMENT.value.get(
                "condition"
            ):
                st.caption("The condition has unsaved changes: this counts the saved one.")


main()

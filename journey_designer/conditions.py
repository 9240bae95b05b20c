"""The condition builder: one widget for every condition of the format (branch paths, event
filters, audience, exit rules, goal, segments).

Rows of field / operator / value, segment membership, event counts and (inside a journey) how
far a message step's delivery got, grouped with all / any / not to any depth. It edits the
condition in place in its document (see `widgets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from journey_designer import widgets
from journey_designer.document import (
    CHANNELS,
    COUNT_OPS,
    DEFAULT_CONDITION,
    LIST_OPS,
    OPS,
    VALUELESS_OPS,
    MessageStep,
    Path,
    format_value,
    parse_value,
)
from journey_designer.widgets import Doc
from journeys.engagement import ENGAGEMENTS

KINDS: dict[str, str] = {
    "field": "A profile or event field…",
    "segment": "Is in a segment",
    "event_count": "Has done an event (how many times)",
    "message": "A message step was sent, opened or clicked",
    "all": "All of these are true",
    "any": "Any of these is true",
    "not": "This is NOT true",
}
"""Every kind of condition, as the builder offers it (`message` only inside a journey)."""

ENGAGEMENT_LABELS: dict[str, str] = {
    "sent": "was sent",
    "opened": "was opened (or clicked)",
    "clicked": "was clicked",
}
"""How far a delivery got, as the builder offers it (clicked implies opened implies sent)."""

FIELD_HELP = (
    "A dotted path: `user.<trait>` (the profile, e.g. user.plan, user.email), "
    "`entry.<property>` (the event that made the user enter, e.g. entry.total_price) or "
    "`event.<property>` (the event being matched, or the last one waited for)."
)


SUGGESTED: dict[str, tuple[str, str, Any]] = {
    "user.predicted_conversion": ("chance to convert, 0..1 (predictions)", "gte", 0.7),
    "user.preferred_channel": ("channel engaged with most (predictions)", "eq", "email"),
    "user.most_active_hour": ("most active hour, 0-23 local (send-time)", "gte", 18),
}
"""Fields worth offering by name, each with its meaning and an example operator and value: the
traits the prediction runs and send-time optimisation write to profiles."""


def kind_of(condition: Any) -> str:
    """Which kind of condition a value is (`field` for anything unrecognised)."""
    if isinstance(condition, dict):
        for kind in KINDS:
            if kind in condition:
                return kind
    return "field"


def convert(
    condition: Any,
    kind: str,
    segments: Mapping[str, str],
    messages: Mapping[str, MessageStep] | None = None,
) -> dict[str, Any]:
    """`condition` turned into a condition of another kind, keeping what still fits."""
    old = kind_of(condition)
    match kind:
        case "all" | "any" if old in ("all", "any"):
            return {kind: condition[old]}
        case "all" | "any":
            return {kind: [condition]}
        case "not":
            return {"not": condition}
        case "segment":
            return {"segment": next(iter(segments), "")}
        case "event_count":
            return {"event_count": {"event": "Order Completed"}, "op": "gte", "value": 1}
        case "message":
            return {"message": next(iter(messages or {}), ""), "engagement": "opened"}
    if old == "not" and kind_of(condition["not"]) == "field":
        inner: dict[str, Any] = condition["not"]
        return inner
    return dict(DEFAULT_CONDITION)


def condition_builder(
    doc: Doc,
    path: Path,
    *,
    segments: Mapping[str, str],
    messages: Mapping[str, MessageStep] | None = None,
) -> None:
    """Edit the condition at `path` of `doc`. `segments` maps segment ids to names;
    `messages` (the journey's message steps) is given where a condition is checked within a
    user's run of the journey, which is where a message condition means something."""
    condition = doc.get(path)
    kind = kind_of(condition)
    widgets.select(
        doc,
        (*path, "<kind>"),
        "Condition",
        [k for k in KINDS if k != "message" or messages is not None],
        labels=KINDS.__getitem__,
        default=kind,
        on_select=lambda chosen: doc.set(path, convert(doc.get(path), chosen, segments, messages)),
        structural=True,
    )
    match kind:
        case "field":
            _field_row(doc, path)
        case "segment":
            widgets.select(
                doc,
                (*path, "segment"),
                "Segment",
                list(segments),
                labels=lambda sid: f"{segments.get(sid, sid)} ({sid})" if sid else "—",
                help="Users who are members of the segment right now (Segments page).",
            )
        case "event_count":
            _event_count_row(doc, path, segments)
        case "message":
            _message_row(doc, path, messages or {})
        case "all" | "any":
            with st.container(border=True):
                widgets.rows(
                    doc,
                    (*path, kind),
                    lambda item: condition_builder(doc, item, segments=segments, messages=messages),
                    make=lambda: dict(DEFAULT_CONDITION),
                    add_label="Add a condition",
                    noun="condition",
                )
        case "not":
            with st.container(border=True):
                condition_builder(doc, (*path, "not"), segments=segments, messages=messages)
    doc.flag(path)


def _message_row(doc: Doc, path: Path, messages: Mapping[str, MessageStep]) -> None:
    """A message step of the journey and how far this user's delivery of it got."""
    step, engagement = st.columns([5, 4])
    with step:
        widgets.select(
            doc,
            (*path, "message"),
            "Message step",
            list(messages),
            labels=lambda m: (
                f"{m} · {CHANNELS.get(messages[m].channel, messages[m].channel)}"
                if m in messages
                else f"{m or '—'} (not a message step!)"
            ),
            help="This user's delivery of that step, in this run of the journey.",
        )
    with engagement:
        widgets.select(
            doc,
            (*path, "engagement"),
            "Its delivery",
            list(ENGAGEMENTS),
            labels=lambda e: ENGAGEMENT_LABELS.get(e, str(e)),
        )
    if not messages:
        st.caption("This journey has no message step yet.")


def _field_row(doc: Doc, path: Path) -> None:
    op = doc.get((*path, "op"))
    field, operator, value = st.columns([5, 3, 4])
    with field:
        widgets.text(doc, (*path, "field"), "Field", help=FIELD_HELP, placeholder="user.plan")
        _suggestions(doc, path)
    with operator:
        widgets.select(
            doc,
            (*path, "op"),
            "Operator",
            list(OPS),
            labels=OPS.__getitem__,
            on_select=lambda chosen: _set_op(doc, path, chosen),
            structural=True,
        )
    with value:
        if op in VALUELESS_OPS:
            st.caption("No value needed.")
        else:
            as_list = op in LIST_OPS
            widgets.text(
                doc,
                (*path, "value"),
                "Values (comma-separated)" if as_list else "Value",
                help="Numbers and true/false are compared as such; anything else as text.",
                parse=lambda raw: parse_value(raw, as_list=as_list),
                show=format_value,
                keep_empty=True,
            )


def _suggestions(doc: Doc, path: Path) -> None:
    """A picker filling the row with a suggested field (and an example operator and value)."""
    key = doc.key((*path, "field"), "?suggested")

    def picked() -> None:
        chosen = st.session_state[key]
        if chosen in SUGGESTED:
            _, op, value = SUGGESTED[chosen]
            doc.set(path, {"field": chosen, "op": op, "value": value})
            doc.bump()

    # Labels computed now: Streamlit's app tester formats options outside the session.
    labels = {name: f"{name} — {meaning}" for name, (meaning, _, _) in SUGGESTED.items()}
    st.selectbox(
        "Suggested fields",
        list(SUGGESTED),
        index=None,
        placeholder="…or pick a suggested field",
        format_func=labels.__getitem__,
        key=key,
        label_visibility="collapsed",
        on_change=picked,
    )


def _set_op(doc: Doc, path: Path, op: str) -> None:
    """Change the operator, reshaping the value to suit it."""
    value = doc.get((*path, "value"))
    doc.set((*path, "op"), op)
    if op in VALUELESS_OPS:
        doc.drop((*path, "value"))
    elif op in LIST_OPS and not isinstance(value, list):
        doc.set((*path, "value"), [] if value is None else [value])
    elif op not in LIST_OPS and (isinstance(value, list) or value is None):
        doc.set((*path, "value"), value[0] if value else "")


def _event_count_row(doc: Doc, path: Path, segments: Mapping[str, str]) -> None:
    count = (*path, "event_count")
    event, within, operator, value = st.columns([4, 2, 2, 2])
    with event:
        widgets.text(
            doc, (*count, "event"), "Event", help="The event name, or * for any event.",
            placeholder="Order Completed", keep_empty=True,
        )  # fmt: skip
    with within:
        widgets.text(
            doc, (*count, "within"), "Within", placeholder="7d",
            help="Only count events this recent (e.g. 24h, 7d); empty: all history.",
        )  # fmt: skip
    with operator:
        widgets.select(doc, (*path, "op"), "Count is", list(COUNT_OPS), labels=OPS.__getitem__)
    with value:
        widgets.number(doc, (*path, "value"), "Times")
    optional_condition(
        doc, (*count, "where"), "Only count events where…", segments=segments, field="event.value"
    )


def optional_condition(
    doc: Doc,
    path: Path,
    label: str,
    *,
    segments: Mapping[str, str],
    field: str = "user.email",
    help: str | None = None,
) -> None:
    """A checkbox adding (a condition on `field`) or removing the condition at `path`, and the
    builder while it is there."""
    if widgets.optional(doc, path, label, lambda: {"field": field, "op": "exists"}, help=help):
        with st.container(border=True):
            condition_builder(doc, path, segments=segments)

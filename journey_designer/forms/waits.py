"""The forms of the steps that wait: a delay (a duration or until a local time), a wait for
events (each path with its own way on, optionally about the engagement with an earlier message
and keyed by `match`), and a wait for inactivity."""

from __future__ import annotations

import streamlit as st

from journey_designer import widgets
from journey_designer.conditions import optional_condition
from journey_designer.document import (
    CHANNELS,
    Path,
    engagement_sources,
    message_steps,
)
from journey_designer.forms.common import (
    DURATION_HELP,
    Catalog,
    goto,
    match_form,
    split_list,
)
from journey_designer.widgets import Doc
from journeys.localtime import ACTIVE_HOUR_HISTORY, ACTIVE_HOUR_MIN_EVENTS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPTIMAL_HELP = (
    "Waits until the hour of day at which this user has been most active in their event "
    f"history (the last {ACTIVE_HOUR_HISTORY.days} days, in their time zone); the hour is kept "
    "as their `most_active_hour` trait (see the Users page). When the history is thin (fewer "
    f"than {ACTIVE_HOUR_MIN_EVENTS} events) or two hours tie, it waits until the fallback time "
    "instead."
)
ANY_MESSAGE = "any such event (not about one message)"
OF_HELP = (
    "Only this user's opens or clicks of what that step sent them in this run of the journey. "
    "Opens and clicks by link scanners and mail privacy proxies never count."
)


def _set_delay_kind(doc: Doc, base: Path, kind: str) -> None:
    if kind == "duration":
        doc.drop((*base, "until"))
        doc.set((*base, "duration"), "1d")
    else:
        doc.drop((*base, "duration"))
        doc.set((*base, "until"), {"time": "10:00"})


def _set_until_time(doc: Doc, base: Path, kind: str) -> None:
    if kind == "optimal":
        doc.set((*base, "until", "time"), "optimal")
        doc.set((*base, "until", "fallback"), "10:00")
    else:
        doc.set((*base, "until", "time"), "10:00")
        doc.drop((*base, "until", "fallback"))


def delay_form(doc: Doc, node_id: str) -> None:
    """A fixed duration, or until a local time (a clock time or the user's best hour)."""
    base: Path = ("nodes", node_id)
    kind = "until" if doc.get((*base, "until")) is not None else "duration"
    widgets.select(
        doc,
        (*base, "<kind>"),
        "Wait",
        ["duration", "until"],
        labels={"duration": "for a duration", "until": "until a time of day"}.__getitem__,
        default=kind,
        on_select=lambda chosen: _set_delay_kind(doc, base, chosen),
        structural=True,
    )
    if kind == "duration":
        widgets.text(doc, (*base, "duration"), "Duration", help=DURATION_HELP)
    else:
        until: Path = (*base, "until")
        optimal = doc.get((*until, "time")) == "optimal"
        widgets.select(
            doc,
            (*until, "<time>"),
            "Send at",
            ["clock", "optimal"],
            labels={
                "clock": "a time of day",
                "optimal": "the user's most active hour (send-time optimisation)",
            }.__getitem__,
            default="optimal" if optimal else "clock",
            on_select=lambda chosen: _set_until_time(doc, base, chosen),
            structural=True,
        )
        if optimal:
            st.caption(OPTIMAL_HELP)
            widgets.text(
                doc, (*until, "fallback"), "Fallback time (HH:MM)",
                help="For users whose history is too thin (or tied) to know their best hour.",
            )  # fmt: skip
        else:
            widgets.text(doc, (*until, "time"), "Time (HH:MM)", keep_empty=True)
        widgets.choices(
            doc, (*until, "weekdays"), "Only on these days (optional)", WEEKDAYS,
            help="Waits for the next such day; none chosen: any day.",
        )  # fmt: skip
        widgets.text(
            doc, (*until, "timezone"), "Time zone", placeholder="user",
            help="`user`: the user's timezone trait (else the journey's); or an IANA name "
            "such as Europe/Paris.",
        )  # fmt: skip
        doc.flag(until)
    goto(doc, (*base, "next"), "Then go to", node_id)


def _set_of(doc: Doc, item: Path, message_id: str | None) -> None:
    """Point a wait path at a message step's engagement (or at any event again), choosing an
    engagement event of that message's channel when the path's event is not one."""
    if message_id is None:
        doc.drop((*item, "of"))
        return
    doc.set((*item, "of"), message_id)
    step = message_steps(doc.value).get(message_id)
    events = step.events if step is not None else []
    if events and doc.get((*item, "event")) not in events:
        doc.set((*item, "event"), events[0])


def engagement_of(doc: Doc, node_id: str, item: Path) -> None:
    """The `of` of a wait path: a tracked message step that can run before this wait (the
    others listed with why they cannot be chosen), then the event among that channel's
    engagement events."""
    allowed, refused = engagement_sources(doc.value, node_id)
    steps = message_steps(doc.value)

    def label(message_id: str | None) -> str:
        if message_id is None:
            return ANY_MESSAGE
        step = steps.get(message_id)
        if step is None:
            return f"{message_id} (missing!)"
        why = f" (cannot be chosen: {refused[message_id]})" if message_id in refused else ""
        return f"{message_id} · {CHANNELS.get(step.channel, step.channel)}{why}"

    widgets.select(
        doc,
        (*item, "of"),
        "Opens or clicks of the message",
        [None, *allowed],
        labels=label,
        help=OF_HELP,
        on_select=lambda chosen: _set_of(doc, item, chosen),
        structural=True,
    )
    if not allowed:
        st.caption(
            "No message step to choose: a wait can react to the opens and clicks of a tracked "
            "message step that comes before it."
        )
    if refused:
        st.caption(
            "Not offered: " + "; ".join(f"`{m}` ({why})" for m, why in refused.items()) + "."
        )
    of = doc.get((*item, "of"))
    step = steps.get(of) if isinstance(of, str) else None
    if step is None or not step.events:
        widgets.text(doc, (*item, "event"), "Event", keep_empty=True, placeholder="Order Completed")
    else:
        widgets.select(
            doc,
            (*item, "event"),
            "Engagement",
            step.events,
            help=f"What the user did with the {CHANNELS.get(step.channel, step.channel)}.",
        )


def wait_for_event_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """The events waited for, each with its own way on, and the timeout."""
    base: Path = ("nodes", node_id)

    def path_row(item: Path) -> None:
        engagement_of(doc, node_id, item)
        optional_condition(
            doc, (*item, "where"), "Only when the event matches…",
            segments=catalog.segments, field="event.total_price",
        )  # fmt: skip
        match_form(doc, (*item, "match"))
        goto(doc, (*item, "next"), "Then go to", node_id)

    st.markdown("**Wait until one of these events happens** (the first to happen wins)")
    widgets.rows(
        doc,
        (*base, "paths"),
        path_row,
        make=lambda: {"event": "Order Completed", "next": None},
        add_label="Add an event",
        noun="event",
        minimum=1,
    )
    widgets.text(doc, (*base, "timeout"), "Wait at most", help=DURATION_HELP)
    goto(doc, (*base, "on_timeout"), "If none happens in time, go to", node_id)


def wait_for_inactivity_form(doc: Doc, node_id: str) -> None:
    """How long without activity, which events count as activity, and the way on."""
    base: Path = ("nodes", node_id)
    widgets.text(doc, (*base, "duration"), "Inactive for", help=DURATION_HELP)
    widgets.text(
        doc,
        (*base, "events"),
        "Events that count as activity",
        help="Comma-separated event names; each one restarts the clock. Empty: any.",
        placeholder="any event",
        parse=split_list,
        show=", ".join,
    )
    goto(doc, (*base, "next"), "Then go to", node_id)

"""The forms of the journey as a whole: its name, who enters, the exit rules, the goal and
the settings."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

import streamlit as st

from journey_designer import widgets
from journey_designer.conditions import condition_builder, optional_condition
from journey_designer.document import DEFAULT_CONDITION, Path, message_steps
from journey_designer.forms.common import DURATION_HELP, Catalog, match_form
from journey_designer.widgets import Doc
from journeys.model import ENTRY_KINDS


@cache
def time_zones() -> list[str]:
    """Every IANA time zone name, UTC first."""
    return ["UTC", *sorted(available_timezones() - {"UTC"})]


def about_form(doc: Doc) -> None:
    """The journey's name and description."""
    widgets.text(
        doc, ("name",), "Name", keep_empty=True,
        help="Shown here and in the Temporal Web UI's summary of every run.",
    )  # fmt: skip
    widgets.text(doc, ("description",), "Description (optional)", area=True)


def _set_entry_kind(doc: Doc, kind: str, catalog: Catalog) -> None:
    kept = ("audience", "reentry", "limit")
    entry = {k: v for k, v in (doc.get(("entry",)) or {}).items() if k in kept}
    starts = {
        "event": "Signed Up",
        "page": "Checkout",
        "segment": next(iter(catalog.segments), ""),
        "api": "my_trigger",
    }
    entry[kind] = starts[kind]
    doc.set(("entry",), entry)


def _set_reentry(doc: Doc, choice: str) -> None:
    if choice == "never":
        doc.drop(("entry", "reentry"))
    else:
        doc.set(("entry", "reentry"), "7d" if choice == "after" else choice)


def entry_form(doc: Doc, catalog: Catalog) -> None:
    """Who enters (event, segment or API trigger), the audience and re-entry."""
    entry = doc.get(("entry",)) or {}
    kind = next((k for k in ENTRY_KINDS if k in entry), "event")
    widgets.select(
        doc,
        ("entry", "<kind>"),
        "Users enter when",
        list(ENTRY_KINDS),
        labels={
            "event": "they perform an event",
            "page": "they view a page",
            "segment": "they enter a segment",
            "api": "a service calls POST /trigger",
        }.__getitem__,
        default=kind,
        on_select=lambda chosen: _set_entry_kind(doc, chosen, catalog),
        structural=True,
    )
    match kind:
        case "event":
            widgets.text(
                doc, ("entry", "event"), "Event", keep_empty=True, placeholder="Added to Cart"
            )
            optional_condition(
                doc, ("entry", "where"), "Only when the event matches…",
                segments=catalog.segments, field="event.total_price",
            )  # fmt: skip
        case "page":
            widgets.text(
                doc, ("entry", "page"), "Page name", keep_empty=True, placeholder="Checkout",
                help="The name a page call gives (`journeys.page(\"Checkout\")` in the browser "
                "SDK, Segment's `page`); its properties (url, path…) are available as entry.*",
            )  # fmt: skip
            optional_condition(
                doc, ("entry", "where"), "Only when the page view matches…",
                segments=catalog.segments, field="event.path",
            )  # fmt: skip
        case "segment":
            widgets.select(
                doc, ("entry", "segment"), "Segment", list(catalog.segments),
                labels=lambda sid: f"{catalog.segments.get(sid, sid)} ({sid})" if sid else "—",
            )  # fmt: skip
        case "api":
            widgets.text(
                doc, ("entry", "api"), "Trigger type", keep_empty=True,
                help='`POST /trigger {"user_id", "trigger_type", "content"}` starts users; '
                "`content` is available as entry.*",
            )  # fmt: skip
    optional_condition(
        doc, ("entry", "audience"), "Only users who match… (audience)",
        segments=catalog.segments,
        help="Checked at the moment of entry, against the profile.",
    )  # fmt: skip
    reentry = doc.get(("entry", "reentry"), "never")
    choice = reentry if reentry in ("never", "always") else "after"
    widgets.select(
        doc,
        ("entry", "<reentry>"),
        "Can a user enter again?",
        ["never", "always", "after"],
        labels={
            "never": "Never (at most once per user)",
            "always": "Yes, again after leaving",
            "after": "Yes, once some time has passed since the last entry",
        }.__getitem__,
        default=choice,
        on_select=lambda chosen: _set_reentry(doc, chosen),
        structural=True,
    )
    if choice == "after":
        widgets.text(doc, ("entry", "reentry"), "Time between entries", help=DURATION_HELP)
    if widgets.optional(
        doc, ("entry", "limit"), "Limit how many users enter",
        lambda: {"count": 100, "per": "1d"},
        help="At most this many entries in any rolling period (a coupon budget, a team's "
        "capacity); users over it do not enter and count as 'limited' in the analytics.",
    ):  # fmt: skip
        count, per = st.columns(2)
        with count:
            widgets.number(doc, ("entry", "limit", "count"), "Users at most", minimum=1)
        with per:
            widgets.text(
                doc, ("entry", "limit", "per"), "Per (rolling)", help=DURATION_HELP,
                keep_empty=True,
            )  # fmt: skip
    doc.flag_within(("entry",))


def _set_exit_kind(doc: Doc, path: Path, kind: str) -> None:
    doc.set(
        path, {"event": "Order Completed"} if kind == "event" else {"when": dict(DEFAULT_CONDITION)}
    )


def exit_form(doc: Doc, catalog: Catalog) -> None:
    """Rules that make users leave at once: an event (optionally keyed), or a condition."""
    messages = message_steps(doc.value)

    def rule_row(item: Path) -> None:
        kind = "when" if doc.get((*item, "when")) is not None else "event"
        widgets.select(
            doc,
            (*item, "<kind>"),
            "Leave when",
            ["event", "when"],
            labels={
                "event": "the user performs an event",
                "when": "the profile matches…",
            }.__getitem__,
            default=kind,
            on_select=lambda chosen: _set_exit_kind(doc, item, chosen),
            structural=True,
        )
        if kind == "event":
            widgets.text(doc, (*item, "event"), "Event", keep_empty=True)
            optional_condition(
                doc, (*item, "where"), "Only when the event matches…",
                segments=catalog.segments, field="event.total_price",
            )  # fmt: skip
            match_form(doc, (*item, "match"))
        else:
            condition_builder(doc, (*item, "when"), segments=catalog.segments, messages=messages)

    st.caption("A matching rule ends the journey at once (status: exited), even mid-wait.")
    widgets.rows(
        doc,
        ("exit",),
        rule_row,
        make=lambda: {"event": "Order Completed"},
        add_label="Add an exit rule",
        noun="rule",
    )
    doc.flag_within(("exit",))


def goal_form(doc: Doc, catalog: Catalog) -> None:
    """The conversion event counted in stats and experiments."""
    if widgets.optional(
        doc, ("goal",), "Track a conversion goal",
        lambda: {"event": "Order Completed", "within": "3d"},
        help="A user converts when the event happens within the time of their entry. "
        "Goals do not end the journey (add an exit rule for that).",
    ):  # fmt: skip
        event, within = st.columns(2)
        with event:
            widgets.text(doc, ("goal", "event"), "Goal event", keep_empty=True)
        with within:
            widgets.text(doc, ("goal", "within"), "Within", help=DURATION_HELP, keep_empty=True)
        optional_condition(
            doc, ("goal", "where"), "Only when the event matches…",
            segments=catalog.segments, field="event.total_price",
        )  # fmt: skip
        match_form(doc, ("goal", "match"))
    doc.flag_within(("goal",))


def quiet_hours_form(doc: Doc, path: Path) -> None:
    """Optional quiet hours at `path` (a journey's settings, a broadcast): from, until, and
    what happens to messages due then."""
    if widgets.optional(
        doc, path, "Quiet hours (no marketing messages at night)",
        lambda: {"start": "22:00", "end": "08:00"},
        help="In the user's local time; transactional messages are not affected.",
    ):  # fmt: skip
        start, end, action = st.columns(3)
        with start:
            widgets.text(doc, (*path, "start"), "From (HH:MM)", keep_empty=True)
        with end:
            widgets.text(doc, (*path, "end"), "Until (HH:MM)", keep_empty=True)
        with action:
            widgets.select(
                doc, (*path, "action"), "Messages due then",
                ["delay", "skip"], default="delay",
                labels={"delay": "wait until the end", "skip": "are skipped"}.__getitem__,
            )  # fmt: skip


def settings_form(doc: Doc) -> None:
    """The journey's time zone, quiet hours and holdout."""
    widgets.select(
        doc, ("settings", "timezone"), "Time zone", time_zones(), default="UTC",
        help="For users without a timezone trait (quiet hours, 'until' delays).",
    )  # fmt: skip
    quiet_hours_form(doc, ("settings", "quiet_hours"))
    doc.flag_within(("settings",))
    if widgets.optional(
        doc, ("holdout",), "Hold out a control group (measure the journey's lift)",
        lambda: {"percent": 10},
        help="A share of entrants go through the journey without its marketing messages "
        "(transactional ones still go); the analytics compare their conversions with everyone "
        "else's.",
    ):  # fmt: skip
        widgets.number(doc, ("holdout", "percent"), "Percent held out (0 to 50)")
    doc.flag_within(("holdout",))

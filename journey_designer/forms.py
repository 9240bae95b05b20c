"""Typed forms for every part of a journey document: one per node type, and the entry, exit
rules, goal and settings. Each edits the document in session state in place (see `widgets`)
and shows the validation problems of what it edits beside the field concerned."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import streamlit as st

from journey_designer import widgets
from journey_designer.conditions import condition_builder, optional_condition
from journey_designer.document import (
    CHANNELS,
    CONTENT_DEFAULTS,
    DEFAULT_CONDITION,
    NODE_TYPES,
    Path,
    change_type,
    format_value,
    nodes_of,
    parse_value,
)
from journey_designer.widgets import Doc
from journeys.localtime import ACTIVE_HOUR_HISTORY, ACTIVE_HOUR_MIN_EVENTS
from journeys.validation import CONTENT_FIELDS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
IN_APP_KINDS = ("modal", "banner", "tooltip")
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
DURATION_HELP = "A number and a unit: 90s, 15m, 24h, 7d, 2w (or ISO-8601 such as PT24H)."
TEMPLATE_HELP = (
    'Liquid templates: {{ user.first_name | default: "there" }}, {{ entry.total_price }}, '
    "{{ event.product_name }}, {{ journey.name }}, {{ variant }}."
)
END_LABEL = "— end of the journey —"
OPTIMAL_HELP = (
    "Waits until the hour of day at which this user has been most active in their event "
    f"history (the last {ACTIVE_HOUR_HISTORY.days} days, in their time zone); the hour is kept "
    "as their `most_active_hour` trait (see the Users page). When the history is thin (fewer "
    f"than {ACTIVE_HOUR_MIN_EVENTS} events) or two hours tie, it waits until the fallback time "
    "instead."
)


@dataclass(frozen=True)
class Catalog:
    """What the forms offer to pick from: stored segments (id → name) and templates."""

    segments: dict[str, str] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)


@cache
def time_zones() -> list[str]:
    """Every IANA time zone name, UTC first."""
    return ["UTC", *sorted(available_timezones() - {"UTC"})]


def parse_json_or_text(raw: str) -> Any:
    """JSON when the text is JSON, else the text itself (validation then says what is wrong)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def show_json(value: Any) -> str:
    """A value as the JSON the user edits (a plain string as is)."""
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def split_list(raw: str) -> list[str]:
    """A comma-separated list of names."""
    return [part.strip() for part in raw.split(",") if part.strip()]


# --- node forms -------------------------------------------------------------------------------


def goto(doc: Doc, path: Path, label: str, node_id: str, *, help: str | None = None) -> None:
    """Choose the node a way out leads to (or the end of the journey)."""
    nodes = nodes_of(doc.value)
    options: list[str | None] = [None, *(n for n in nodes if n != node_id)]

    def name(target: str | None) -> str:
        if target is None:
            return END_LABEL
        if target not in nodes:
            return f"{target} (missing!)"
        return f"{target} · {NODE_TYPES.get(nodes[target].get('type'), '?')}"

    widgets.select(doc, path, label, options, labels=name, help=help)


def node_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """The form of one node, by its type, with its problems."""
    base: Path = ("nodes", node_id)
    node_type = doc.get((*base, "type"))
    widgets.select(
        doc,
        (*base, "type"),
        "Step type",
        list(NODE_TYPES),
        labels=lambda t: NODE_TYPES.get(t, str(t)),
        help="Changing the type starts this step afresh (its main way out is kept).",
        on_select=lambda chosen: change_type(doc.value, node_id, chosen),
        structural=True,
    )
    match node_type:
        case "message":
            message_form(doc, node_id, catalog)
        case "delay":
            delay_form(doc, node_id)
        case "wait_for_event":
            wait_for_event_form(doc, node_id, catalog)
        case "wait_for_inactivity":
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
        case "branch":
            branch_form(doc, node_id, catalog)
        case "experiment":
            experiment_form(doc, node_id)
        case "update_user":
            update_user_form(doc, node_id)
        case "exit":
            st.caption("Users who reach this step leave the journey (status: completed).")
    doc.flag_within(base)


def _set_channel(doc: Doc, base: Path, channel: str) -> None:
    """Switch a message's channel, keeping the content that still applies."""
    doc.set((*base, "channel"), channel)
    content = doc.get((*base, "content"))
    if isinstance(content, dict):
        kept = {
            k: v
            for k, v in content.items()
            if k in ("subject", "title", "body") and k in CONTENT_FIELDS[channel]
        }
        doc.set((*base, "content"), {**CONTENT_DEFAULTS[channel], **kept})
    elif doc.get((*base, "template")) is not None:
        doc.set((*base, "template"), "")


def _set_source(doc: Doc, base: Path, source: str, catalog: Catalog) -> None:
    channel = doc.get((*base, "channel"), "email")
    if source == "template":
        doc.drop((*base, "content"))
        ids = [t["id"] for t in catalog.templates if t.get("channel") == channel]
        doc.set((*base, "template"), ids[0] if ids else "")
    else:
        doc.drop((*base, "template"))
        doc.set((*base, "content"), dict(CONTENT_DEFAULTS.get(channel, {})))


def message_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """Channel, content (per channel) or stored template, delivery options and ways out."""
    base: Path = ("nodes", node_id)
    channel = doc.get((*base, "channel"))
    widgets.select(
        doc,
        (*base, "channel"),
        "Channel",
        list(CHANNELS),
        labels=lambda c: CHANNELS.get(c, str(c)),
        on_select=lambda chosen: _set_channel(doc, base, chosen),
        structural=True,
    )
    source = "template" if doc.get((*base, "template")) is not None else "content"
    widgets.select(
        doc,
        (*base, "<source>"),
        "Content",
        ["content", "template"],
        labels={"content": "Write it here", "template": "Use a stored template"}.__getitem__,
        default=source,
        on_select=lambda chosen: _set_source(doc, base, chosen, catalog),
        structural=True,
    )
    if source == "template":
        ids = [t["id"] for t in catalog.templates if t.get("channel") == channel]
        if not ids:
            st.info(f"No stored {channel} templates yet (`PUT /v1/templates/{{id}}`).")
        widgets.select(doc, (*base, "template"), "Template", ids, labels=lambda t: t or "—")
    else:
        content_form(doc, (*base, "content"), str(channel))
    st.caption("See it rendered for a real user or a sample cart in the **Preview** tab.")
    widgets.checkbox(
        doc,
        (*base, "transactional"),
        "Transactional (receipts, password resets)",
        help="Transactional messages ignore quiet hours, frequency caps and unsubscribes.",
    )
    goto(doc, (*base, "next"), "Then go to", node_id)
    goto(
        doc,
        (*base, "on_failure"),
        "If delivery fails for good, go to",
        node_id,
        help="Left at the end of the journey, a failure simply follows 'Then go to'.",
    )


def content_form(doc: Doc, path: Path, channel: str) -> None:
    """The content fields of a channel."""
    st.caption(TEMPLATE_HELP)
    match channel:
        case "email":
            widgets.text(doc, (*path, "subject"), "Subject", keep_empty=True)
            widgets.text(doc, (*path, "body"), "Body (plain text)", area=True, keep_empty=True)
            widgets.text(
                doc, (*path, "html"), "HTML body (optional)", area=True,
                help="Sent as the HTML alternative of the plain-text body.",
            )  # fmt: skip
        case "push":
            widgets.text(doc, (*path, "title"), "Title", keep_empty=True)
            widgets.text(doc, (*path, "body"), "Body", area=True, keep_empty=True)
            widgets.text(
                doc, (*path, "data"), "Data (optional JSON object)", area=True,
                help='Sent to the app with the notification, e.g. {"deep_link": "shop://cart"}.',
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
        case "sms":
            widgets.text(
                doc, (*path, "body"), "Text", area=True, keep_empty=True,
                help="Keep it short (160 characters is one SMS); add how to opt out.",
            )  # fmt: skip
        case "in_app":
            widgets.select(
                doc, (*path, "kind"), "Kind", list(IN_APP_KINDS), default="modal",
                help="modal: a dialog; banner: a strip at the top; tooltip: a small hint.",
            )  # fmt: skip
            widgets.text(doc, (*path, "title"), "Title (optional)")
            widgets.text(doc, (*path, "body"), "Body", area=True, keep_empty=True)
            if widgets.optional(
                doc, (*path, "cta"), "Add a button (call to action)",
                lambda: {"label": "Take a look", "url": "/"},
            ):  # fmt: skip
                label, url = st.columns(2)
                with label:
                    widgets.text(doc, (*path, "cta", "label"), "Button label", keep_empty=True)
                with url:
                    widgets.text(doc, (*path, "cta", "url"), "Button link", keep_empty=True)
                doc.flag((*path, "cta"))
        case "webhook":
            widgets.text(doc, (*path, "url"), "URL", keep_empty=True)
            widgets.select(doc, (*path, "method"), "Method", list(METHODS), default="POST")
            widgets.text(
                doc, (*path, "headers"), "Headers (optional JSON object)", area=True,
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
            widgets.text(
                doc, (*path, "body"), "Body (text, or a JSON object of strings)", area=True,
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
    doc.flag_within(path)


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


def wait_for_event_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """The events waited for, each with its own way on, and the timeout."""
    base: Path = ("nodes", node_id)

    def path_row(item: Path) -> None:
        widgets.text(doc, (*item, "event"), "Event", keep_empty=True, placeholder="Order Completed")
        optional_condition(
            doc, (*item, "where"), "Only when the event matches…",
            segments=catalog.segments, field="event.total_price",
        )  # fmt: skip
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


def branch_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """Paths checked top to bottom, each a condition and a way on, and the else way."""
    base: Path = ("nodes", node_id)

    def path_row(item: Path) -> None:
        st.markdown(f"**Path {int(item[-1]) + 1}: if…**")
        condition_builder(doc, (*item, "when"), segments=catalog.segments)
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
        help="Once the time has passed and every variant has enough users, the best-converting "
        "variant (by the journey goal) gets every new arrival.",
    ):  # fmt: skip
        after, users = st.columns(2)
        with after:
            widgets.text(doc, (*base, "winner", "after"), "After", help=DURATION_HELP)
        with users:
            widgets.number(doc, (*base, "winner", "min_users"), "Users per variant", minimum=1)


def _rename_trait(doc: Doc, path: Path, old: str, key: str) -> None:
    new = st.session_state[key].strip()
    traits = doc.get(path) or {}
    if new and new not in traits:
        doc.set(path, {(new if k == old else k): v for k, v in traits.items()})
    doc.bump()


def update_user_form(doc: Doc, node_id: str) -> None:
    """Traits to set (values may be templates) and traits to remove."""
    base: Path = ("nodes", node_id)
    traits: Mapping[str, Any] = doc.get((*base, "set")) or {}
    st.markdown("**Set these traits**")
    for trait in list(traits):
        name, value, remove = st.columns([3, 4, 1], vertical_alignment="bottom")
        key = doc.key((*base, "set", trait), "<name>")
        with name:
            st.text_input(
                "Trait", value=trait, key=key,
                on_change=_rename_trait, args=(doc, (*base, "set"), trait, key),
            )  # fmt: skip
        with value:
            widgets.text(
                doc, (*base, "set", trait), "Value", keep_empty=True,
                help="Numbers and true/false are stored as such; text may use templates.",
                parse=parse_value, show=format_value,
            )  # fmt: skip
        with remove:
            widgets.edit_button(
                doc, "Remove", f"unset:{trait}", widgets.remover(doc, (*base, "set", trait)),
                icon=":material/delete:",
            )  # fmt: skip
    widgets.edit_button(
        doc,
        "Add a trait",
        "add-trait",
        lambda: doc.set((*base, "set"), {**traits, _new_trait(traits): ""}),
        icon=":material/add:",
    )
    widgets.text(
        doc, (*base, "unset"), "Remove these traits (comma-separated)",
        parse=split_list, show=", ".join,
    )  # fmt: skip
    goto(doc, (*base, "next"), "Then go to", node_id)


def _new_trait(traits: Mapping[str, Any]) -> str:
    n = 1
    while f"trait_{n}" in traits:
        n += 1
    return f"trait_{n}"


# --- journey-level forms ------------------------------------------------------------------------


def about_form(doc: Doc) -> None:
    """The journey's name and description."""
    widgets.text(
        doc, ("name",), "Name", keep_empty=True,
        help="Shown here and in the Temporal Web UI's summary of every run.",
    )  # fmt: skip
    widgets.text(doc, ("description",), "Description (optional)", area=True)


def _set_entry_kind(doc: Doc, kind: str, catalog: Catalog) -> None:
    entry = {k: v for k, v in (doc.get(("entry",)) or {}).items() if k in ("audience", "reentry")}
    starts = {
        "event": "Signed Up",
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
    kind = next((k for k in ("event", "segment", "api") if k in entry), "event")
    widgets.select(
        doc,
        ("entry", "<kind>"),
        "Users enter when",
        ["event", "segment", "api"],
        labels={
            "event": "they perform an event",
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
    doc.flag_within(("entry",))


def _set_exit_kind(doc: Doc, path: Path, kind: str) -> None:
    doc.set(
        path, {"event": "Order Completed"} if kind == "event" else {"when": dict(DEFAULT_CONDITION)}
    )


def exit_form(doc: Doc, catalog: Catalog) -> None:
    """Rules that make users leave at once: an event, or a condition on the profile."""

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
        else:
            condition_builder(doc, (*item, "when"), segments=catalog.segments)

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
    doc.flag_within(("goal",))


def settings_form(doc: Doc) -> None:
    """The journey's time zone and quiet hours."""
    widgets.select(
        doc, ("settings", "timezone"), "Time zone", time_zones(), default="UTC",
        help="For users without a timezone trait (quiet hours, 'until' delays).",
    )  # fmt: skip
    if widgets.optional(
        doc, ("settings", "quiet_hours"), "Quiet hours (no marketing messages at night)",
        lambda: {"start": "22:00", "end": "08:00"},
        help="In the user's local time; transactional messages are not affected.",
    ):  # fmt: skip
        start, end, action = st.columns(3)
        with start:
            widgets.text(doc, ("settings", "quiet_hours", "start"), "From (HH:MM)", keep_empty=True)
        with end:
            widgets.text(doc, ("settings", "quiet_hours", "end"), "Until (HH:MM)", keep_empty=True)
        with action:
            widgets.select(
                doc, ("settings", "quiet_hours", "action"), "Messages due then",
                ["delay", "skip"], default="delay",
                labels={"delay": "wait until the end", "skip": "are skipped"}.__getitem__,
            )  # fmt: skip
    doc.flag_within(("settings",))

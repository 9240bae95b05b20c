"""What the step and journey forms share: the catalog they pick from, help texts, value
parsers, the choice of where a way out leads, and the editor of keyed matches."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from journey_designer import widgets
from journey_designer.document import NODE_TYPES, Path, nodes_of
from journey_designer.widgets import Doc

DURATION_HELP = "A number and a unit: 90s, 15m, 24h, 7d, 2w (or ISO-8601 such as PT24H)."
TEMPLATE_HELP = (
    'Liquid templates: {{ user.first_name | default: "there" }}, {{ entry.total_price }}, '
    "{{ event.product_name }}, {{ journey.name }}, {{ variant }}."
)
END_LABEL = "— end of the journey —"
_KEYED = (
    "Keyed: the event counts only when each of these properties equals its value, rendered "
    "for this user"
)
MATCH_HELP = (
    f"{_KEYED} (e.g. cart_id = {{{{ entry.cart_id }}}}: another cart's checkout does not count)."
)
SEGMENT_MATCH_HELP = (
    f"{_KEYED}. A segment entry has no entry fields to match on, so use the user's traits "
    "(e.g. account_id = {{ user.account_id }}: another account's event does not count)."
)


@dataclass(frozen=True)
class Catalog:
    """What the forms offer to pick from: stored segments (id → name) and templates."""

    segments: dict[str, str] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)


def show_json(value: Any) -> str:
    """A value as the JSON the user edits (a plain string as is)."""
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def split_list(raw: str) -> list[str]:
    """A comma-separated list of names."""
    return [part.strip() for part in raw.split(",") if part.strip()]


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


def match_form(doc: Doc, path: Path) -> None:
    """The `match` at `path` (of a wait path, an exit rule or the goal): event property →
    template the property must equal. A new row reads the entry's field of its name, or the
    user's trait when a segment starts the journey (it gives the run no entry fields)."""
    entry = doc.get(("entry",))
    segment_entry = isinstance(entry, dict) and entry.get("segment") is not None
    namespace = "user" if segment_entry else "entry"
    st.caption(SEGMENT_MATCH_HELP if segment_entry else MATCH_HELP)
    widgets.entries(
        doc,
        path,
        name_label="Event property",
        value_label="Must equal",
        noun="property",
        make=lambda name: f"{{{{ {namespace}.{name} }}}}",
        add_label="Match an event property",
        value_help=TEMPLATE_HELP,
    )


def button_fields(doc: Doc, path: Path, label: str, make: Callable[[], Any]) -> None:
    """An in-app message's button (`cta`: label and link) at `path`, added (`make()`) and
    removed by a checkbox labelled `label`."""
    if widgets.optional(doc, path, label, make):
        text, link = st.columns(2)
        with text:
            widgets.text(doc, (*path, "label"), "Button label", keep_empty=True)
        with link:
            widgets.text(doc, (*path, "url"), "Button link", keep_empty=True)
        doc.flag(path)

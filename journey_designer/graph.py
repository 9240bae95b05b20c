"""The journey drawn as a Graphviz DOT graph (pure: a document in, DOT text out).

Each node type has its own shape; every way out is an edge labelled with what takes it (an
event, a condition, a variant and its weight, a timeout, a failure). Ways out that end the
journey lead to one "end" node; references to nodes that do not exist lead to a red "missing"
node, so a broken edge is visible where it is. With stats, nodes carry who reached them and
message nodes their sends, open rate and click rate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from journey_designer.document import describe, get_at, nodes_of, references, tracked

END = "__end__"
ENTRY = "__entry__"
LABEL_WIDTH = 34

SHAPES: Mapping[str, tuple[str, str]] = {
    "message": ("box", "#dbeafe"),
    "delay": ("ellipse", "#fef3c7"),
    "wait_for_event": ("hexagon", "#fde68a"),
    "wait_for_inactivity": ("octagon", "#fde68a"),
    "branch": ("diamond", "#e9d5ff"),
    "experiment": ("trapezium", "#fbcfe8"),
    "update_user": ("component", "#d1fae5"),
    "exit": ("doublecircle", "#e5e7eb"),
}
"""Shape and fill of each node type."""


def quote(text: str) -> str:
    """A DOT string literal (newlines become DOT line breaks)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def shorten(text: str, width: int = LABEL_WIDTH) -> str:
    """`text` cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(node: Any) -> str:
    """What a node does, in a few words."""
    if not isinstance(node, dict):
        return "?"
    match node.get("type"):
        case "message":
            source = node.get("template") and f"template {node['template']}"
            content = node["content"] if isinstance(node.get("content"), dict) else {}
            text = source or content.get("subject") or content.get("title") or content.get("body")
            return f"{node.get('channel', '?')}: {shorten(str(text or ''), 24)}"
        case "delay":
            if node.get("duration"):
                return f"wait {node['duration']}"
            until = node["until"] if isinstance(node.get("until"), dict) else {}
            days = ",".join(until.get("weekdays") or [])
            return f"until {until.get('time', '?')}{' ' + days if days else ''}"
        case "wait_for_event":
            return f"wait for event (max {node.get('timeout', '?')})"
        case "wait_for_inactivity":
            return f"inactive for {node.get('duration', '?')}"
        case "branch":
            return "branch"
        case "experiment":
            return "experiment"
        case "update_user":
            return "update profile"
        case "exit":
            return "exit"
    return f"unknown type {node.get('type')!r}"


def edge_label(node: dict[str, Any], path: tuple[str | int, ...]) -> str:
    """What takes a user along the way out at `path` of `node`."""
    match path:
        case ("paths", int(i), "next") if node.get("type") == "wait_for_event":
            event = str(get_at(node, ("paths", i, "event"), "?"))
            of = get_at(node, ("paths", i, "of"))
            where = get_at(node, ("paths", i, "where"))
            return shorten(
                event + (f" · {of}" if of else "") + (f" if {describe(where)}" if where else "")
            )
        case ("paths", int(i), "next"):
            return shorten("if " + describe(get_at(node, ("paths", i, "when"))))
        case ("variants", int(i), "next"):
            variant = get_at(node, ("variants", i), {})
            return f"{variant.get('name', '?')} {variant.get('weight', '?')}%"
        case ("on_timeout",):
            return f"after {node.get('timeout', '?')}"
        case ("else",):
            return "else"
        case ("on_failure",):
            return "on failure"
    return ""


def entry_label(entry: Any) -> str:
    """Who enters, in a few words, and the entry limit if there is one."""
    if not isinstance(entry, dict):
        return "entry ?"
    return _entry_kind(entry) + _limit_line(entry.get("limit"))


def _entry_kind(entry: dict[str, Any]) -> str:
    if entry.get("event"):
        return f"on event\n{shorten(str(entry['event']))}"
    if entry.get("page"):
        return f"on page view\n{shorten(str(entry['page']))}"
    if entry.get("segment"):
        return f"on entering segment\n{entry['segment']}"
    if entry.get("api"):
        return f"on trigger\n{entry['api']}"
    return "entry ?"


def _limit_line(limit: Any) -> str:
    if not isinstance(limit, dict):
        return ""
    return f"\nat most {limit.get('count', '?')} per {limit.get('per', '?')}"


def holdout_line(holdout: Any) -> str:
    """`10% held out` for a journey with a holdout, else nothing."""
    if not isinstance(holdout, dict) or not isinstance(holdout.get("percent"), int | float):
        return ""
    return f"\n{holdout['percent']:g}% held out"


def short_percent(rate: float) -> str:
    """A rate as few characters as stay telling: `42%`, `3.1%`, `0%`."""
    return f"{rate:.0%}" if rate >= 0.1 or rate == 0 else f"{rate:.1%}"


def message_line(node: Any, figures: Mapping[str, Any]) -> str:
    """A message node's deliveries in a few words: `sent 120 · open 42% · click 3.1%`."""
    sent = f"sent {figures.get('sent', 0)}"
    if not tracked(node):
        return f"{sent} · not tracked"
    rates = [
        f"{name} {short_percent(rate)}"
        for name, rate in (("open", figures.get("open_rate")), ("click", figures.get("click_rate")))
        if isinstance(rate, int | float)
    ]
    return " · ".join([sent, *rates])


def journey_dot(
    document: dict[str, Any],
    *,
    stats: Mapping[str, Mapping[str, int]] | None = None,
    messages: Mapping[str, Mapping[str, Any]] | None = None,
    flagged: Collection[str] = (),
    selected: str | None = None,
    walked: Mapping[str, str] | None = None,
) -> str:
    """The DOT graph of a journey document (valid or not).

    `stats` (node id → `{reached, waiting}`) annotates the nodes, `messages` (node id → the
    stats of a message node) the message nodes; `flagged` node ids (those with validation
    problems) are outlined red; `selected` is outlined blue; the nodes a simulation `walked`
    (node id → when it reached them) are outlined green and say when.
    """
    nodes = nodes_of(document)
    lines = [
        "digraph journey {",
        '  graph [rankdir=TB, nodesep=0.35, ranksep=0.45, fontname="Helvetica"];',
        '  node [fontname="Helvetica", fontsize=11, style="filled"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#4b5563"];',
    ]
    entry = quote(entry_label(document.get("entry")) + holdout_line(document.get("holdout")))
    lines.append(f'  {ENTRY} [shape=invhouse, fillcolor="#bbf7d0", label={entry}];')
    start = document.get("start")
    if isinstance(start, str):
        lines.append(f"  {ENTRY} -> {_target_id(start, nodes)};")
    missing: set[str] = set()
    ends = False
    for node_id, node in nodes.items():
        kind = node.get("type") if isinstance(node, dict) else None
        shape, fill = SHAPES.get(str(kind), ("box", "#fff"))
        label = f"{node_id}\n{summary(node)}"
        counts = (stats or {}).get(node_id)
        if counts is not None:
            label += f"\nreached {counts.get('reached', 0)} · waiting {counts.get('waiting', 0)}"
        figures = (messages or {}).get(node_id)
        if figures is not None:
            label += "\n" + message_line(node, figures)
        reached = (walked or {}).get(node_id)
        if reached is not None:
            label += f"\n✓ reached {reached}"
        attributes = [f"shape={shape}", f'fillcolor="{fill}"', f"label={quote(label)}"]
        if shape == "box":
            attributes.append('style="rounded,filled"')
        if node_id in flagged:
            attributes += ['color="#dc2626"', "penwidth=2.5"]
        elif reached is not None:
            attributes += ['color="#16a34a"', "penwidth=3"]
        elif node_id == selected:
            attributes += ['color="#2563eb"', "penwidth=2.5"]
        lines.append(f"  {quote(node_id)} [{', '.join(attributes)}];")
        for path, target in references(node):
            ends = ends or target is None
            if target is not None and target not in nodes:
                missing.add(target)
            edge = [f"label={quote(edge_label(node, path))}"]
            if path in (("on_failure",), ("on_timeout",)):
                edge.append("style=dashed")
            if path == ("on_failure",):
                edge.append('color="#b91c1c"')
            to = END if target is None else _target_id(target, nodes)
            lines.append(f"  {quote(node_id)} -> {to} [{', '.join(edge)}];")
    for target in sorted(missing):
        lines.append(
            f'  {quote("missing:" + target)} [shape=box, style=dashed, color="#dc2626", '
            f"fillcolor=white, label={quote('missing: ' + target)}];"
        )
    if ends:
        lines.append(f'  {END} [shape=circle, fillcolor="#f3f4f6", label="end", fontsize=9];')
    lines.append("}")
    return "\n".join(lines)


def _target_id(target: str, nodes: Mapping[str, Any]) -> str:
    return quote(target if target in nodes else "missing:" + target)

"""Pure helpers over journey documents as the designer edits them: plain dicts in the format
of the spec, possibly invalid while being edited (so nothing here assumes a valid document).

Node defaults, the references between nodes, structural edits (add, delete, rename, change
type), which message steps a step can react to, and short human descriptions of conditions and
values.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from journeys.engagement import TRACKED_CHANNELS, events_of
from journeys.model import MessageNode

Path = tuple[str | int, ...]
"""A location inside a document: `("nodes", "by_value", "paths", 0, "next")`."""

NODE_TYPES: dict[str, str] = {
    "message": "Send a message",
    "delay": "Wait (a duration or until a time)",
    "wait_for_event": "Wait for an event",
    "wait_for_inactivity": "Wait for inactivity",
    "branch": "Branch on conditions",
    "experiment": "Experiment (A/B split)",
    "update_user": "Update the user's profile",
    "exit": "Exit the journey",
}
"""Every node type with what it does, in words a marketer uses."""

CHANNELS: dict[str, str] = {
    "email": "Email",
    "push": "Push notification",
    "sms": "SMS",
    "in_app": "In-app message",
    "webhook": "Webhook (HTTP request)",
}

CONTENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "email": {
        "subject": 'Hi {{ user.first_name | default: "there" }}',
        "body": 'Hi {{ user.first_name | default: "there" }},\n\n',
    },
    "push": {"title": "Hello!", "body": "Tap to take a look."},
    "sms": {"body": 'Hi {{ user.first_name | default: "there" }}! Reply STOP to opt out.'},
    "in_app": {"body": "Something new for you.", "kind": "modal"},
    "webhook": {"url": "https://example.com/hooks/journeys", "method": "POST"},
}
"""Starting content of a new message: valid at once, so a new node is never an error."""

DEFAULT_CONDITION: dict[str, Any] = {"field": "user.email", "op": "exists"}
"""A new condition row: valid, and a hint of the dotted field syntax."""

OPS: dict[str, str] = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "starts_with": "starts with",
    "exists": "exists",
    "not_exists": "is missing",
}
"""Every condition operator with how it reads."""
COUNT_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
"""The operators an event count compares with."""
VALUELESS_OPS = ("exists", "not_exists")
LIST_OPS = ("in", "not_in")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
NODE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def new_node(node_type: str, target: str | None = None) -> dict[str, Any]:
    """A valid node of `node_type` whose main way out leads to `target`."""
    match node_type:
        case "message":
            node: dict[str, Any] = {
                "type": "message",
                "channel": "email",
                "content": copy.deepcopy(CONTENT_DEFAULTS["email"]),
            }
        case "delay":
            node = {"type": "delay", "duration": "1d"}
        case "wait_for_event":
            node = {
                "type": "wait_for_event",
                "paths": [{"event": "Order Completed", "next": None}],
                "timeout": "1d",
            }
        case "wait_for_inactivity":
            node = {"type": "wait_for_inactivity", "duration": "24h"}
        case "branch":
            node = {"type": "branch", "paths": [{"when": dict(DEFAULT_CONDITION), "next": None}]}
        case "experiment":
            node = {
                "type": "experiment",
                "variants": [
                    {"name": "a", "weight": 50, "next": None},
                    {"name": "b", "weight": 50, "next": None},
                ],
            }
        case "update_user":
            node = {"type": "update_user", "set": {"lifecycle_stage": "engaged"}}
        case "exit":
            return {"type": "exit"}
        case _:
            raise ValueError(f"unknown node type {node_type!r}")
    main = main_exit(node)
    if main is not None and target is not None:
        set_at(node, main, target)
    return node


def main_exit(node: Any) -> Path | None:
    """Where a node's main way out is written (`next`, `else`, `on_timeout`...), if it has one."""
    node_type = node.get("type") if isinstance(node, dict) else None
    match node_type:
        case "message" | "delay" | "wait_for_inactivity" | "update_user":
            return ("next",)
        case "wait_for_event":
            return ("on_timeout",)
        case "branch":
            return ("else",)
        case "experiment":
            return ("variants", 0, "next")
    return None


def references(node: Any) -> list[tuple[Path, str | None]]:
    """Every way out of a node as (path below the node, target node id or None for "end").

    `on_failure` is listed only when set: left out, a failure follows `next`.
    """
    if not isinstance(node, dict):
        return []
    found: list[tuple[Path, str | None]] = []
    for key in ("paths", "variants"):
        items = node.get(key)
        if isinstance(items, list):
            found += [
                ((key, i, "next"), _target(item.get("next")))
                for i, item in enumerate(items)
                if isinstance(item, dict)
            ]
    if node.get("type") in ("message", "delay", "wait_for_inactivity", "update_user"):
        found.append((("next",), _target(node.get("next"))))
    if node.get("type") == "branch":
        found.append((("else",), _target(node.get("else"))))
    if node.get("type") == "wait_for_event":
        found.append((("on_timeout",), _target(node.get("on_timeout"))))
    if isinstance(node.get("on_failure"), str):
        found.append((("on_failure",), node["on_failure"]))
    return found


def _target(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def nodes_of(document: dict[str, Any]) -> dict[str, Any]:
    """The document's nodes (an empty dict when it has none yet)."""
    nodes = document.get("nodes")
    return nodes if isinstance(nodes, dict) else {}


def get_at(value: Any, path: Path, default: Any = None) -> Any:
    """The value at `path`, or `default` when any step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return default
        elif not isinstance(value, dict) or step not in value:
            return default
        value = value[step]
    return value


def set_at(value: Any, path: Path, item: Any) -> None:
    """Write `item` at `path`, creating missing objects on the way."""
    for step, following in itertools.pairwise(path):
        if isinstance(step, str) and not isinstance(value.get(step), dict | list):
            value[step] = [] if isinstance(following, int) else {}
        value = value[step]
    value[path[-1]] = item


def drop_at(value: Any, path: Path) -> None:
    """Remove what is at `path` (nothing happens when it is not there)."""
    parent = get_at(value, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]


def unique_id(document: dict[str, Any], base: str) -> str:
    """`base`, or `base_2`, `base_3`... whichever no node has yet."""
    nodes = nodes_of(document)
    candidate, n = base, 1
    while candidate in nodes:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def add_node(
    document: dict[str, Any], node_id: str, node_type: str, after: tuple[str, Path] | None
) -> None:
    """Add a node; with `after` (node id, path of one of its ways out) insert it on that edge:
    the edge now leads to the new node, and the new node to where the edge led."""
    target = None
    if after is not None:
        target = _target(get_at(nodes_of(document).get(after[0]), after[1]))
    document.setdefault("nodes", {})[node_id] = new_node(node_type, target)
    if after is not None:
        set_at(document["nodes"][after[0]], after[1], node_id)
    if not isinstance(document.get("start"), str) or document["start"] not in document["nodes"]:
        document["start"] = node_id


def delete_node(document: dict[str, Any], node_id: str) -> None:
    """Remove a node; whatever led to it now leads where its main way out led (or ends)."""
    nodes = nodes_of(document)
    removed = nodes.pop(node_id, None)
    main = main_exit(removed)
    onward = _target(get_at(removed, main)) if main is not None else None
    if onward == node_id:
        onward = None
    _retarget(document, node_id, onward)


def rename_node(document: dict[str, Any], old: str, new: str) -> None:
    """Give a node a new id, keeping its place in the order and every reference to it."""
    nodes = nodes_of(document)
    document["nodes"] = {(new if key == old else key): node for key, node in nodes.items()}
    _retarget(document, old, new)


def _retarget(document: dict[str, Any], old: str, new: str | None) -> None:
    for node in nodes_of(document).values():
        for path, target in references(node):
            if target == old:
                if new is None and path == ("on_failure",):
                    node.pop("on_failure")
                else:
                    set_at(node, path, new)
    if document.get("start") == old:
        if new is not None:
            document["start"] = new
        elif nodes_of(document):
            document["start"] = next(iter(nodes_of(document)))


def change_type(document: dict[str, Any], node_id: str, node_type: str) -> None:
    """Replace a node by a new one of another type, keeping where its main way out led."""
    nodes = nodes_of(document)
    main = main_exit(nodes.get(node_id))
    target = _target(get_at(nodes.get(node_id), main)) if main is not None else None
    nodes[node_id] = new_node(node_type, target)


def flow_order(document: dict[str, Any]) -> list[str]:
    """Node ids in the order a user meets them (breadth first from start), then the rest."""
    nodes = nodes_of(document)
    start = document.get("start")
    order: list[str] = []
    queue = [start] if isinstance(start, str) and start in nodes else []
    while queue:
        node_id = queue.pop(0)
        if node_id in order:
            continue
        order.append(node_id)
        queue += [t for _, t in references(nodes[node_id]) if t in nodes and t not in order]
    return order + [node_id for node_id in nodes if node_id not in order]


def problem_nodes(problems: list[dict[str, str]]) -> set[str]:
    """The ids of the nodes that validation problems are about."""
    found = set()
    for problem in problems:
        match = re.match(r"nodes\.([a-z0-9][a-z0-9_-]*)", problem.get("path", ""))
        if match:
            found.add(match.group(1))
    return found


# --- message steps and their engagement ---------------------------------------------------


@dataclass(frozen=True)
class MessageStep:
    """A message step as the forms offer it to react to."""

    channel: str
    tracked: bool
    """Whether its opens and clicks are recorded (see `tracked`)."""

    @property
    def events(self) -> list[str]:
        """The engagement events a delivery of it can produce (none for a webhook)."""
        if self.channel not in TRACKED_CHANNELS:
            return []
        return events_of(self.channel)


def tracked(node: Any) -> bool:
    """Whether a message step's opens and clicks are recorded: the model's rule (a webhook
    never; else `track` when set; else unless transactional). False for anything that is not a
    valid message step yet."""
    try:
        return MessageNode.model_validate(node).tracked
    except ValidationError:
        return False


def tracked_by_default(node: Any) -> bool:
    """Whether a message step would be tracked with its `track` left out."""
    if not isinstance(node, dict):
        return False
    return tracked({key: value for key, value in node.items() if key != "track"})


def message_steps(document: dict[str, Any]) -> dict[str, MessageStep]:
    """The document's message steps, in the order users meet them."""
    nodes = nodes_of(document)
    return {
        node_id: MessageStep(str(nodes[node_id].get("channel")), tracked(nodes[node_id]))
        for node_id in flow_order(document)
        if isinstance(nodes[node_id], dict) and nodes[node_id].get("type") == "message"
    }


def earlier(document: dict[str, Any], node_id: str) -> set[str]:
    """The steps a user can pass through before reaching `node_id` (every step it can be
    reached from)."""
    sources: dict[str, set[str]] = {}
    for source, node in nodes_of(document).items():
        for _, target in references(node):
            if target is not None:
                sources.setdefault(target, set()).add(source)
    found: set[str] = set()
    queue = [node_id]
    while queue:
        for source in sources.get(queue.pop(), set()) - found:
            found.add(source)
            queue.append(source)
    return found


def engagement_sources(document: dict[str, Any], node_id: str) -> tuple[list[str], dict[str, str]]:
    """The message steps whose engagement the step `node_id` can wait for (those that can run
    before it, with tracking on), and why each other message step cannot be chosen."""
    before = earlier(document, node_id)
    allowed: list[str] = []
    refused: dict[str, str] = {}
    for message_id, step in message_steps(document).items():
        if message_id not in before:
            refused[message_id] = "it does not come before this step"
        elif step.channel == "webhook":
            refused[message_id] = "webhooks are never tracked"
        elif not step.tracked:
            refused[message_id] = "its tracking is off"
        else:
            allowed.append(message_id)
    return allowed, refused


# --- values and conditions as text ---------------------------------------------------------


def format_value(value: Any) -> str:
    """A condition or trait value as the user types it: `USD, CAD`, `200`, `true`, `gold`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(format_value(item) for item in value)
    return json.dumps(value)


def parse_value(text: str, *, as_list: bool = False) -> Any:
    """What the user typed as a JSON value: numbers and true/false as such, else text.

    With `as_list` a comma-separated list (or a JSON array).
    """
    text = text.strip()
    if as_list:
        if text.startswith("["):
            parsed = parse_json_or_text(text)
            if isinstance(parsed, list):
                return parsed
        return [parse_value(part) for part in text.split(",") if part.strip()]
    parsed = parse_json_or_text(text)
    return parsed if isinstance(parsed, int | float | bool | list) else text


def parse_json_or_text(text: str) -> Any:
    """JSON when the text is JSON, else the text itself (validation then says what is wrong)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def describe(condition: Any) -> str:
    """A condition in one line of words: `entry.total_price ≥ 200 and user.plan is one of a, b`."""
    if not isinstance(condition, dict):
        return "?"
    if "field" in condition:
        op = condition.get("op")
        words = f"{condition['field']} {OPS.get(str(op), str(op))}"
        if op in VALUELESS_OPS:
            return words
        return f"{words} {format_value(condition.get('value'))}"
    if "segment" in condition:
        return f"in segment {condition['segment']}"
    if "event_count" in condition:
        count = condition["event_count"] if isinstance(condition["event_count"], dict) else {}
        event = count.get("event", "?")
        event = "any event" if event == "*" else event
        within = f" in {count['within']}" if count.get("within") else ""
        op = OPS.get(str(condition.get("op")), str(condition.get("op")))
        return f"count of {event}{within} {op} {condition.get('value')}"
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in condition:
            items = condition[key] if isinstance(condition[key], list) else []
            parts = [describe(item) for item in items]
            text = joiner.join(f"({p})" if " and " in p or " or " in p else p for p in parts)
            return text or ("always" if key == "all" else "never")
    if "not" in condition:
        return f"not ({describe(condition['not'])})"
    if "message" in condition:
        return f"{condition['message']} was {condition.get('engagement', '?')}"
    return "?"

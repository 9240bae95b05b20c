"""`docs/journey-format.md` keeps up with the journey document it describes.

Every node type and every property name of the document's JSON Schema must be mentioned in the
reference in backticks (`on_timeout`), so a field added to the model without a word in the docs
fails here. Every complete journey example in the reference must also be a valid journey.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from journeys.model import Journey
from journeys.validation import validate

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "journey-format.md"
FENCED_BLOCK = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
EXAMPLE_KEYS = frozenset({"id", "entry", "start", "nodes"})


def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def _objects(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object (dictionary) anywhere inside a JSON Schema, the schema itself included."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def schema_vocabulary(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The node types (constants of the `type` discriminator) and every property name of
    every object schema: the root's, those in `$defs`, and any nested inline."""
    properties: set[str] = set()
    node_types: set[str] = set()
    for item in _objects(schema):
        declared = item.get("properties")
        if not isinstance(declared, dict):
            continue
        properties.update(declared)
        discriminator = declared.get("type")
        if isinstance(discriminator, dict) and isinstance(discriminator.get("const"), str):
            node_types.add(discriminator["const"])
    return node_types, properties


def mentioned(text: str) -> set[str]:
    """What the prose puts in backticks (`name`), fenced code blocks left out."""
    prose = FENCED_BLOCK.sub("", text)
    return {span.strip() for span in CODE_SPAN.findall(prose)}


def json_blocks(text: str) -> list[tuple[int, str]]:
    """Each fenced ```json block with the line its fence opens on."""
    return [
        (text.count("\n", 0, match.start()) + 1, match.group("body"))
        for match in FENCED_BLOCK.finditer(text)
        if match.group("lang").strip() == "json"
    ]


def full_examples(text: str) -> list[tuple[int, Any]]:
    """Each json block that is a whole journey (top-level id, entry, start and nodes)."""
    examples = []
    for line, body in json_blocks(text):
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            continue  # reported by test_json_blocks_parse
        if isinstance(value, dict) and value.keys() >= EXAMPLE_KEYS:
            examples.append((line, value))
    return examples


def test_reference_exists() -> None:
    assert REFERENCE.is_file(), f"{REFERENCE} is missing"


def test_schema_vocabulary_is_read() -> None:
    """Guards the walk itself: an empty vocabulary would make the next test pass vacuously."""
    node_types, properties = schema_vocabulary(Journey.model_json_schema(by_alias=True))
    assert {"message", "delay", "wait_for_event", "exit"} <= node_types
    assert {"on_timeout", "else", "not", "quiet_hours", "min_users"} <= properties


def test_every_node_type_and_field_is_documented() -> None:
    node_types, properties = schema_vocabulary(Journey.model_json_schema(by_alias=True))
    documented = mentioned(reference_text())
    missing_types = sorted(node_types - documented)
    missing_fields = sorted(properties - documented)
    report = []
    if missing_types:
        report.append("node types: " + ", ".join(missing_types))
    if missing_fields:
        report.append("fields: " + ", ".join(missing_fields))
    assert not report, (
        f"{REFERENCE.name} never mentions these in backticks (e.g. `on_timeout`); "
        "document them: " + "; ".join(report)
    )


def test_json_blocks_parse() -> None:
    broken = []
    for line, body in json_blocks(reference_text()):
        try:
            json.loads(body)
        except json.JSONDecodeError as error:
            broken.append(f"line {line}: {error}")
    assert not broken, "json blocks that do not parse:\n" + "\n".join(broken)


def test_reference_has_full_examples() -> None:
    assert full_examples(reference_text()), f"{REFERENCE.name} has no complete journey example"


def _example_params() -> list[Any]:
    if not REFERENCE.is_file():
        return []  # test_reference_exists says why
    return [
        pytest.param(line, document, id=f"line-{line}")
        for line, document in full_examples(reference_text())
    ]


@pytest.mark.parametrize(("line", "document"), _example_params())
def test_full_example_is_valid(line: int, document: Any) -> None:
    problems = [f"{p.path or '$'}: {p.message}" for p in validate(document)]
    where = f"{REFERENCE.name}, line {line}"
    assert not problems, f"the example at {where} is invalid:\n" + "\n".join(problems)

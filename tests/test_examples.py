"""The journey documents in `examples/` are valid, publishable and render, and segments parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from journeys.model import (
    SLUG_PATTERN,
    Condition,
    Journey,
    MessageNode,
    UpdateUserNode,
)
from journeys.templates import render_value
from journeys.validation import validate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
JOURNEY_FILES = sorted(EXAMPLES.glob("*.json"))
SEGMENT_FILES = sorted((EXAMPLES / "segments").glob("*.json"))
CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)

SAMPLE_CONTEXT: dict[str, Any] = {
    "user": {"id": "u-1", "first_name": "Ada", "email": "ada@example.com", "plan": "pro"},
    "entry": {"total_price": 149.5, "item_count": 2, "cart_url": "https://shop.example.com/cart"},
    "event": {"product_name": "Desk Lamp", "price": 39, "url": "https://shop.example.com/p/1"},
    "journey": {"id": "example", "name": "Example", "version": 1},
    "variant": "control",
}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def segment_ids() -> set[str]:
    return {load(path)["id"] for path in SEGMENT_FILES}


def test_the_examples_are_there() -> None:
    assert {path.stem for path in JOURNEY_FILES} >= {
        "abandoned-cart",
        "onboarding",
        "browse-abandonment",
        "win-back",
        "checkout-help",
    }
    assert {path.stem for path in SEGMENT_FILES} >= {"inactive-7d"}


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda path: path.stem)
def test_example_is_valid(path: Path) -> None:
    document = load(path)
    assert validate(document) == []
    assert document["id"] == path.stem


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda path: path.stem)
def test_example_is_publishable_with_the_example_segments(path: Path) -> None:
    # No example uses stored templates, and every segment it names is in examples/segments.
    assert validate(load(path), segments=segment_ids(), templates_known=set()) == []


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda path: path.stem)
def test_example_templates_render(path: Path) -> None:
    journey = Journey.model_validate(load(path))
    rendered = 0
    for node in journey.nodes.values():
        match node:
            case MessageNode(content=dict() as content):
                render_value(content, SAMPLE_CONTEXT)
                rendered += 1
            case UpdateUserNode(set=assignments):
                render_value(assignments, SAMPLE_CONTEXT)
    assert rendered


def test_examples_cover_every_node_type_and_channel() -> None:
    types: set[str] = set()
    channels: set[str] = set()
    for path in JOURNEY_FILES:
        for node in load(path)["nodes"].values():
            types.add(node["type"])
            if node["type"] == "message":
                channels.add(node["channel"])
    assert types == {
        "message",
        "delay",
        "wait_for_event",
        "wait_for_inactivity",
        "branch",
        "experiment",
        "update_user",
        "exit",
    }
    assert channels == {"email", "push", "sms", "in_app", "webhook"}


@pytest.mark.parametrize("path", SEGMENT_FILES, ids=lambda path: path.stem)
def test_segment_file_parses(path: Path) -> None:
    segment = load(path)
    assert set(segment) == {"id", "name", "condition"}
    assert segment["id"] == path.stem
    assert re.fullmatch(SLUG_PATTERN, segment["id"])
    assert isinstance(segment["name"], str)
    assert segment["name"]
    CONDITION.validate_python(segment["condition"])

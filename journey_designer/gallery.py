"""Starting points for new journeys: valid journey documents shipped with the designer."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).with_name("gallery")
ORDER = (
    "abandoned-cart", "onboarding", "browse-abandonment", "win-back", "checkout-help", "blank",
)  # fmt: skip
"""How the gallery lists them: the most common first, the blank page last."""


@cache
def _load() -> dict[str, dict[str, Any]]:
    return {key: json.loads((FOLDER / f"{key}.json").read_text(encoding="utf-8")) for key in ORDER}


def gallery() -> dict[str, dict[str, Any]]:
    """Every starting point by key, in gallery order."""
    return {key: copy.deepcopy(document) for key, document in _load().items()}


def starting_point(key: str, journey_id: str, name: str) -> dict[str, Any]:
    """A new journey document from a starting point, under its own id and name."""
    document = gallery()[key]
    document["id"] = journey_id
    document["name"] = name
    return document


def slugify(name: str) -> str:
    """A journey id made from a name: `Abandoned cart (EU)` → `abandoned-cart-eu`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:64].rstrip("-") or "journey"

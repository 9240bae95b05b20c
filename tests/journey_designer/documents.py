"""Journey documents the designer tests edit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    """A journey document of `examples/`."""
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return document


def engagement_journey() -> dict[str, Any]:
    """A cart nudge with message steps of every kind a wait may or may not react to: a
    transactional (untracked) email, a tracked email and a webhook before the wait, and an SMS
    after it."""
    return {
        "id": "cart-nudge",
        "name": "Cart nudge",
        "entry": {"event": "Added to Cart"},
        "start": "receipt",
        "nodes": {
            "receipt": {
                "type": "message", "channel": "email", "transactional": True,
                "content": {"subject": "Your cart", "body": "Saved: {{ entry.cart_id }}"},
                "next": "reminder",
            },
            "reminder": {
                "type": "message", "channel": "email", "next": "hook",
                "content": {"subject": "Still there?", "body": "https://shop.example.com/cart"},
            },
            "hook": {
                "type": "message", "channel": "webhook", "next": "wait",
                "content": {"url": "https://crm.example.com/hooks/cart"},
            },
            "wait": {
                "type": "wait_for_event", "timeout": "1d", "on_timeout": "later",
                "paths": [{"event": "Order Completed", "next": None}],
            },
            "later": {
                "type": "message", "channel": "sms",
                "content": {"body": "Last call! Reply STOP to opt out."},
            },
        },
    }  # fmt: skip

"""Credentials, documents and assertions shared by the API tests."""

from __future__ import annotations

import base64
from typing import Any

import httpx

WRITE_KEY = "test-write-key"
ADMIN_TOKEN = "test-admin-token"
UNSUBSCRIBE_SECRET = "test-unsubscribe-secret"


def basic(username: str, password: str = "") -> dict[str, str]:
    """An HTTP Basic header, built as Segment SDKs build it: `base64("<key>:")`."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    """A Bearer header."""
    return {"Authorization": f"Bearer {token}"}


SDK_AUTH = basic(WRITE_KEY)
ADMIN = bearer(ADMIN_TOKEN)


class ApiClient:
    """The test client with the right credentials per kind of endpoint."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def ingest(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        """POST to an ingest endpoint with the write key, as a Segment SDK does."""
        return await self.http.post(path, json=body, headers=SDK_AUTH, **kwargs)

    async def admin(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        """Call a management endpoint with the admin token."""
        if body is not None:
            kwargs["json"] = body
        return await self.http.request(method, path, headers=ADMIN, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error of that status and code, in the one error shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], list)
    return error


def paths_of(error: dict[str, Any]) -> list[str]:
    """The paths of an error's problem details."""
    return [detail["path"] for detail in error["details"]]


def journey_document(journey_id: str = "abandoned-cart", **top: Any) -> dict[str, Any]:
    """A valid journey with a message, a branch and an experiment (the spec's example)."""
    document: dict[str, Any] = {
        "id": journey_id,
        "name": "Abandoned cart recovery",
        "entry": {"event": "Added to Cart", "reentry": "7d"},
        "exit": [{"event": "Order Completed"}],
        "goal": {"event": "Order Completed", "within": "3d"},
        "start": "wait_checkout",
        "nodes": {
            "wait_checkout": {
                "type": "wait_for_event",
                "timeout": "24h",
                "on_timeout": "by_value",
                "paths": [{"event": "Checkout Started", "next": None}],
            },
            "by_value": {
                "type": "branch",
                "else": "copy_test",
                "paths": [
                    {
                        "when": {"field": "entry.total_price", "op": "gte", "value": 100},
                        "next": "vip_offer",
                    }
                ],
            },
            "vip_offer": {
                "type": "message",
                "channel": "email",
                "next": None,
                "content": {"subject": "Your cart, {{ user.first_name }}", "body": "SAVE20"},
            },
            "copy_test": {
                "type": "experiment",
                "variants": [
                    {"name": "urgency", "weight": 50, "next": "push_a"},
                    {"name": "control", "weight": 50, "next": None},
                ],
            },
            "push_a": {
                "type": "message",
                "channel": "push",
                "next": None,
                "content": {"title": "Selling out", "body": "Complete your purchase."},
            },
        },
    }
    document.update(top)
    return document

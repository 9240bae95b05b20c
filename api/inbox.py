"""The in-app inbox, for apps and browsers: a user's messages, marking one read, and the live
stream (Server-Sent Events) that announces each new message as it is delivered.

All take the write key, which ships inside web pages; so when `JOURNEYS_INAPP_SECRET` is set,
they also take `user_hash` = hex HMAC-SHA256(secret, user id), computed by the app's backend,
so that a visitor can only read their own inbox.

The stream sends, on connect, every unread message (oldest first), then each new one within
about a quarter of a second of its delivery. A client that reconnects (EventSource does so on
its own, sending `Last-Event-ID`) gets the unread messages again, so a message delivered while
it was away is never lost; the browser SDK shows each delivery once, and marking a message read
is what ends its announcements.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import WRITE_KEY, require_write_key_in_query
from api.deps import ROW_ID, StateDep, UserId
from api.errors import ApiError, error_responses
from api.live import InboxFeed
from journeys import tracking
from journeys.errors import InvalidLink
from journeys.store import DeliveryRecord, EventRecord, NewEvent

KEEP_ALIVE = 15.0
"""Seconds between keep-alive comments on a quiet stream (proxies close idle connections)."""
RECONNECT_MS = 2000
"""How long EventSource waits before reconnecting after the connection drops."""

UserHash = Annotated[
    str | None,
    Query(
        max_length=128,
        description="hex HMAC-SHA256(JOURNEYS_INAPP_SECRET, user id); required when the "
        "secret is set",
    ),
]


async def require_user_hash(user_id: UserId, state: StateDep, user_hash: UserHash = None) -> None:
    """Refuse the request (401) when the in-app secret is set and `user_hash` is not this
    user's."""
    secret = state.settings.inapp_secret
    if not secret:
        return
    expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    if user_hash is None or not hmac.compare_digest(user_hash.lower().encode(), expected.encode()):
        what = "missing" if user_hash is None else "invalid"
        message = f"{what} user_hash: identity verification is on for in-app messages"
        raise ApiError(401, "unauthorized", message)


USER_HASH = Depends(require_user_hash)

router = APIRouter(prefix="/v1/users", tags=["inbox"], responses=error_responses(401, 404, 422))


class Cta(BaseModel):
    """A message's call to action."""

    label: str
    url: str


class InboxMessage(BaseModel):
    """An in-app message in the user's inbox."""

    id: int = Field(description="the delivery id")
    title: str | None
    body: str
    kind: str = Field(description="modal, banner or tooltip")
    anchor: str | None = Field(description="tooltip: CSS selector of the element it points at")
    cta: Cta | None
    tracked: bool = Field(
        description="whether cta.url is a tracked link, which records `In-App Message Clicked` "
        "when followed"
    )
    read: bool
    created_at: datetime


def _tracked(secret: str, record: DeliveryRecord, url: str) -> bool:
    parts = urlsplit(url)
    if not parts.path.startswith(tracking.CLICK_PATH):
        return False
    try:
        click = tracking.verify_click(secret, parts.path.rsplit("/", 1)[-1])
    except InvalidLink:
        return False
    return click.delivery_id == record.id


def inbox_message(secret: str, record: DeliveryRecord) -> InboxMessage:
    """A delivery as the inbox shows it; `secret` signs the tracked links."""
    content = record.content
    assert record.id is not None  # stored records have ids
    cta = content.get("cta")
    return InboxMessage(
        id=record.id,
        title=content.get("title"),
        body=content.get("body", ""),
        kind=content.get("kind", "modal"),
        anchor=content.get("anchor"),
        cta=cta,
        tracked=cta is not None and _tracked(secret, record, cta["url"]),
        read=record.read_at is not None,
        created_at=record.created_at,
    )


@router.get(
    "/{user_id}/inbox", summary="A user's in-app messages", dependencies=[WRITE_KEY, USER_HASH]
)
def inbox(user_id: UserId, state: StateDep) -> list[InboxMessage]:
    """The user's in-app messages, unread and read, newest first (empty for unknown users)."""
    return [inbox_message(state.link_secret, record) for record in state.store.inbox(user_id)]


@router.post(
    "/{user_id}/inbox/{message_id}/read",
    summary="Mark a message read",
    dependencies=[WRITE_KEY, USER_HASH],
)
async def mark_read(
    user_id: UserId, message_id: Annotated[int, Path(ge=1, le=ROW_ID)], state: StateDep
) -> InboxMessage:
    """Mark the message read and record `In-App Message Viewed` (once; repeating is
    harmless). 404 unless it is this user's."""
    record = await run_in_threadpool(state.store.mark_read, user_id, message_id)
    read_at = record.read_at

    def viewed(delivery: DeliveryRecord, _recent: list[EventRecord]) -> NewEvent:
        return tracking.view_event(delivery, read_at or delivery.created_at)

    # After the read: a failure in between answers 500, and the repeated read records it.
    if await run_in_threadpool(state.store.record_engagement, message_id, viewed):
        state.wake_routing()
    return inbox_message(state.link_secret, record)


@router.get(
    "/{user_id}/inbox/stream",
    summary="A user's new in-app messages, live (Server-Sent Events)",
    dependencies=[Depends(require_write_key_in_query), USER_HASH],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def stream(user_id: UserId, state: StateDep) -> StreamingResponse:
    """Every unread message, then each new one as it is delivered: `event: message`, `id:` the
    delivery id, `data:` the message as the inbox shows it. The write key and `user_hash` come
    as query parameters (`key`, `user_hash`), since EventSource cannot send headers."""
    return StreamingResponse(
        _events(state.feed, state.link_secret, user_id),
        media_type="text/event-stream",
        # Proxies must pass each event on at once, and nobody may cache a live stream.
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )


async def _events(feed: InboxFeed, secret: str, user_id: str) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    announced: set[int] = set()
    async with feed.subscribe(user_id) as subscription:
        while True:
            unread = await subscription.next(timeout=KEEP_ALIVE)
            if unread is None:
                yield ": keep-alive\n\n"
                continue
            for record in unread:
                if record.id in announced:
                    continue
                message = inbox_message(secret, record)
                data = json.dumps(message.model_dump(mode="json"), separators=(",", ":"))
                yield f"id: {message.id}\nevent: message\ndata: {data}\n\n"
            # Read messages leave the list for good: forget them, so memory stays bounded.
            announced = {record.id for record in unread if record.id is not None}

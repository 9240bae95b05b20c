"""Unsubscribe links: the page a recipient lands on, and the one-click POST (RFC 8058).

No credential: the signed token in the link is the authority (`journeys.unsubscribe`). GET only
shows a confirmation page, because mail scanners open links; POST (the page's button, or a
mail client's one-click unsubscribe) records it. It is stored as an `identify` event setting
`unsubscribed_<channel>` (or `unsubscribed`), so profiles, segments and journeys' exit rules see
it like any other trait change, and every later non-transactional message on that channel is
skipped.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep
from journeys.errors import InvalidLink
from journeys.store import NewEvent
from journeys.unsubscribe import ALL_CHANNELS, PATH, Unsubscribe, verify

router = APIRouter(tags=["unsubscribe"])

Token = Annotated[str, Query(max_length=2000, description="the signed token from the link")]

CHANNEL_NAMES = {
    "email": "emails",
    "push": "push notifications",
    "sms": "text messages",
    "in_app": "in-app messages",
    "webhook": "messages",
    ALL_CHANNELS: "any messages",
}


def _page(title: str, text: str, *, button: bool = False, status: int = 200) -> HTMLResponse:
    form = '<form method="post"><button type="submit">Unsubscribe</button></form>' if button else ""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _verified(state: StateDep, token: str) -> Unsubscribe | HTMLResponse:
    try:
        return verify(state.link_secret, token)
    except InvalidLink:
        return _page(
            "This link is not valid",
            "Please use the unsubscribe link from the most recent message you received.",
            status=400,
        )


@router.get(PATH, summary="Unsubscribe page", response_class=HTMLResponse)
async def confirm(token: Token, state: StateDep) -> HTMLResponse:
    """A page asking to confirm (GET changes nothing: mail scanners follow links)."""
    request = _verified(state, token)
    if isinstance(request, HTMLResponse):
        return request
    channel = CHANNEL_NAMES[request.channel]
    return _page("Unsubscribe", f"Stop receiving {channel} from us?", button=True)


@router.post(PATH, summary="Unsubscribe (one click)", response_class=HTMLResponse)
async def unsubscribe(token: Token, state: StateDep) -> HTMLResponse:
    """Record the unsubscribe; repeating it changes nothing more."""
    request = _verified(state, token)
    if isinstance(request, HTMLResponse):
        return request
    now = datetime.now(UTC)
    traits = {request.trait: True}
    event = NewEvent(
        message_id=f"unsubscribe-{uuid.uuid4()}",
        user_id=request.user_id,
        type="identify",
        name=None,
        properties=traits,
        timestamp=now,
        received_at=now,
        traits=traits,
    )
    await run_in_threadpool(state.store.append_events, [event])
    state.wake_routing()
    channel = CHANNEL_NAMES[request.channel]
    return _page("You are unsubscribed", f"You will not receive {channel} from us any more.")

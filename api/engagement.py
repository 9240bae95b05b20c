"""Tracked links and the open pixel: `GET /c/{token}` and `GET /o/{token}.gif`.

No credential: the signed token is the authority (`journeys.tracking`). A click redirects to
the URL inside its token and nowhere else; a token that does not verify is a 404 and records
nothing, never a redirect. The pixel answers the same transparent GIF whatever its token, so
it tells nobody whether a token is genuine. Each hit is recorded as an engagement event of the
delivery's user (with `machine: true` when a machine rule says so), which the router then
takes to the journeys listening, like any event.

Recording never stands between a person and their link: when the store cannot record a hit,
the error is logged and the answer is the same.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep
from api.errors import error_responses
from journeys import tracking
from journeys.errors import InvalidLink, NotFound
from journeys.store import DeliveryRecord, EventRecord, NewEvent
from journeys.tracking import CLICK_PATH, OPEN_PATH, PIXEL_SUFFIX, Hit

log = logging.getLogger(__name__)

router = APIRouter(tags=["engagement"])

GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
"""A 1×1 transparent GIF (43 bytes)."""
NO_STORE = {"Cache-Control": "no-store"}
"""Every hit must reach us: no browser, mail proxy or CDN may answer from a cache."""

EventMaker = Callable[[DeliveryRecord, list[EventRecord]], NewEvent]


def _hit(request: Request) -> Hit:
    return Hit(at=datetime.now(UTC), user_agent=request.headers.get("user-agent"))


async def _record(
    state: StateDep, delivery_id: int, event: EventMaker, since: datetime | None = None
) -> None:
    """Record the event of a hit on a delivery's link (nothing when the delivery is gone)."""
    try:
        new = await run_in_threadpool(
            state.store.record_engagement, delivery_id, event, since=since
        )
    except Exception:
        log.exception("could not record a hit on delivery %s", delivery_id)
        return
    if new:
        state.wake_routing()


@router.get(
    f"{CLICK_PATH}{{token}}",
    summary="Follow a tracked link",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "to the link's URL"}, **error_responses(404)},
)
async def click(token: str, request: Request, state: StateDep) -> RedirectResponse:
    """Record the click and redirect (302) to the URL the token was made for. A token that
    does not verify: 404, nothing recorded. A link whose delivery no longer exists still
    redirects."""
    try:
        link = tracking.verify_click(state.link_secret, token)
    except InvalidLink:
        raise NotFound("this link is not valid") from None
    hit = _hit(request)

    def event(delivery: DeliveryRecord, recent: list[EventRecord]) -> NewEvent:
        return tracking.click_event(delivery, link.url, hit, recent)

    await _record(state, link.delivery_id, event, since=hit.at - tracking.SCANNER_BURST)
    return RedirectResponse(link.url, status_code=302, headers=NO_STORE)


@router.get(
    f"{OPEN_PATH}{{token}}{PIXEL_SUFFIX}",
    summary="The open pixel",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "a 1×1 transparent GIF"}},
)
async def pixel(token: str, request: Request, state: StateDep) -> Response:
    """Record the open; always the same GIF, uncached, whether or not the token verifies."""
    try:
        delivery_id = tracking.verify_open(state.link_secret, token)
    except InvalidLink:
        delivery_id = None
    if delivery_id is not None:
        hit = _hit(request)

        def event(delivery: DeliveryRecord, _recent: list[EventRecord]) -> NewEvent:
            return tracking.open_event(delivery, hit)

        await _record(state, delivery_id, event)
    return Response(GIF, media_type="image/gif", headers=NO_STORE)

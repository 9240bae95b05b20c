"""CORS for the routes web pages call: open to any origin, and only there.

Browsers send events (Segment and Mixpanel ingest, `/trigger`), read the in-app inbox and its
live stream, and load the SDK from pages of any origin, with the write key, never with cookies:
those routes answer every origin. Management routes (admin token) send no CORS headers, so a
page cannot call them from a browser.
"""

from __future__ import annotations

import re

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC = re.compile(
    r"^/(v1/(track|identify|page|screen|batch)|trigger|mixpanel/.*|sdk/.*"
    r"|v1/users/[^/]+/inbox(/.*)?)$"
)
"""The paths web pages call."""
PREFLIGHT_MAX_AGE = 86400
"""Seconds a browser may reuse a preflight answer."""


class PublicCors:
    """ASGI middleware: CORS for any origin on `PUBLIC` paths; other paths pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST"],
            allow_headers=["*"],  # preflights name theirs (Authorization, Content-Type…)
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with CORS headers (and preflights) on public paths only."""
        if scope["type"] == "http" and PUBLIC.match(scope["path"]):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)

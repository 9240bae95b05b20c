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
CREDENTIALED = "/mixpanel/"
"""mixpanel-browser sends every request with credentials (`withCredentials`), which browsers
refuse to let read a `*` answer: under this prefix the answer names the page's origin and allows
credentials. Nothing there reads a cookie (each record carries its token), so this opens
nothing more."""


class PublicCors:
    """ASGI middleware: CORS for any origin on `PUBLIC` paths; other paths pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._cors, self._credentialed = (
            CORSMiddleware(
                app,
                allow_origins=["*"],
                allow_methods=["GET", "POST"],
                allow_headers=["*"],  # preflights name theirs (Authorization, Content-Type…)
                allow_credentials=credentials,
                max_age=PREFLIGHT_MAX_AGE,
            )
            for credentials in (False, True)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with CORS headers (and preflights) on public paths only."""
        if scope["type"] == "http" and PUBLIC.match(scope["path"]):
            credentialed = scope["path"].startswith(CREDENTIALED)
            await (self._credentialed if credentialed else self._cors)(scope, receive, send)
        else:
            await self._app(scope, receive, send)

"""The browser SDK, served by the API: `GET /sdk/journeys.js` and the stylesheet it links,
`GET /sdk/journeys.css` (both hand-written files beside this module; no build step).

Pages of any origin load them (CORS is open on `/sdk/`), and browsers may keep them for a few
minutes, so a new version reaches every page soon after a deploy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

HERE = Path(__file__).parent
MAX_AGE = 300
"""Seconds browsers and CDNs may keep the files."""
FILES = {"journeys.js": "text/javascript", "journeys.css": "text/css"}
"""Each file served, and its media type."""

router = APIRouter(prefix="/sdk", tags=["browser SDK"])


def _serve(name: str, media_type: str) -> None:
    body = (HERE / name).read_bytes()  # read once: the files ship with the package

    async def endpoint() -> Response:
        return Response(
            body,
            media_type=f"{media_type}; charset=utf-8",
            headers={"Cache-Control": f"public, max-age={MAX_AGE}"},
        )

    endpoint.__doc__ = f"The browser SDK's `{name}`."
    router.get(f"/{name}", summary=f"The browser SDK: {name}", response_class=Response)(endpoint)


for _name, _media_type in FILES.items():
    _serve(_name, _media_type)

"""What `journeys tokens` and `journeys people` share: a call to the API with the admin token
(JOURNEYS_API_URL, JOURNEYS_ADMIN_TOKEN), its failures printed for the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api_client import ApiClient


def as_admin(call: Callable[[ApiClient], None]) -> int:
    """Run `call` with a client of the API holding the admin token; the exit code: 1 when the
    API refused (its message and details printed), 2 when it could not be reached."""
    from api_client import ApiClient, ApiError, ApiUnreachable
    from journeys.settings import Component, load_settings

    settings = load_settings().require(Component.ACCESS)
    with ApiClient(settings.api_url, admin_token=settings.admin_token) as client:
        try:
            call(client)
        except ApiUnreachable as error:
            print(f"journeys: {error}", file=sys.stderr)
            return 2
        except ApiError as error:
            print(f"journeys: {error.message} (HTTP {error.status} {error.code})", file=sys.stderr)
            for line in error.detail_lines():
                print(f"  {line}", file=sys.stderr)
            return 1
    return 0

"""The designer's way to the API: one client per call, with the token of whoever uses the
designer (the admin token when nobody signs in, else the person's session), and every failure
turned into a clear message on the page (never a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import streamlit as st

from api_client import ApiClient, ApiError, ApiUnreachable
from journey_designer.widgets import Doc
from journeys.access import Role
from journeys.errors import ConfigurationError
from journeys.settings import Settings, SignIn, load_settings

T = TypeVar("T")
TIMEOUT = 10.0
SESSION = "signin.session"
"""The signed-in person's session, as `POST /v1/sessions` answered it."""
NOTICE = "signin.notice"
"""Why the person was signed out, shown on the sign-in page."""


def settings() -> Settings:
    """The settings from the environment (checked by the app before any page runs)."""
    return load_settings()


def session() -> dict[str, Any] | None:
    """The signed-in person's session (`{token, expires_at, email, role}`), if any."""
    found: dict[str, Any] | None = st.session_state.get(SESSION)
    return found


def role() -> Role:
    """What whoever uses the designer may do: the signed-in person's role, or admin when
    nobody signs in (the designer then acts with the admin token)."""
    current = session()
    return Role.ADMIN if current is None else Role(current["role"])


def needs(needed: Role, doing: str) -> str | None:
    """None when whoever uses the designer may do this, else why not (e.g. "publishing needs
    the publisher role"): disabled buttons say it."""
    return None if role().includes(needed) else f"{doing} needs the {needed} role"


def token(config: Settings) -> str | None:
    """The token calls carry: the admin token when nobody signs in, else the session's."""
    if config.designer_sign_in is SignIn.OFF:
        return config.admin_token
    current = session()
    return None if current is None else str(current["token"])


def end_session(notice: str) -> None:
    """Forget the signed-in person's session; the sign-in page then says `notice`."""
    st.session_state.pop(SESSION, None)
    st.session_state[NOTICE] = notice


def error_message(error: Exception, where: str) -> str:
    """What to tell the user about a failed call to the API."""
    match error:
        case ApiUnreachable():
            return f"{error}. Is the API running? (`journeys up` starts it.)"
        case ApiError(status=401):
            return f"The API at {where} refused the admin token: check JOURNEYS_ADMIN_TOKEN."
        case ApiError(status=404):
            return f"Not found: {error.message}"
        case ApiError(status=422, details=details) if details:
            lines = "\n".join(f"- `{line}`" for line in error.detail_lines())
            return f"{error.message}:\n\n{lines}"
        case ApiError():
            return f"The API answered {error.status} ({error.code}): {error.message}"
        case ConfigurationError():
            return str(error)
    return f"Unexpected error talking to the API: {type(error).__name__}: {error}"


def located(error: ApiError) -> list[dict[str, str]]:
    """The problems of a refusal that say where they are (`{path, message}`)."""
    return [d for d in error.details if isinstance(d, dict) and {"path", "message"} <= d.keys()]


def call(
    action: Callable[[ApiClient], T],
    *,
    doing: str = "",
    problems_to: Doc | None = None,
    only_beside: bool = False,
) -> T | None:
    """Run `action` with a client of the API; on failure show why and return None.

    With `problems_to`, located problems of a 422 are also shown beside that document's fields;
    with `only_beside` too, only there (for checks made while the user types, where a message
    above the form at every keystroke would be noise).
    """
    config = settings()
    try:
        with ApiClient(config.api_url, admin_token=token(config), timeout=TIMEOUT) as client:
            return action(client)
    except (ApiError, ApiUnreachable, ConfigurationError) as error:
        if isinstance(error, ApiError) and error.status == 401 and session() is not None:
            end_session(
                "Your session has ended (it expired, or you were signed out): sign in again."
            )
            st.rerun()
        if problems_to is not None and isinstance(error, ApiError) and error.status == 422:
            problems = located(error)
            problems_to.set_problems(problems)
            if only_beside and problems:
                return None
        prefix = f"Could not {doing}. " if doing else ""
        st.error(prefix + error_message(error, config.api_url), icon=":material/error:")
        return None


def require(action: Callable[[ApiClient], T], *, doing: str = "") -> T:
    """Like `call`, but the page stops here on failure (nothing sensible to show without it)."""
    result = call(action, doing=doing)
    if result is None:
        st.stop()
    return result


def workflow_url(config: Settings, workflow_id: str) -> str:
    """A user's run in the Temporal Web UI."""
    return (
        f"{config.temporal_ui_url.rstrip('/')}/namespaces/{quote(config.temporal_namespace)}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )

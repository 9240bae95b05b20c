"""The designer (placeholder): the journeys the API holds, and a way into the Temporal UI.

Run by `journeys designer` (`streamlit run`). It talks to the API with httpx, never to the
database, and shows every failure as a message, never a traceback.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import streamlit as st

from journeys.api_client import ApiClient, ApiError, ApiUnreachable
from journeys.errors import ConfigurationError
from journeys.settings import Settings, load_settings

COLUMNS = ("id", "name", "status", "version", "updated_at")


def temporal_runs_url(settings: Settings, journey_id: str) -> str:
    """The Temporal Web UI's list of a journey's runs."""
    query = quote(f"JourneyId='{journey_id}'", safe="")
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/"
        f"{settings.temporal_namespace}/workflows?query={query}"
    )


def journey_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per journey: its listed fields and a link to its runs in the Temporal UI."""
    with ApiClient(settings.api_url, admin_token=settings.admin_token, timeout=5.0) as client:
        journeys = client.list_journeys()
    return [
        {
            **{column: journey.get(column) for column in COLUMNS},
            "runs": temporal_runs_url(settings, str(journey.get("id"))),
        }
        for journey in journeys
    ]


def error_message(error: Exception, settings: Settings) -> str:
    """What to tell the user about a failed call to the API."""
    match error:
        case ApiUnreachable():
            return f"{error} Is the API running? (`journeys up` starts it.)"
        case ApiError(status=401):
            return (
                f"The API at {settings.api_url} refused the admin token: check "
                "JOURNEYS_ADMIN_TOKEN."
            )
        case ApiError():
            return f"The API answered {error.status} ({error.code}): {error.message}"
        case ConfigurationError():
            return str(error)
    return f"Unexpected error talking to the API: {type(error).__name__}: {error}"


def main() -> None:
    """Render the page."""
    st.set_page_config(page_title="journeys designer", layout="wide")
    st.title("journeys designer")
    st.info(
        "The visual designer arrives with a later release. Until then, write journeys as JSON "
        "documents, check them with `journeys validate FILE...` and publish them with "
        "`journeys publish FILE...`."
    )
    try:
        settings = load_settings()
    except ConfigurationError as error:
        st.error(str(error))
        return
    st.link_button("Open the Temporal Web UI", settings.temporal_ui_url)
    st.subheader("Journeys")
    if settings.admin_token is None:
        st.error("JOURNEYS_ADMIN_TOKEN is not set: the designer needs it to read from the API.")
        return
    try:
        rows = journey_rows(settings)
    except Exception as error:  # every failure becomes a message, never a traceback
        st.error(error_message(error, settings))
        return
    if not rows:
        st.write(
            "No journeys yet. Publish the examples with "
            "`journeys publish examples/segments/*.json examples/*.json`, or run `journeys demo`."
        )
        return
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "id": "journey",
            "updated_at": st.column_config.TextColumn("updated"),
            "runs": st.column_config.LinkColumn("runs", display_text="open in Temporal"),
        },
    )


main()

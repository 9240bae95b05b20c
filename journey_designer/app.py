"""The journeys designer: design, preview, publish and watch journeys.

Run by `journeys designer` (`streamlit run`). It is a client of the HTTP API (httpx, the URL from
JOURNEYS_API_URL), never of the database, and shows every failure as a message, never a
traceback. It calls the API with the admin token (JOURNEYS_ADMIN_TOKEN) when nobody signs in,
else as the signed-in person (`journey_designer.signin`), showing only what their role allows.
"""

from __future__ import annotations

import streamlit as st

from journey_designer.api import role
from journey_designer.signin import signed_in
from journeys.access import Role
from journeys.errors import ConfigurationError
from journeys.settings import Component, load_settings

# Every page: its script (relative to this file), title and icon. (A comment, not a docstring:
# Streamlit's magic would print a bare string in the app script.)
PAGES = {
    "journeys": ("views/journeys.py", "Journeys", ":material/route:"),
    "editor": ("views/editor.py", "Editor", ":material/edit:"),
    "analytics": ("views/analytics.py", "Analytics", ":material/insights:"),
    "segments": ("views/segments.py", "Segments", ":material/group:"),
    "broadcasts": ("views/broadcasts.py", "Broadcasts", ":material/campaign:"),
    "predictions": ("views/predictions.py", "Predictions", ":material/model_training:"),
    "users": ("views/users.py", "Users", ":material/person_search:"),
    "settings": ("views/settings.py", "Settings", ":material/settings:"),
    "people": ("views/people.py", "People", ":material/badge:"),
}
ADMIN_PAGES = {"people"}


def main() -> None:
    """Check the configuration, then run the chosen page."""
    st.set_page_config(page_title="journeys designer", layout="wide", page_icon="🧭")
    try:
        settings = load_settings().require(Component.DESIGNER)
    except ConfigurationError as error:
        st.error(str(error))
        return
    if not signed_in(settings):
        return
    pages = [
        st.Page(script, title=title, icon=icon, default=name == "journeys")
        for name, (script, title, icon) in PAGES.items()
        if name not in ADMIN_PAGES or role().includes(Role.ADMIN)
    ]
    page = st.navigation(pages)
    st.sidebar.caption(f"API: {settings.api_url}")
    st.sidebar.link_button("Temporal Web UI", settings.temporal_ui_url)
    page.run()


main()

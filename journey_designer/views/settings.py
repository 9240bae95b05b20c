"""Settings page: what holds across every journey. Each section reads the workspace settings,
changes its own fields and writes them all back (`PUT /v1/settings` replaces the whole)."""

from __future__ import annotations

import streamlit as st

from journey_designer.api import require
from journey_designer.rate_limits import rate_limits


def main() -> None:
    """Render the page."""
    st.title("Settings")
    stored = require(lambda client: client.get_settings(), doing="load the settings")
    rate_limits(stored)


main()

"""Journeys page: every journey at a glance, and new journeys from a gallery."""

from __future__ import annotations

from typing import Any

import streamlit as st

from api_client import ApiClient, ApiError
from journey_designer.api import call, needs, require
from journey_designer.document import SLUG
from journey_designer.gallery import gallery, slugify, starting_point
from journey_designer.state import open_journey
from journeys.access import Role

EDITOR = "views/editor.py"
ANALYTICS = "views/analytics.py"


def journey_rows(client: ApiClient) -> list[dict[str, Any]]:
    """Each journey with its status, version and headline figures."""
    rows = []
    for journey in client.list_journeys():
        figures = client.stats(journey["id"]) if journey.get("version") is not None else {}
        rows.append(
            {
                "name": journey.get("name"),
                "id": journey["id"],
                "status": journey.get("status"),
                "version": journey.get("version"),
                "entered": figures.get("entered", 0),
                "active": figures.get("active", 0),
                "converted": figures.get("converted", 0),
                "updated": journey.get("updated_at"),
            }
        )
    return rows


def journey_list() -> None:
    """The table of journeys, and buttons to open one."""
    rows = require(journey_rows, doing="list the journeys")
    if not rows:
        st.info("No journeys yet: start one from the gallery below.")
        return
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "version": st.column_config.NumberColumn("version", help="latest published"),
            "updated": st.column_config.DatetimeColumn("updated", format="YYYY-MM-DD HH:mm"),
        },
    )
    ids = [row["id"] for row in rows]
    chosen = st.selectbox("Journey", ids, key="journeys.chosen")
    edit, analytics, _ = st.columns([1, 1, 4])
    if edit.button(
        "Open in the editor", icon=":material/edit:", key="journeys.edit"
    ) and open_journey(chosen):
        st.switch_page(EDITOR)
    if analytics.button("Analytics", icon=":material/insights:", key="journeys.analytics"):
        st.session_state["analytics.journey"] = chosen
        st.switch_page(ANALYTICS)


def create(key: str, name: str, journey_id: str) -> None:
    """Save a new journey from a starting point and open it in the editor."""
    if not SLUG.match(journey_id):
        st.error("The id must be lower-case letters, digits and dashes (at most 64).")
        return

    def exists(client: ApiClient) -> bool:
        try:
            client.get_journey(journey_id)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    taken = call(exists, doing="check the id")
    if taken:
        st.error(f"A journey with the id '{journey_id}' exists already: choose another id.")
        return
    if taken is None:
        return
    document = starting_point(key, journey_id, name)
    saved = call(lambda client: client.put_journey(document), doing="create the journey")
    if saved is not None and open_journey(journey_id):
        st.switch_page(EDITOR)


def new_journey() -> None:
    """The gallery of starting points and the name / id of the new journey."""
    st.subheader("Start a new journey")
    items = gallery()
    columns = st.columns(len(items))
    for column, (key, document) in zip(columns, items.items(), strict=True):
        with column, st.container(border=True, height=230):
            st.markdown(f"**{document['name']}**")
            st.caption(document.get("description", ""))
            if st.button("Use this", key=f"gallery:{key}"):
                st.session_state["journeys.new"] = key
    chosen: str | None = st.session_state.get("journeys.new")
    if chosen is None:
        return
    key = chosen
    with st.form("journeys.create"):
        st.markdown(f"New journey from **{items[key]['name']}**")
        name = st.text_input("Name", value=items[key]["name"], key="journeys.name")
        journey_id = st.text_input(
            "Id (optional)",
            key="journeys.id",
            help="Lower-case letters, digits and dashes; part of every workflow id. "
            "Empty: made from the name.",
        )
        if st.form_submit_button("Create and open in the editor", type="primary"):
            create(key, name.strip() or items[key]["name"], journey_id.strip() or slugify(name))


def main() -> None:
    """Render the page."""
    st.title("Journeys")
    journey_list()
    if cannot := needs(Role.EDITOR, "starting a journey"):
        st.caption(f"{cannot.capitalize()}.")
    else:
        new_journey()


main()

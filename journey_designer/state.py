"""What the pages share in the session: the journey open in the editor (its document, as
saved and as edited, and its status), and the catalog the forms pick from."""

from __future__ import annotations

import copy
from typing import Any

import streamlit as st

from journey_designer.api import call
from journey_designer.forms import Catalog
from journey_designer.widgets import Doc

JOURNEY = Doc("journey")
"""The journey document being edited."""
SEGMENT = Doc("segment")
"""The segment being edited (`{id, name, condition}`)."""
META = "journey.meta"
SAVED = "journey.saved"


def open_journey(journey_id: str) -> bool:
    """Load a journey's draft into the editor; False (with a message) when that failed."""
    detail = call(lambda client: client.get_journey(journey_id), doing=f"open '{journey_id}'")
    if detail is None:
        return False
    if not JOURNEY.loaded or JOURNEY.value.get("id") != journey_id:
        st.session_state["editor.node"] = None  # another journey: its first step
    JOURNEY.load(copy.deepcopy(detail["draft"]))
    remember_saved(detail)
    return True


def remember_saved(detail: dict[str, Any]) -> None:
    """Record what the API holds for the open journey (`GET /v1/journeys/{id}`)."""
    st.session_state[META] = {k: v for k, v in detail.items() if k != "draft"}
    st.session_state[SAVED] = copy.deepcopy(detail["draft"])


def meta() -> dict[str, Any]:
    """Status, version and latest publication of the open journey."""
    found: dict[str, Any] = st.session_state.get(META, {})
    return found


def unsaved() -> bool:
    """Whether the editor holds changes the API has not saved."""
    return bool(JOURNEY.loaded and st.session_state.get(SAVED) != JOURNEY.value)


def catalog() -> Catalog:
    """The segments and templates the forms offer (empty when the API cannot say)."""
    segments = call(lambda client: client.list_segments(), doing="list the segments") or []
    templates = call(lambda client: client.list_templates(), doing="list the templates") or []
    return Catalog(
        segments={s["id"]: s.get("name", s["id"]) for s in segments}, templates=templates
    )

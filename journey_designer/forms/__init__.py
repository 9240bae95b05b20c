"""Typed forms for every part of a journey document: one per node type (in a module per
family: messages, waits, flow) and the entry, exit rules, goal and settings (`journey`). Each
edits the document in session state in place (see `widgets`) and shows the validation problems
of what it edits beside the field concerned."""

from __future__ import annotations

import streamlit as st

from journey_designer import widgets
from journey_designer.document import NODE_TYPES, Path, change_type
from journey_designer.forms.common import Catalog
from journey_designer.forms.flow import branch_form, experiment_form, update_user_form
from journey_designer.forms.journey import (
    about_form,
    entry_form,
    exit_form,
    goal_form,
    settings_form,
)
from journey_designer.forms.messages import message_form
from journey_designer.forms.waits import delay_form, wait_for_event_form, wait_for_inactivity_form
from journey_designer.widgets import Doc

__all__ = [
    "Catalog",
    "about_form",
    "entry_form",
    "exit_form",
    "goal_form",
    "node_form",
    "settings_form",
]


def node_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """The form of one node, by its type, with its problems."""
    base: Path = ("nodes", node_id)
    node_type = doc.get((*base, "type"))
    widgets.select(
        doc,
        (*base, "type"),
        "Step type",
        list(NODE_TYPES),
        labels=lambda t: NODE_TYPES.get(t, str(t)),
        help="Changing the type starts this step afresh (its main way out is kept).",
        on_select=lambda chosen: change_type(doc.value, node_id, chosen),
        structural=True,
    )
    match node_type:
        case "message":
            message_form(doc, node_id, catalog)
        case "delay":
            delay_form(doc, node_id)
        case "wait_for_event":
            wait_for_event_form(doc, node_id, catalog)
        case "wait_for_inactivity":
            wait_for_inactivity_form(doc, node_id)
        case "branch":
            branch_form(doc, node_id, catalog)
        case "experiment":
            experiment_form(doc, node_id)
        case "update_user":
            update_user_form(doc, node_id)
        case "exit":
            st.caption("Users who reach this step leave the journey (status: completed).")
    doc.flag_within(base)

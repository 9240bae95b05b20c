"""Editor page: the journey drawn live, a form per step, entry / exit / goal / settings,
validation beside each field, save, publish, pause / resume / archive, preview, a test run for
one user (simulated), version history with diffs, and JSON import / export."""

from __future__ import annotations

import copy
import difflib
import json
from typing import Any

import streamlit as st

from journey_designer import forms, state
from journey_designer.api import call, needs
from journey_designer.document import (
    NODE_ID,
    NODE_TYPES,
    Path,
    add_node,
    delete_node,
    main_exit,
    nodes_of,
    problem_nodes,
    references,
    rename_node,
    unique_id,
)
from journey_designer.graph import edge_label, journey_dot
from journey_designer.preview import preview_panel
from journey_designer.state import JOURNEY, meta, open_journey, remember_saved, unsaved
from journey_designer.testing import test_tab
from journeys.access import Role
from journeys.validation import format_path

DOC = JOURNEY
NODE = "editor.node"
CONFIRM = "editor.confirm"
FLASH = "editor.flash"
PENDING = "editor.node.pending"


def choose_journey() -> None:
    """With nothing open: pick a journey to open."""
    st.title("Editor")
    journeys = call(lambda client: client.list_journeys(), doing="list the journeys")
    if journeys is None:
        return
    if not journeys:
        st.info("No journeys yet: create one from the gallery on the Journeys page.")
        return
    chosen = st.selectbox("Open a journey", [j["id"] for j in journeys], key="editor.open")
    if st.button("Open", key="editor.open.button", type="primary") and open_journey(chosen):
        st.rerun()


def flash(message: str) -> None:
    """A success message shown once, after the rerun the action causes."""
    st.session_state[FLASH] = message


def save(document: dict[str, Any]) -> bool:
    """Save the draft; whether it worked."""
    detail = call(
        lambda client: client.put_journey(document), doing="save the draft", problems_to=DOC
    )
    if detail is None:
        return False
    remember_saved(detail)
    return True


def publish(document: dict[str, Any]) -> None:
    """Save the draft, then publish it."""
    if not save(document):
        return
    version = call(lambda client: client.publish(document["id"]), doing="publish", problems_to=DOC)
    if version is not None:
        open_journey(document["id"])
        flash(
            f"Published version {version}: new entries get it. "
            "Users already inside keep the version they entered with."
        )
        st.rerun()


def set_status(journey_id: str, action: str) -> None:
    """Pause, resume or archive, then reload the journey's status."""
    result = call(
        lambda client: client.set_journey_status(journey_id, action),  # type: ignore[arg-type]
        doing=action,
    )
    if result is not None:
        draft = copy.deepcopy(DOC.value)
        open_journey(journey_id)
        DOC.load(draft)  # keep unsaved edits
        extra = f" ({result['exited']} users inside exited)" if action == "archive" else ""
        flash(f"Journey {journey_id} is now {result['status']}{extra}.")
        st.rerun()


def ask(action: str) -> None:
    """Open the confirmation of `action` (publish or archive)."""
    st.session_state[CONFIRM] = action


def actions(document: dict[str, Any]) -> None:
    """Save, publish, pause / resume, archive; confirmations for those that need one."""
    info = meta()
    status = info.get("status", "draft")
    journey_id = str(document.get("id"))
    columns = st.columns(5)
    closed = status == "archived"
    saving = columns[0].button(
        "Save draft", icon=":material/save:", key="editor.save", disabled=closed
    )
    if saving and save(document):
        flash("Draft saved. Publish it to make it live.")
        st.rerun()
    cannot_publish = needs(Role.PUBLISHER, "publishing")
    # A callback, so the run it causes already validates as publishing would (see main).
    columns[1].button(
        "Publish…", icon=":material/rocket_launch:", key="editor.publish", type="primary",
        disabled=closed or cannot_publish is not None, help=cannot_publish,
        on_click=ask, args=("publish",),
    )  # fmt: skip
    if cannot_publish is not None:
        st.caption(f"{cannot_publish.capitalize()}: ask a publisher to publish your draft.")
    else:
        status_actions(journey_id, status, info, columns)
    if columns[4].button(
        "Reload saved", icon=":material/undo:", key="editor.reload", disabled=not unsaved()
    ):
        open_journey(journey_id)
        st.rerun()
    confirm(document, info)


def status_actions(journey_id: str, status: str, info: dict[str, Any], columns: Any) -> None:
    """Pause or resume, and archive (publishers only)."""
    if status == "live" and columns[2].button("Pause", icon=":material/pause:", key="editor.pause"):
        set_status(journey_id, "pause")
    if status == "paused" and columns[2].button(
        "Resume", icon=":material/play_arrow:", key="editor.resume"
    ):
        set_status(journey_id, "resume")
    if (
        info.get("version") is not None
        and status != "archived"
        and columns[3].button("Archive…", icon=":material/archive:", key="editor.archive")
    ):
        st.session_state[CONFIRM] = "archive"


def publishing() -> bool:
    """Whether the publish confirmation is open (the document is then checked as publishing
    checks it: stored segments and templates too)."""
    return bool(st.session_state.get(CONFIRM) == "publish")


def confirm(document: dict[str, Any], info: dict[str, Any]) -> None:
    """The pending confirmation, if any, saying what happens to users already inside.

    Publishing is offered only when the document passes what publishing checks; otherwise the
    confirmation lists the problems (which also show beside their fields) instead.
    """
    pending = st.session_state.get(CONFIRM)
    if pending is None:
        return
    version = info.get("version")
    with st.container(border=True):
        if pending == "publish" and DOC.problems:
            st.error(
                f"Not publishable yet: {len(DOC.problems)} problem(s), each also shown beside "
                "its step or field.",
                icon=":material/block:",
            )
            for problem in DOC.problems:
                st.markdown(f"- `{problem['path'] or '$'}`: {problem['message']}")
            if st.button("Cancel", key="editor.confirm.no"):
                st.session_state[CONFIRM] = None
                st.rerun()
            return
        if pending == "publish":
            if version is None:
                st.warning(
                    "Publish version 1? The journey goes live: users who match the entry from "
                    "now on start it. (Publishing again later never changes the journey for "
                    "users already inside: they keep the version they entered with.)"
                )
            else:
                st.warning(
                    f"Publish version {version + 1}? New entries get it. Users already inside "
                    f"keep the version they entered with (v{version} or older) until they leave."
                )
        else:
            active = call(lambda client: client.stats(str(document["id"]))) or {}
            st.warning(
                "Archive this journey? This is final: no new entries, and every user inside "
                f"({active.get('active', 0)} now) leaves the journey at once."
            )
        yes, no, _ = st.columns([1, 1, 4])
        if yes.button(f"Yes, {pending}", key="editor.confirm.yes", type="primary"):
            st.session_state[CONFIRM] = None
            if pending == "publish":
                publish(document)
            else:
                set_status(str(document["id"]), "archive")
        if no.button("Cancel", key="editor.confirm.no"):
            st.session_state[CONFIRM] = None
            st.rerun()


def problems_summary(problems: list[dict[str, str]]) -> None:
    """How many problems, and each with where it is (they also show beside their fields)."""
    if not problems:
        st.success("The journey is valid.", icon=":material/check_circle:")
        return
    before = "publishing" if publishing() else "saving"
    st.error(
        f"{len(problems)} problem(s) to fix before {before} — each is also shown beside its "
        "step or field (steps with problems are outlined red in the graph).",
        icon=":material/warning:",
    )
    with st.expander("All problems"):
        for problem in problems:
            st.markdown(f"- `{problem['path'] or '$'}`: {problem['message']}")


# --- steps ------------------------------------------------------------------------------------


def select_node(node_id: str | None) -> None:
    """Make `node_id` the selected step from the next run on."""
    st.session_state[PENDING] = node_id


def node_label(node_id: str) -> str:
    """A node as the step picker lists it."""
    node = nodes_of(DOC.value).get(node_id)
    kind = NODE_TYPES.get(str(node.get("type")), "?") if isinstance(node, dict) else "?"
    start = " (start)" if DOC.value.get("start") == node_id else ""
    return f"{node_id} — {kind}{start}"


def steps(catalog: forms.Catalog) -> None:
    """The graph beside the selected step's form and the step tools."""
    document = DOC.value
    nodes = nodes_of(document)
    if PENDING in st.session_state:  # chosen by a tool after the picker was drawn
        st.session_state[NODE] = st.session_state.pop(PENDING)
    if st.session_state.get(NODE) not in nodes:
        st.session_state[NODE] = next(iter(nodes), None)
    selected = st.session_state[NODE]
    graph, form = st.columns([3, 2])
    with graph:
        dot = journey_dot(document, flagged=problem_nodes(DOC.problems), selected=selected)
        st.graphviz_chart(dot, width="stretch")
        DOC.flag(("start",))
    with form:
        if nodes:
            # Labels computed here: the app tester formats options outside the session.
            labels = {node_id: node_label(node_id) for node_id in nodes}
            st.selectbox(
                "Step", list(nodes), key=NODE, format_func=labels.__getitem__,
                help="Choose the step to edit; its form is below.",
            )  # fmt: skip
            node_form(str(st.session_state[NODE]), catalog)
        add_step()


def node_form(node_id: str, catalog: forms.Catalog) -> None:
    """The selected step: tools (rename, start here, delete), then its form."""
    with st.expander("Rename, make start, delete"):
        new_id = st.text_input("Step id", value=node_id, key=f"editor.rename:{node_id}")
        rename, start, delete = st.columns(3)
        if rename.button("Rename", key="editor.rename"):
            if not NODE_ID.match(new_id):
                st.error("Use lower-case letters, digits, - and _ (at most 64).")
            elif new_id != node_id and new_id in nodes_of(DOC.value):
                st.error(f"There is a step '{new_id}' already.")
            else:
                rename_node(DOC.value, node_id, new_id)
                DOC.bump()
                select_node(new_id)
                st.rerun()
        if start.button("Make it the start", key="editor.start"):
            DOC.value["start"] = node_id
            st.rerun()
        if delete.button(
            "Delete step",
            icon=":material/delete:",
            key="editor.delete",
            help="Steps leading here are reconnected to where it led.",
        ):
            delete_node(DOC.value, node_id)
            DOC.bump()
            select_node(None)
            st.rerun()
    with st.container(border=True):
        forms.node_form(DOC, node_id, catalog)


def edge_choices() -> list[tuple[str, Path] | None]:
    """Every way out of every step, where a new step can be inserted."""
    return [None] + [
        (node_id, path)
        for node_id, node in nodes_of(DOC.value).items()
        for path, _ in references(node)
    ]


def edge_name(edge: tuple[str, Path] | None) -> str:
    """A way out as the add-step form lists it."""
    if edge is None:
        return "not connected yet (connect it yourself)"
    node_id, path = edge
    node = nodes_of(DOC.value)[node_id]
    what = edge_label(node, path) or "then"
    return f"after {node_id} ({what}: {format_path(path)})"


def add_step() -> None:
    """Add a step, inserted on a way out of another step (by default after the selected one)."""
    with st.expander("Add a step", icon=":material/add:", expanded=not nodes_of(DOC.value)):
        node_type = st.selectbox(
            "Type", list(NODE_TYPES), format_func=NODE_TYPES.__getitem__, key="editor.add.type"
        )
        choices = edge_choices()
        selected: str | None = st.session_state.get(NODE)
        main = main_exit(nodes_of(DOC.value).get(selected)) if selected else None
        here = None if selected is None or main is None else (selected, main)
        default = choices.index(here) if here in choices else 0
        edge = st.selectbox(
            "Insert",
            choices,
            index=default,
            format_func={edge: edge_name(edge) for edge in choices}.__getitem__,
            key="editor.add.edge",
        )
        new_id = st.text_input(
            "Step id", key="editor.add.id", placeholder=unique_id(DOC.value, str(node_type)),
            help="Lower-case letters, digits, - and _. Empty: made from the type.",
        )  # fmt: skip
        if st.button("Add step", key="editor.add.button", type="primary"):
            node_id = new_id.strip() or unique_id(DOC.value, str(node_type))
            if not NODE_ID.match(node_id) or node_id in nodes_of(DOC.value):
                st.error(f"'{node_id}' is taken or not a valid step id.")
                return
            add_node(DOC.value, node_id, str(node_type), edge)
            DOC.bump()
            select_node(node_id)
            st.rerun()


# --- other tabs -------------------------------------------------------------------------------


def preview_tab() -> None:
    """Render any message step for a user or a sample context."""
    messages = [n for n, node in nodes_of(DOC.value).items() if node.get("type") == "message"]
    if not messages:
        st.info("No message steps yet.")
        return
    selected = st.session_state.get(NODE)
    node_id = st.selectbox(
        "Message step", messages, key="editor.preview.node",
        index=messages.index(selected) if selected in messages else 0,
    )  # fmt: skip
    preview_panel(nodes_of(DOC.value)[node_id], key=f"preview:{node_id}")


def pretty(document: Any) -> list[str]:
    """A document as sorted, indented JSON lines (what diffs compare)."""
    return json.dumps(document, indent=2, sort_keys=True).splitlines()


def history_tab(journey_id: str) -> None:
    """Published versions, and the difference between any two (or a version and the draft)."""
    versions = call(lambda client: client.versions(journey_id), doing="list the versions")
    if versions is None:
        return
    if not versions:
        st.info("Not published yet: publishing creates version 1.")
        return
    st.dataframe(
        [
            {
                "version": v["version"],
                "published at": v["published_at"],
                "published by": v.get("published_by") or "(not recorded)",
            }
            for v in versions
        ],
        hide_index=True,
    )
    options = ["draft", *(str(v["version"]) for v in reversed(versions))]

    names = {option: f"version {option}" for option in options} | {"draft": "the editor's draft"}
    older, newer = st.columns(2)
    a = older.selectbox(
        "Compare", options, index=1, format_func=names.__getitem__, key="editor.diff.a"
    )
    b = newer.selectbox(
        "with", options, index=0, format_func=names.__getitem__, key="editor.diff.b"
    )

    def definition(choice: str) -> Any:
        if choice == "draft":
            return DOC.value
        found = call(lambda client: client.version(journey_id, int(choice)))
        return None if found is None else found["definition"]

    before, after = definition(a), definition(b)
    diff = "\n".join(
        difflib.unified_diff(
            pretty(before), pretty(after), fromfile=str(a), tofile=str(b), lineterm=""
        )
    )
    if diff:
        st.code(diff, language="diff")
    else:
        st.success("No differences.")


def json_tab(journey_id: str) -> None:
    """Export the document, or replace it by an imported one (the journey keeps its id)."""
    st.download_button(
        "Export JSON",
        json.dumps(DOC.value, indent=2),
        file_name=f"{journey_id}.json",
        mime="application/json",
        icon=":material/download:",
        key="editor.export",
    )
    uploaded = st.file_uploader("Import a journey file", type=["json"], key="editor.upload")
    pasted = st.text_area(
        "…or paste a journey document", key="editor.paste", height=160,
        help="Replaces the editor's document (not saved until you save the draft).",
    )  # fmt: skip
    if st.button("Import", key="editor.import"):
        raw = uploaded.getvalue().decode("utf-8", "replace") if uploaded else pasted
        try:
            document = json.loads(raw)
        except ValueError as error:
            st.error(f"Not valid JSON: {error}")
            return
        if not isinstance(document, dict):
            st.error("A journey document is a JSON object.")
            return
        if document.get("id") not in (None, journey_id):
            st.info(f"The imported id '{document['id']}' is replaced by '{journey_id}'.")
        document["id"] = journey_id
        DOC.load(document)
        flash("Imported. Check it, then save the draft.")
        st.rerun()
    with st.expander("The document as JSON"):
        st.json(DOC.value)


def read_only(journey_id: str, why: str) -> None:
    """The journey as viewers see it: the graph, the versions and the document, no controls."""
    st.info(f"You can look but not change: {why}.", icon=":material/visibility:")
    graph, versions, document = st.tabs(["Steps", "History", "JSON"])
    with graph:
        st.graphviz_chart(journey_dot(DOC.value), width="stretch")
    with versions:
        history_tab(journey_id)
    with document:
        st.json(DOC.value)


def main() -> None:
    """Render the page."""
    wanted = st.query_params.get("journey")
    if wanted and (not DOC.loaded or DOC.value.get("id") != wanted):
        open_journey(wanted)
    if not DOC.loaded:
        choose_journey()
        return
    document = DOC.value
    journey_id = str(document.get("id"))
    info = meta()
    st.title(str(document.get("name") or journey_id))
    version = info.get("version")
    status = info.get("status", "draft")
    st.caption(
        f"id `{journey_id}` · status **{status}** · "
        + (f"published version {version}" if version else "never published")
        + (" · ✱ unsaved changes" if unsaved() else " · saved")
    )
    if message := st.session_state.pop(FLASH, None):
        st.success(message)
    if cannot_edit := needs(Role.EDITOR, "changing a journey"):
        read_only(journey_id, cannot_edit)
        return
    check = publishing()
    problems = call(
        lambda client: client.validate_journey(document, publish=check), doing="validate"
    )
    DOC.set_problems(problems or [])
    actions(document)
    if problems is not None:  # else the error says why there is no verdict
        problems_summary(problems)
    catalog = state.catalog()
    tabs = st.tabs(
        ["Steps", "Entry & exit", "Goal & settings", "Preview", "Test", "History", "JSON"]
    )
    with tabs[0]:
        steps(catalog)
    with tabs[1]:
        st.subheader("Entry", anchor=False)
        forms.entry_form(DOC, catalog)
        st.subheader("Exit rules", anchor=False)
        forms.exit_form(DOC, catalog)
    with tabs[2]:
        forms.about_form(DOC)
        st.subheader("Goal", anchor=False)
        forms.goal_form(DOC, catalog)
        st.subheader("Settings", anchor=False)
        forms.settings_form(DOC)
    with tabs[3]:
        preview_tab()
    with tabs[4]:
        test_tab(journey_id)
    with tabs[5]:
        history_tab(journey_id)
    with tabs[6]:
        json_tab(journey_id)


main()

"""Widgets bound to a JSON document kept in session state.

The designer's state is the document itself (a journey, a segment), never a parallel format.
Each widget shows the value at a path of the document and writes it back in its `on_change`
callback; Streamlit runs callbacks before the script, so every rerun draws, validates and
shows the document as edited. Widget keys carry the document's revision: a structural edit
(adding or removing a row, renaming a node, an import) bumps it, so widgets are rebuilt from
the document rather than keeping values for rows that moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from journey_designer.document import Path, drop_at, get_at, set_at
from journeys.validation import format_path


class Doc:
    """A JSON document in `st.session_state[name]`, with its validation problems."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def loaded(self) -> bool:
        """Whether the document is in the session."""
        return isinstance(st.session_state.get(self.name), dict)

    @property
    def value(self) -> dict[str, Any]:
        """The document itself (edited in place)."""
        document: dict[str, Any] = st.session_state[self.name]
        return document

    def load(self, document: dict[str, Any]) -> None:
        """Replace the document (rebuilding every widget) and forget its problems."""
        st.session_state[self.name] = document
        self.set_problems([])
        self.bump()

    def get(self, path: Path, default: Any = None) -> Any:
        """The value at `path`, or `default`."""
        return get_at(self.value, path, default)

    def set(self, path: Path, value: Any) -> None:
        """Write `value` at `path`."""
        set_at(self.value, path, value)

    def drop(self, path: Path) -> None:
        """Remove what is at `path`."""
        drop_at(self.value, path)

    @property
    def revision(self) -> int:
        """Bumped on every structural edit; part of every widget key."""
        revision: int = st.session_state.get(f"{self.name}.rev", 0)
        return revision

    def bump(self) -> None:
        """Rebuild every widget of the document from its current value on the next run."""
        st.session_state[f"{self.name}.rev"] = self.revision + 1

    def key(self, path: Path, suffix: str = "") -> str:
        """The widget key of the value at `path` (`journey:3:nodes.x.next`)."""
        return f"{self.name}:{self.revision}:{format_path(path) or '$'}{suffix}"

    # --- problems ---------------------------------------------------------------------------

    def set_problems(self, problems: list[dict[str, str]]) -> None:
        """The document's validation problems (`{path, message}`) to show beside its fields."""
        st.session_state[f"{self.name}.problems"] = problems
        st.session_state[f"{self.name}.shown"] = set()

    @property
    def problems(self) -> list[dict[str, str]]:
        """The document's validation problems, as last set."""
        problems: list[dict[str, str]] = st.session_state.get(f"{self.name}.problems", [])
        return problems

    def flag(self, path: Path) -> None:
        """Show the problems located exactly at `path`, beside the widget drawn there."""
        where = format_path(path)
        shown: set[str] = st.session_state.setdefault(f"{self.name}.shown", set())
        for problem in self.problems:
            if problem["path"] == where:
                st.error(f"{problem['message']}", icon=":material/warning:")
                shown.add(where)

    def flag_within(self, path: Path, *, title: str = "") -> None:
        """Show the problems below `path` that no field has shown yet (this run)."""
        prefix = format_path(path)
        shown: set[str] = st.session_state.setdefault(f"{self.name}.shown", set())
        for problem in self.problems:
            where = problem["path"]
            inside = not prefix or where == prefix or where.startswith((prefix + ".", prefix + "["))
            if inside and where not in shown:
                st.error(
                    f"{title}`{where or '$'}`: {problem['message']}", icon=":material/warning:"
                )
                shown.add(where)


# --- bound widgets ------------------------------------------------------------------------------


def text(
    doc: Doc,
    path: Path,
    label: str,
    *,
    help: str | None = None,
    placeholder: str | None = None,
    area: bool = False,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] = str,
    keep_empty: bool = False,
) -> None:
    """A text field for the value at `path`; emptied, the value is removed (unless
    `keep_empty`). `parse` turns the text into the stored value, `show` the reverse."""
    key = doc.key(path)
    current = doc.get(path)

    def changed() -> None:
        raw: str = st.session_state[key]
        if raw.strip() == "" and not keep_empty:
            doc.drop(path)
        else:
            doc.set(path, parse(raw) if parse is not None else raw)

    value = "" if current is None else show(current)
    widget = st.text_area if area else st.text_input
    widget(label, value=value, key=key, help=help, placeholder=placeholder, on_change=changed)
    doc.flag(path)


def select(
    doc: Doc,
    path: Path,
    label: str,
    options: Sequence[Any],
    *,
    labels: Callable[[Any], str] = str,
    help: str | None = None,
    default: Any = None,
    structural: bool = False,
    on_select: Callable[[Any], None] | None = None,
) -> None:
    """A choice for the value at `path`; choosing `None` (or `default`) removes it.

    A current value missing from `options` is offered too, so nothing is lost silently.
    `on_select` replaces the plain write when choosing means more (a new channel, a type).
    """
    key = doc.key(path)
    current = doc.get(path, default)
    choices = list(options) if current in options else [current, *options]

    def changed() -> None:
        chosen = st.session_state[key]
        if on_select is not None:
            on_select(chosen)
        elif chosen is None or (chosen == default and default is not None):
            doc.drop(path)
        else:
            doc.set(path, chosen)
        if structural:
            doc.bump()

    st.selectbox(
        label,
        choices,
        index=choices.index(current),
        # Labels computed now: Streamlit's app tester formats options outside the session.
        format_func={option: labels(option) for option in choices}.__getitem__,
        key=key,
        help=help,
        on_change=changed,
    )
    doc.flag(path)


def checkbox(
    doc: Doc,
    path: Path,
    label: str,
    *,
    help: str | None = None,
    default: bool = False,
    structural: bool = False,
) -> None:
    """A yes/no for the value at `path`; the default value is left out of the document.
    `structural` when other widgets show something that depends on it."""
    key = doc.key(path)

    def changed() -> None:
        if st.session_state[key] == default:
            doc.drop(path)
        else:
            doc.set(path, st.session_state[key])
        if structural:
            doc.bump()

    st.checkbox(label, value=bool(doc.get(path, default)), key=key, help=help, on_change=changed)
    doc.flag(path)


def number(doc: Doc, path: Path, label: str, *, minimum: int = 0, help: str | None = None) -> None:
    """A whole number for the value at `path`."""
    key = doc.key(path)
    current = doc.get(path)

    def changed() -> None:
        doc.set(path, int(st.session_state[key]))

    st.number_input(
        label,
        min_value=minimum,
        value=current if isinstance(current, int) else minimum,
        step=1,
        key=key,
        help=help,
        on_change=changed,
    )
    doc.flag(path)


def choices(
    doc: Doc, path: Path, label: str, options: Sequence[str], *, help: str | None = None
) -> None:
    """Several of `options` as the list at `path`; none chosen removes it."""
    key = doc.key(path)
    current = [item for item in doc.get(path) or [] if item in options]

    def changed() -> None:
        chosen = st.session_state[key]
        if chosen:
            doc.set(path, list(chosen))
        else:
            doc.drop(path)

    st.multiselect(label, options, default=current, key=key, help=help, on_change=changed)
    doc.flag(path)


def optional(
    doc: Doc, path: Path, label: str, make: Callable[[], Any], *, help: str | None = None
) -> bool:
    """A checkbox that adds (`make()`) or removes the value at `path`; whether it is there."""
    key = doc.key(path, "?")
    present = doc.get(path) is not None

    def changed() -> None:
        if st.session_state[key]:
            doc.set(path, make())
        else:
            doc.drop(path)
        doc.bump()

    st.checkbox(label, value=present, key=key, help=help, on_change=changed)
    return present


def edit_button(
    doc: Doc,
    label: str,
    key: str,
    edit: Callable[[], None],
    *,
    icon: str | None = None,
    help: str | None = None,
) -> None:
    """A button making a structural edit (then rebuilding the widgets)."""

    def clicked() -> None:
        edit()
        doc.bump()

    st.button(label, key=doc.key((), f"#{key}"), icon=icon, help=help, on_click=clicked)


def rows(
    doc: Doc,
    path: Path,
    draw: Callable[[Path], None],
    *,
    make: Callable[[], Any],
    add_label: str,
    noun: str,
    minimum: int = 0,
) -> None:
    """The list at `path`, one bordered row per item drawn by `draw(item path)`, each with a
    remove button (while more than `minimum` remain), and a button adding `make()`."""
    items = doc.get(path)
    items = items if isinstance(items, list) else []
    for i in range(len(items)):
        with st.container(border=True):
            draw((*path, i))
            if len(items) > minimum:
                edit_button(
                    doc,
                    f"Remove {noun} {i + 1}",
                    f"remove:{format_path((*path, i))}",
                    remover(doc, (*path, i)),
                    icon=":material/delete:",
                )
    doc.flag(path)
    edit_button(
        doc,
        add_label,
        f"add:{format_path(path)}",
        lambda: doc.set(path, [*(doc.get(path) or []), make()]),
        icon=":material/add:",
    )


def remover(doc: Doc, path: Path) -> Callable[[], None]:
    """An edit removing what is at `path` (a closure per row, not per loop variable)."""
    return lambda: doc.drop(path)


def entries(
    doc: Doc,
    path: Path,
    *,
    name_label: str,
    value_label: str,
    noun: str,
    make: Callable[[str], Any],
    add_label: str,
    value_help: str | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] = str,
) -> None:
    """The object at `path` as rows of a name and a value, each with a remove button, and a
    button adding an entry `{noun}_1` (or `_2`...) whose value is `make(name)` (renamed before
    it is edited, it becomes `make(new name)`). The last entry removed, the object goes too."""
    current = doc.get(path)
    found: Mapping[str, Any] = current if isinstance(current, dict) else {}
    for name in list(found):
        named, value, remove = st.columns([3, 4, 1], vertical_alignment="bottom")
        key = doc.key((*path, name), "<name>")
        with named:
            st.text_input(
                name_label, value=name, key=key, on_change=_rename,
                args=(doc, path, name, key, make),
            )  # fmt: skip
        with value:
            text(
                doc, (*path, name), value_label, keep_empty=True, help=value_help,
                parse=parse, show=show,
            )  # fmt: skip
        with remove:
            edit_button(
                doc, "Remove", f"remove:{format_path((*path, name))}",
                _entry_remover(doc, path, name), icon=":material/delete:",
            )  # fmt: skip
    doc.flag(path)

    def add() -> None:
        name = _new_name(found, noun)
        doc.set(path, {**found, name: make(name)})

    edit_button(doc, add_label, f"add:{format_path(path)}", add, icon=":material/add:")


def _rename(doc: Doc, path: Path, old: str, key: str, make: Callable[[str], Any]) -> None:
    """Rename an entry of the object at `path`, keeping its place, and its value unless that
    is still the one made for the old name (a taken or empty name is refused: the field shows
    the old name again)."""
    new = st.session_state[key].strip()
    found = doc.get(path) or {}
    if new and new not in found:
        renamed = {}
        for name, value in found.items():
            if name == old:
                renamed[new] = make(new) if value == make(old) else value
            else:
                renamed[name] = value
        doc.set(path, renamed)
    doc.bump()


def _entry_remover(doc: Doc, path: Path, name: str) -> Callable[[], None]:
    def remove() -> None:
        doc.drop((*path, name))
        if not doc.get(path):
            doc.drop(path)

    return remove


def _new_name(found: Mapping[str, Any], noun: str) -> str:
    n = 1
    while f"{noun}_{n}" in found:
        n += 1
    return f"{noun}_{n}"

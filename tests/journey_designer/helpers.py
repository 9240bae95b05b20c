"""Driving the designer with Streamlit's app tester."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from journeys.store import Store
from tests.journey_designer.conftest import APP

W = TypeVar("W")


def start(page: str | None = None) -> AppTest:
    """The designer, run once (and switched to `page`, e.g. `views/segments.py`)."""
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    if page is not None:
        app.switch_page(page)
        app.run()
    ok(app)
    return app


def open_in_editor(store: Store, document: dict[str, Any]) -> AppTest:
    """Store a draft, then open it from the journeys page."""
    store.save_draft(document["id"], document)
    app = start()
    choose(app.selectbox(key="journeys.chosen"), document["id"])
    button(app, "Open in the editor").click().run()
    return ok(app)


def ok(app: AppTest) -> AppTest:
    """The app after a run that raised nothing."""
    assert not app.exception, [e.value for e in app.exception]
    return app


def at_path(widgets: Iterable[W], path: str) -> W:
    """The bound widget editing the document at `path` (its key ends with `:path`)."""
    found = [w for w in widgets if str(getattr(w, "key", "") or "").endswith(f":{path}")]
    assert len(found) == 1, f"{len(found)} widgets for {path}"
    return found[0]


def button(app: AppTest, label: str) -> Any:
    """The one button labelled `label`."""
    found = [b for b in app.button if b.label == label]
    assert len(found) == 1, f"{len(found)} buttons labelled {label!r}"
    return found[0]


def texts(app: AppTest) -> str:
    """Every message, caption and markdown on the page, in one string."""
    parts: list[Any] = [
        *app.error, *app.warning, *app.success, *app.info, *app.caption, *app.markdown,
        *app.title, *app.subheader,
    ]  # fmt: skip
    return "\n".join(str(part.value) for part in parts)


def errors(app: AppTest) -> list[str]:
    """The error messages on the page."""
    return [str(e.value) for e in app.error]


def choose(selectbox: Any, shown: str) -> Any:
    """Select the first option whose label (as the user sees it) starts with `shown`."""
    options = list(selectbox.options)
    matches = [i for i, option in enumerate(options) if str(option).startswith(shown)]
    assert matches, f"no option {shown!r} in {options}"
    return selectbox.select_index(matches[0])


def charts(app: AppTest) -> list[Any]:
    """The charts on the page (`st.line_chart`, `st.vega_lite_chart`: Vega-Lite specs)."""
    return list(app.get("vega_lite_chart"))


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    """The data rows a chart draws (its one dataset, or its data)."""
    proto = chart.proto
    data = proto.datasets[0].data.data if proto.datasets else proto.data.data
    rows: list[dict[str, Any]] = dataframe_util.convert_arrow_bytes_to_pandas_df(data).to_dict(
        "records"
    )
    return rows

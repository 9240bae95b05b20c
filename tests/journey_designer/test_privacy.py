"""The Users page's privacy buttons (Streamlit's app tester, against the real API): the export
as a download, and the erasure behind a confirmation."""

from __future__ import annotations

from journeys.routing import RoutingUnavailable
from journeys.store import NewEvent, utcnow
from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.helpers import button, errors, ok, start, texts


def _ada(api: LiveApi) -> None:
    traits = {"email": "ada@example.org", "plan": "pro"}
    identify = NewEvent("ada-1", "ada", "identify", None, traits, utcnow(), traits=traits)
    api.store.append_events([identify])


def test_export_downloads_what_is_stored(api: LiveApi) -> None:
    _ada(api)
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    ok(app)
    assert not app.get("download_button")
    button(app, "Export").click().run()
    ok(app)
    [download] = app.get("download_button")
    assert download.proto.label == "Download the export"
    export = app.session_state["users.export"]["data"]  # what the download holds
    assert export["user_id"] == "ada"
    assert export["profile"]["traits"] == {"email": "ada@example.org", "plan": "pro"}
    assert [e["message_id"] for e in export["events"]] == ["ada-1"]


def test_erase_asks_first_then_erases(api: LiveApi) -> None:
    _ada(api)
    api.routing.erase_answer = 2
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    button(app, "Erase…").click().run()
    assert "Erase 'ada'? This is final" in texts(app)
    button(app, "Cancel").click().run()
    assert api.routing.erased == []
    assert api.store.get_user("ada") is not None

    button(app, "Erase…").click().run()
    button(app, "Yes, erase").click().run()
    ok(app)
    assert api.routing.erased == ["ada"]
    assert api.store.get_user("ada") is None
    assert "Erased 'ada': nothing about them is stored any more, and 2 journey run(s)" in texts(app)
    app.run()
    assert "Could not look up 'ada'. Not found: no user 'ada'" in errors(app)


def test_a_failed_erasure_says_why(api: LiveApi) -> None:
    _ada(api)
    api.routing.erase_answer = RoutingUnavailable("connection refused")
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    button(app, "Erase…").click().run()
    button(app, "Yes, erase").click().run()
    assert any(e.startswith("Could not erase 'ada'.") for e in errors(app)), errors(app)
    assert api.store.get_user("ada") is not None

"""The Users page's timeline (Streamlit's app tester, against the real API): every entry with
its time, kind, what happened and why, a link to its run, and paging through a long one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streamlit.testing.v1 import AppTest

from journeys.store import NewEvent
from tests.factories import broadcast_delivery, merge_traits
from tests.journey_designer.conftest import TEMPORAL_UI, LiveApi
from tests.journey_designer.helpers import button, errors, ok, start
from tests.journey_designer.test_app import seed_activity

RUN = f"{TEMPORAL_UI}/namespaces/default/workflows/journey%3Aabandoned-cart%3Aada"


def lines(app: AppTest) -> list[str]:
    """The timeline's entries as the page shows them (a Markdown list)."""
    [shown] = [m.value for m in app.markdown if m.value.startswith("- `")]
    return [line.removeprefix("- ") for line in shown.splitlines()]


def test_the_users_page_shows_the_timeline_with_reasons_and_links(api: LiveApi) -> None:
    seed_activity(api.store)
    app = start("views/users.py")
    app.text_input(key="users.id").input("ada").run()
    ok(app)
    assert app.subheader[-1].value == "Timeline"
    shown = lines(app)
    at = shown[0][: len("`2026-12-02 16:00:00 UTC`")]
    assert at.startswith("`")
    assert at.endswith(" UTC`")
    run = f"[open the run]({RUN})"
    # Markdown escapes what users named (a `-` or `_` must not format), and every step of the
    # run links to it in the Temporal Web UI; the event belongs to no run.
    assert [line.removeprefix(at + " · ") for line in shown[:4]] == [
        "**event** · event Added to Cart",
        "**entered** · entered Abandoned cart recovery — _entry event Added to Cart_ · "
        f"abandoned\\-cart · {run}",
        "**step** · reached wait\\_checkout \\(wait\\_for\\_event\\) · "
        f"abandoned\\-cart › wait\\_checkout · {run}",
        "**wait ended** · wait over at wait\\_checkout — _timeout: no Checkout Started within "
        f"24h_ · abandoned\\-cart › wait\\_checkout · {run}",
    ]
    for entry in (
        "**step** · reached copy\\_test \\(experiment\\) — _variant urgency_",
        "**message** · email message sent · ",
        "**converted** · converted — _the goal: Order Completed within 3d_",
    ):
        assert any(entry in line for line in shown), entry
    assert not [b for b in app.button if b.label in ("Earlier", "Later")]  # one page


def test_a_long_timeline_pages_later_and_earlier(api: LiveApi) -> None:
    start_at = datetime(2026, 1, 1, tzinfo=UTC)
    views = [
        NewEvent(f"view-{n}", "busy", "track", f"Viewed {n}", {}, start_at + timedelta(minutes=n))
        for n in range(130)
    ]
    api.store.append_events(views)
    app = start("views/users.py")
    app.text_input(key="users.id").input("busy").run()
    first = lines(app)
    assert [line.split(" · ")[-1] for line in first] == [f"event Viewed {n}" for n in range(100)]
    assert [b.label for b in app.button if b.label in ("Earlier", "Later")] == ["Later"]
    button(app, "Later").click().run()
    ok(app)
    later = [line.split(" · ")[-1] for line in lines(app)]
    assert later == [f"event Viewed {n}" for n in range(100, 130)]
    assert [b.label for b in app.button if b.label in ("Earlier", "Later")] == ["Earlier"]
    button(app, "Earlier").click().run()
    ok(app)
    assert lines(app) == first
    app.text_input(key="users.id").input("nobody").run()
    assert "Could not look up 'nobody'. Not found: no user 'nobody'" in errors(app)


def test_a_broadcasts_message_links_its_broadcast_and_no_journey(api: LiveApi) -> None:
    merge_traits(api.store, "bea", {"email": "bea@example.com"})
    broadcast_delivery(api.store, "spring-sale", "bea")
    app = start("views/users.py")
    app.text_input(key="users.id").input("bea").run()
    ok(app)
    [line] = lines(app)
    broadcast = f"{TEMPORAL_UI}/namespaces/default/workflows/broadcast%3Aspring-sale"
    assert line.endswith(
        "**message** · email message sent — _broadcast spring\\-sale_ · "
        f"[open the broadcast]({broadcast})"
    ), line

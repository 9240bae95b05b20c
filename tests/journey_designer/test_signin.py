"""Signing in to the designer (accounts kept by journeys, or OIDC through Streamlit with the
admin token vouching), and pages that follow the role, driven by Streamlit's app tester
against the real API on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from journeys.access import Role
from journeys.people import ACCOUNT_LIMIT, hash_password
from journeys.store import Store
from tests.journey_designer.conftest import APP, LiveApi
from tests.journey_designer.documents import example
from tests.journey_designer.helpers import button, choose, errors, ok, texts

PASSWORD = "correct horse battery"
CART = example("abandoned-cart") | {"id": "cart"}
EDITOR_PAGE = "views/editor.py"
SIGN_IN = "FormSubmitter:signin.form-Sign in"


@pytest.fixture
def accounts(api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> LiveApi:
    """The designer in accounts mode, without the admin token (it does not need it)."""
    monkeypatch.setenv("JOURNEYS_DESIGNER_SIGN_IN", "accounts")
    monkeypatch.delenv("JOURNEYS_ADMIN_TOKEN")
    return api


def roles_per_route(api: LiveApi) -> None:
    """Skip unless the API gives each route its own role (a viewer reads journeys): until
    that work is in, every management route needs the admin role."""
    _, viewer = api.store.create_token("probe", Role.VIEWER, created_by="test", expires_at=None)
    response = httpx.get(f"{api.url}/v1/journeys", headers={"Authorization": f"Bearer {viewer}"})
    if response.status_code == 403:
        pytest.skip("every management route needs the admin role until per-route roles are in")


def member(store: Store, email: str, role: Role, password: str | None = PASSWORD) -> None:
    store.add_person(
        email, role, None if password is None else hash_password(password), created_by="test"
    )


def sign_in(email: str, password: str = PASSWORD, app: AppTest | None = None) -> AppTest:
    """The designer's sign-in form, filled and sent."""
    if app is None:
        app = AppTest.from_file(str(APP), default_timeout=30)
        app.run()
    assert app.title[0].value == "Sign in"
    app.text_input(key="signin.email").input(email)
    app.text_input(key="signin.password").input(password)
    app.button(key=SIGN_IN).click().run()
    return ok(app)


def open_journey(app: AppTest, journey_id: str) -> AppTest:
    choose(app.selectbox(key="journeys.chosen"), journey_id)
    button(app, "Open in the editor").click().run()
    return ok(app)


def test_nothing_shows_before_signing_in_and_a_wrong_password_is_refused(
    accounts: LiveApi,
) -> None:
    member(accounts.store, "edna@example.com", Role.EDITOR)
    accounts.store.save_draft("cart", CART)
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    ok(app)
    assert [t.value for t in app.title] == ["Sign in"]
    assert "cart" not in texts(app)
    sign_in("edna@example.com", "not the password", app)
    assert errors(app) == ["Wrong email or password."]
    sign_in("nobody@example.com", PASSWORD, app)
    assert errors(app) == ["Wrong email or password."]
    sign_in("edna@example.com", PASSWORD, app)
    assert app.title[0].value == "Journeys"
    assert "Signed in as **edna@example.com** (editor)" in [c.value for c in app.sidebar.caption]
    # The pages call the API as the person: the audit log names them.
    entries = accounts.store.audit_entries(5)
    assert (entries[0].actor, entries[0].action) == ("edna@example.com", "session.started")


def test_bad_sign_ins_say_what_is_wrong(accounts: LiveApi) -> None:
    member(accounts.store, "edna@example.com", Role.EDITOR)
    app = sign_in("", "")
    assert errors(app) == ["Enter your email and your password."]
    sign_in("edna", PASSWORD, app)
    assert errors(app) == ["That is not an email address."]
    for _ in range(ACCOUNT_LIMIT.failures):
        sign_in("edna@example.com", "a wrong guess", app)
        assert errors(app) == ["Wrong email or password."]
    sign_in("edna@example.com", PASSWORD, app)
    (shown,) = errors(app)
    assert shown.startswith("Too many failed sign-ins: try again in 15 minute(s).")
    assert app.title[0].value == "Sign in"


def test_an_editor_saves_drafts_but_cannot_publish(accounts: LiveApi) -> None:
    roles_per_route(accounts)
    member(accounts.store, "edna@example.com", Role.EDITOR)
    accounts.store.save_draft("cart", CART)
    app = open_journey(sign_in("edna@example.com"), "cart")
    publish = button(app, "Publish…")
    assert publish.disabled
    assert publish.help == "publishing needs the publisher role"
    assert "Publishing needs the publisher role: ask a publisher" in texts(app)
    assert not [b for b in app.button if b.label in ("Pause", "Archive…")]
    button(app, "Save draft").click().run()
    ok(app)
    assert "Draft saved" in texts(app)
    assert "edna@example.com" in {t.name for t in accounts.store.tokens()}


def test_a_publisher_publishes_and_the_history_names_them(accounts: LiveApi) -> None:
    roles_per_route(accounts)
    member(accounts.store, "pat@example.com", Role.PUBLISHER)
    accounts.store.save_draft("cart", CART)
    app = open_journey(sign_in("pat@example.com"), "cart")
    button(app, "Publish…").click().run()
    button(app, "Yes, publish").click().run()
    ok(app)
    assert "Published version 1" in texts(app)
    history = next(d.value for d in app.dataframe if "published by" in d.value.columns)
    assert list(history["published by"]) == ["pat@example.com"]


def test_a_viewer_sees_no_edit_controls(accounts: LiveApi) -> None:
    roles_per_route(accounts)
    member(accounts.store, "vic@example.com", Role.VIEWER)
    accounts.store.save_draft("cart", CART)
    app = sign_in("vic@example.com")
    assert "Starting a journey needs the editor role." in texts(app)
    assert not [b for b in app.button if b.label == "Use this"]
    open_journey(app, "cart")
    assert "You can look but not change: changing a journey needs the editor role." in texts(app)
    assert errors(app) == []
    labels = {b.label for b in app.button}
    assert not labels & {"Save draft", "Publish…", "Add step", "Import", "Delete step"}
    assert not app.text_input
    for page, shown in (
        ("views/segments.py", "Segments"),
        ("views/broadcasts.py", "Sending a broadcast needs the publisher role."),
        ("views/settings.py", "Settings"),
    ):
        app.switch_page(page)
        app.run()
        ok(app)
        assert shown in texts(app)
        assert errors(app) == []  # nothing the viewer may not do is tried
    saves = [b for b in app.button if b.label.startswith("Save")]
    assert saves
    assert all(b.disabled for b in saves)
    assert {b.help for b in saves} == {"changing the settings needs the publisher role"}


def test_only_admins_see_people_and_privacy(accounts: LiveApi) -> None:
    member(accounts.store, "pat@example.com", Role.PUBLISHER)
    app = sign_in("pat@example.com")
    assert not [n for n in app.get("navigation") if "people" in str(n)]
    assert "Privacy" not in texts(app)
    member(accounts.store, "ada@example.com", Role.ADMIN)
    admin = sign_in("ada@example.com")
    admin.switch_page("views/people.py")
    admin.run()
    ok(admin)
    assert admin.title[0].value == "People"
    admin.text_input(key="people.add.email").input("new@example.com")
    choose(admin.selectbox(key="people.add.role"), "editor")
    admin.text_input(key="people.add.password").input("short")
    admin.button(key="FormSubmitter:people.add-Add").click().run()
    assert "password: String should have at least 12 characters" in "\n".join(errors(admin))
    admin.text_input(key="people.add.email").input("new@example.com")
    admin.text_input(key="people.add.password").input(PASSWORD)
    admin.button(key="FormSubmitter:people.add-Add").click().run()
    ok(admin)
    assert "Added new@example.com as editor." in texts(admin)
    assert "ada@example.com" not in admin.selectbox(key="people.remove.email").options
    choose(admin.selectbox(key="people.remove.email"), "pat@example.com")
    button(admin, "Remove").click().run()
    ok(admin)
    assert "Removed pat@example.com: their sessions have ended." in texts(admin)
    assert [p.email for p in accounts.store.people()] == ["ada@example.com", "new@example.com"]

    # Pat's session ended with them: the next page they open signs them out, saying why.
    app.switch_page("views/journeys.py")
    app.run()
    ok(app)
    assert app.title[0].value == "Sign in"
    assert "Your session has ended" in texts(app)


def test_signing_out_ends_the_session(accounts: LiveApi) -> None:
    member(accounts.store, "edna@example.com", Role.EDITOR)
    app = sign_in("edna@example.com")
    (token,) = accounts.store.tokens()
    app.session_state["journey.meta"] = {"status": "draft"}  # as an open journey leaves it
    app.button(key="signin.out").click().run()
    ok(app)
    assert app.title[0].value == "Sign in"
    assert "You have signed out." in texts(app)
    assert accounts.store.tokens() == []  # revoked
    assert token.name == "edna@example.com"
    assert "journey.meta" not in app.session_state  # nothing of theirs for the next person


def expire(app: AppTest) -> None:
    """Make the session in the app's state one that has expired."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    app.session_state["signin.session"] = app.session_state["signin.session"] | {"expires_at": past}


def test_an_expired_session_signs_the_person_out(accounts: LiveApi) -> None:
    member(accounts.store, "edna@example.com", Role.EDITOR)
    member(accounts.store, "pat@example.com", Role.PUBLISHER)
    app = sign_in("edna@example.com")
    expire(app)
    app.session_state["journey.meta"] = {"status": "draft"}  # as an open journey leaves it
    app.run()
    ok(app)
    assert app.title[0].value == "Sign in"
    assert "Your session has expired: sign in again." in texts(app)
    # Signing in again, the same person finds their work; someone else does not.
    sign_in("edna@example.com", app=app)
    assert app.session_state["journey.meta"] == {"status": "draft"}
    expire(app)
    app.run()
    sign_in("pat@example.com", app=app)
    assert "journey.meta" not in app.session_state


def test_with_oidc_the_admin_token_vouches_for_members(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_DESIGNER_SIGN_IN", "oidc")
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    ok(app)
    assert "needs an [auth] section" in "\n".join(errors(app))

    auth = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "a test secret",
        "client_id": "journeys",
        "client_secret": "secret",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
    }
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.secrets["auth"] = auth
    app.user = {"is_logged_in": False}
    app.run()
    ok(app)
    assert [b.label for b in app.button] == ["Sign in with your organisation's account"]

    app.user = {"is_logged_in": True, "email": "olga@example.com", "email_verified": False}
    app.run()
    ok(app)
    assert errors(app) == ["Your provider did not give a verified email address."]
    assert [b.label for b in app.button] == ["Sign out"]

    app.user = {"is_logged_in": True, "email": "Olga@Example.com", "email_verified": True}
    app.run()
    ok(app)
    assert "Olga@Example.com: not a member: an admin adds them with journeys people add" in (
        errors(app)
    )
    member(api.store, "olga@example.com", Role.VIEWER, password=None)
    app.run()
    ok(app)
    assert app.title[0].value == "Journeys"
    assert "Signed in as **olga@example.com** (viewer)" in [c.value for c in app.sidebar.caption]
    entry = api.store.audit_entries(1)[0]
    assert (entry.actor, entry.action, entry.detail["method"]) == (
        "olga@example.com",
        "session.started",
        "vouched",
    )

"""Who uses the designer (`JOURNEYS_DESIGNER_SIGN_IN`): nobody signs in (`off`: the designer
acts with the admin token), people sign in with the email and password an admin gave them
(`accounts`: `POST /v1/sessions`), or through an OpenID Connect provider (`oidc`: Streamlit's
`st.login` with the `[auth]` section of `.streamlit/secrets.toml`, then the designer vouches for
the person with the admin token). Either way the person's session token does every call, and
the pages show only what their role allows. A session that ends (it expired, or an admin
removed the person) signs the person out with a message.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from api_client import ApiClient, ApiError, ApiUnreachable
from journey_designer.api import NOTICE, SESSION, TIMEOUT, end_session, error_message, session
from journeys.settings import Settings, SignIn

EXPIRED = "Your session has expired: sign in again."
LAST_EMAIL = "signin.last_email"


def signed_in(config: Settings) -> bool:
    """Whether the pages may run: someone is signed in, or nobody needs to. Otherwise the
    sign-in is shown instead, and False."""
    if config.designer_sign_in is SignIn.OFF:
        return True
    current = session()
    if current is not None and _expired(current):
        end_session(EXPIRED)
        current = None
    if current is None:
        if config.designer_sign_in is SignIn.ACCOUNTS:
            _password_form(config)
        else:
            _through_provider(config)
        return False
    _signed_in_as(config, current)
    return True


def _expired(current: dict[str, Any]) -> bool:
    return datetime.fromisoformat(str(current["expires_at"])) <= datetime.now(UTC)


def _start(current: dict[str, Any]) -> None:
    """Keep the new session; what someone else left in this browser session goes (a person
    signing in again after their session ended keeps their unsaved work)."""
    if st.session_state.get(LAST_EMAIL) != current["email"]:
        st.session_state.clear()
    st.session_state.pop(NOTICE, None)
    st.session_state[SESSION] = current
    st.session_state[LAST_EMAIL] = current["email"]


def _heading() -> None:
    st.title("Sign in")
    if notice := st.session_state.get(NOTICE):
        st.info(notice, icon=":material/logout:")


def _password_form(config: Settings) -> None:
    """Email and password; a session on success, the API's reason otherwise."""
    _heading()
    with st.form("signin.form"):
        email = st.text_input("Email", key="signin.email")
        password = st.text_input("Password", type="password", key="signin.password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    if not email.strip() or not password:
        st.error("Enter your email and your password.")
        return
    try:
        with ApiClient(config.api_url, timeout=TIMEOUT) as client:
            started = client.sign_in(email, password, for_address=_browser_address())
    except ApiError as error:
        if error.status == 401:
            st.error("Wrong email or password.", icon=":material/error:")
        elif error.status == 429:
            st.error(f"{error.message.capitalize()}.", icon=":material/timer:")
        elif error.status == 422:
            st.error("That is not an email address.", icon=":material/error:")
        else:
            st.error(error_message(error, config.api_url), icon=":material/error:")
        return
    except ApiUnreachable as error:
        st.error(error_message(error, config.api_url), icon=":material/error:")
        return
    _start(started)
    st.rerun()


def _browser_address() -> str | None:
    """The address of the person's browser, which the API counts failed sign-ins by (else
    every sign-in would count against the designer's own address); None when unknown."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None


def _through_provider(config: Settings) -> None:
    """Streamlit's OIDC sign-in; then a session the admin token vouches for."""
    _heading()
    if not _provider_configured():
        st.error(
            "JOURNEYS_DESIGNER_SIGN_IN=oidc needs an [auth] section (redirect_uri, "
            "cookie_secret, client_id, client_secret, server_metadata_url) in "
            ".streamlit/secrets.toml: see the deployment guide.",
            icon=":material/error:",
        )
        return
    if not st.user.is_logged_in:
        st.button("Sign in with your organisation's account", type="primary", on_click=st.login)
        return
    email = st.user.get("email")
    # Only an address the provider vouches for: without `email_verified`, an account at the
    # provider could carry anyone's address.
    if not isinstance(email, str) or st.user.get("email_verified") is not True:
        st.error("Your provider did not give a verified email address.")
        st.button("Sign out", on_click=st.logout, key="signin.provider.out")
        return
    try:
        with ApiClient(config.api_url, admin_token=config.admin_token, timeout=TIMEOUT) as client:
            started = client.vouch(email)
    except (ApiError, ApiUnreachable) as error:
        not_a_member = isinstance(error, ApiError) and error.status == 403
        st.error(
            f"{email}: {error.message}" if isinstance(error, ApiError) and not_a_member
            else error_message(error, config.api_url),
            icon=":material/block:",
        )  # fmt: skip
        st.button("Sign out", on_click=st.logout, key="signin.provider.out")
        return
    _start(started)
    st.rerun()


def _provider_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def _signed_in_as(config: Settings, current: dict[str, Any]) -> None:
    """Who is signed in, as what, and the way out, in the sidebar."""
    st.sidebar.caption(f"Signed in as **{current['email']}** ({current['role']})")
    if st.sidebar.button("Sign out", icon=":material/logout:", key="signin.out"):
        # Signed out here either way; if the API cannot be told, the token expires on its own.
        with (
            suppress(ApiError, ApiUnreachable),
            ApiClient(config.api_url, admin_token=current["token"], timeout=TIMEOUT) as client,
        ):
            client.sign_out()
        st.session_state.clear()  # nothing of theirs stays for whoever comes next
        end_session("You have signed out.")
        if config.designer_sign_in is SignIn.OIDC:
            st.logout()
        st.rerun()

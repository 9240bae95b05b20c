"""People page (admins): who may sign in to the designer, with which role; add and remove
people (removing someone ends their sessions at once)."""

from __future__ import annotations

import streamlit as st

from journey_designer.api import call, require, session
from journeys.access import Role
from journeys.people import PASSWORD_MIN

FLASH = "people.flash"


def add() -> None:
    """Someone new, with a role and a password (none: they sign in only through OIDC)."""
    st.subheader("Add someone", anchor=False)
    with st.form("people.add", clear_on_submit=True):
        email = st.text_input("Email", key="people.add.email")
        role = st.selectbox("Role", [r.value for r in Role], index=1, key="people.add.role")
        password = st.text_input(
            "Password",
            type="password",
            key="people.add.password",
            help=f"At least {PASSWORD_MIN} characters. Leave empty for someone who signs in "
            "only through your OIDC provider.",
        )
        submitted = st.form_submit_button("Add", type="primary")
    if submitted:
        added = call(
            lambda client: client.add_person(email, str(role), password or None),
            doing=f"add {email or 'someone without an email'}",
        )
        if added is not None:
            st.session_state[FLASH] = f"Added {added['email']} as {added['role']}."
            st.rerun()


def remove(emails: list[str]) -> None:
    """Remove someone; their sessions end at once."""
    st.subheader("Remove someone", anchor=False)
    current = session()
    choices = [email for email in emails if current is None or email != current["email"]]
    if not choices:
        st.caption("Nobody else to remove.")
        return
    email = st.selectbox("Person", choices, key="people.remove.email")
    if st.button("Remove", icon=":material/person_remove:", key="people.remove"):
        removed = call(lambda client: client.remove_person(str(email)), doing=f"remove {email}")
        if removed is not None:
            st.session_state[FLASH] = f"Removed {removed['email']}: their sessions have ended."
            st.rerun()


def main() -> None:
    """Render the page."""
    st.title("People")
    st.caption(
        "Who may sign in to the designer. Viewers read; editors also edit drafts, segments and "
        "templates; publishers also publish, send broadcasts and change settings; admins also "
        "manage people and erase or export users."
    )
    if message := st.session_state.pop(FLASH, None):
        st.success(message)
    people = require(lambda client: client.people(), doing="list the people")
    if people:
        st.dataframe(people, hide_index=True)
    else:
        st.info("Nobody yet.")
    add()
    remove([person["email"] for person in people])


main()

"""`journeys people add|remove|list`: who may sign in to the designer, through the API with the
admin token (JOURNEYS_ADMIN_TOKEN), as `journeys publish` does."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from cli.access import as_admin
from journeys.access import Role
from journeys.people import PASSWORD_MIN

if TYPE_CHECKING:
    from api_client import ApiClient


class NoPassword(Exception):
    """No password could be had: the message says how to give one."""


def add_parser(commands: Any) -> None:
    """Add `people` and its subcommands to the subcommands."""
    people = commands.add_parser(
        "people",
        help="add, remove and list who may sign in to the designer",
        description="Manage the people who sign in to the designer, through the API "
        "(JOURNEYS_API_URL) with the admin token (JOURNEYS_ADMIN_TOKEN).",
    )
    actions = people.add_subparsers(dest="people_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="add someone with a role",
        description="Add someone with a role. On a terminal, the password is asked twice; "
        "otherwise pass --password-stdin (the first line of standard input), or --oidc-only "
        f"for someone who signs in only through OIDC. Passwords have {PASSWORD_MIN} to 1024 "
        "characters.",
    )
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    given = add.add_mutually_exclusive_group()
    given.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    given.add_argument(
        "--oidc-only", action="store_true", help="no password: they sign in only through OIDC"
    )
    add.set_defaults(handler=cmd_add)
    remove = actions.add_parser("remove", help="remove someone (their sessions end at once)")
    remove.add_argument("email", metavar="EMAIL")
    remove.set_defaults(handler=cmd_remove)
    listing = actions.add_parser("list", help="list everyone who may sign in")
    listing.set_defaults(handler=cmd_list)


def _password(args: argparse.Namespace) -> str | None:
    """The new person's password, from where the options say; None for --oidc-only."""
    if args.oidc_only:
        return None
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise NoPassword("--password-stdin: standard input holds no password")
        return line
    if not sys.stdin.isatty():
        raise NoPassword(
            "no password: run on a terminal to be asked, or pass --password-stdin or --oidc-only"
        )
    first = getpass.getpass(f"Password for {args.email}: ")
    if getpass.getpass("Again: ") != first:
        raise NoPassword("the two passwords differ: nothing was added")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    """Add someone who may sign in, with a role and a password (or none, for OIDC)."""
    try:
        password = _password(args)
    except NoPassword as error:
        print(f"journeys: {error}", file=sys.stderr)
        return 2

    def add(client: ApiClient) -> None:
        person = client.add_person(args.email, args.role, password)
        how = "a password" if person["signs_in_with"] == "password" else "OIDC only"
        print(f"added {person['email']} as {person['role']} (signs in with {how})")

    return as_admin(add)


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove someone; their sessions end at once."""

    def remove(client: ApiClient) -> None:
        person = client.remove_person(args.email)
        print(f"removed {person['email']}; their sessions have ended")

    return as_admin(remove)


def cmd_list(args: argparse.Namespace) -> int:
    """Everyone who may sign in: email, role, how they sign in, who added them."""

    def show(client: ApiClient) -> None:
        people = client.people()
        if not people:
            print("nobody yet: add someone with `journeys people add EMAIL --role editor`")
        for person in people:
            print(
                f"{person['email']}\t{person['role']}\t{person['signs_in_with']}\t"
                f"added by {person['created_by']} on {person['created_at'][:10]}"
            )

    return as_admin(show)

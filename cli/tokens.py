"""`journeys tokens create|list|revoke`: personal API tokens, managed through the API with the
admin token (JOURNEYS_API_URL, JOURNEYS_ADMIN_TOKEN)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from cli.access import as_admin
from journeys.access import Role

if TYPE_CHECKING:
    from api_client import ApiClient


def add_parser(commands: Any) -> None:
    """Add `tokens` and its actions to the subcommands."""
    tokens = commands.add_parser(
        "tokens",
        help="create, list and revoke personal API tokens (needs the admin token)",
        description=(
            "Give each teammate and service a token of its own, with the role it needs; the "
            "audit log names the token's NAME for every change made with it."
        ),
    )
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="create a token; prints the secret (shown this once) on stdout"
    )
    create.add_argument("name", metavar="NAME", help="who or what uses it, e.g. ci-deploy")
    create.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="viewer reads; editor also edits drafts, segments and templates; publisher also "
        "publishes, broadcasts and changes settings; admin also manages tokens and users",
    )
    create.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="e.g. 30d, 12h or PT12H, at most 365d (default: until revoked)",
    )
    create.set_defaults(handler=cmd_create)
    listing = actions.add_parser("list", help="list the tokens not revoked (never their secrets)")
    listing.set_defaults(handler=cmd_list)
    revoke = actions.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token_id", metavar="ID", help="the token's id (see `tokens list`)")
    revoke.set_defaults(handler=cmd_revoke)


def cmd_create(args: argparse.Namespace) -> int:
    """Create a token: the secret alone on stdout (for scripts), what it is on stderr."""

    def create(client: ApiClient) -> None:
        created = client.create_token(args.name, args.role, args.expires_in)
        expires = created["expires_at"] or "never"
        print(
            f"created token {created['id']} {created['name']!r} ({created['role']}), expires "
            f"{expires}; the secret below is shown only this once",
            file=sys.stderr,
        )
        print(created["token"])

    return as_admin(create)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the tokens not revoked, one a line."""

    def show(client: ApiClient) -> None:
        listed = client.list_tokens()
        if not listed:
            print("no tokens")
            return
        print(f"{'ID':16}  {'ROLE':9}  {'EXPIRES':25}  {'CREATED BY':20}  NAME")
        for token in listed:
            expires = token["expires_at"] or "never"
            if token["expired"]:
                expires = f"expired {expires}"
            print(
                f"{token['id']:16}  {token['role']:9}  {expires:25}  "
                f"{token['created_by']:20}  {token['name']}"
            )

    return as_admin(show)


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a token."""

    def revoke(client: ApiClient) -> None:
        client.revoke_token(args.token_id)
        print(f"revoked token {args.token_id}")

    return as_admin(revoke)

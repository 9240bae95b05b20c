"""The `journeys` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from journeys.errors import ConfigurationError
from journeys.model import Journey
from journeys.validation import Problem, validate


def _read_problems(path: Path) -> list[Problem]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return [Problem(path="$", message=f"cannot read: {error.strerror}")]
    except UnicodeDecodeError:
        return [Problem(path="$", message="not UTF-8 text")]
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        return [Problem(path="$", message=f"invalid JSON at {where}: {error.msg}")]
    return validate(document)


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate journey files; print one `FILE: path: message` line per problem."""
    failed = False
    for name in args.files:
        for problem in _read_problems(Path(name)):
            failed = True
            print(f"{name}: {problem.path or '$'}: {problem.message}")
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the journey document."""
    print(json.dumps(Journey.model_json_schema(by_alias=True), indent=2))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker until SIGTERM."""
    from journeys.settings import load_settings
    from worker.main import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(load_settings()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate_cmd = commands.add_parser("validate", help="check journey documents")
    validate_cmd.add_argument("files", nargs="+", metavar="FILE")
    validate_cmd.set_defaults(handler=cmd_validate)
    schema_cmd = commands.add_parser("schema", help="print the journey document's JSON Schema")
    schema_cmd.set_defaults(handler=cmd_schema)
    worker_cmd = commands.add_parser("worker", help="run the Temporal worker")
    worker_cmd.set_defaults(handler=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `journeys`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigurationError as error:
        print(f"journeys: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The `journeys` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli import people, simulate, tokens
from journeys.errors import ConfigurationError
from journeys.model import Journey
from journeys.validation import Problem, validate


def _read_json(path: Path) -> tuple[Any, list[Problem]]:
    """The file's JSON document, or the problem reading it."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except OSError as error:
        return None, [Problem(path="$", message=f"cannot read: {error.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem(path="$", message="not UTF-8 text")]
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        return None, [Problem(path="$", message=f"invalid JSON at {where}: {error.msg}")]


def _read_problems(path: Path) -> list[Problem]:
    document, problems = _read_json(path)
    return problems or validate(document)


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
    """Run the worker until SIGTERM; the process then ends (see below)."""
    from journeys.logs import setup_logging
    from journeys.settings import load_settings
    from worker.main import run_worker

    settings = load_settings()
    setup_logging(settings.log_level)
    status = 0
    try:
        asyncio.run(run_worker(settings))
    except ConfigurationError as error:
        print(f"journeys: {error}", file=sys.stderr)
        status = 2
    # The Temporal SDK's runtime threads may still call into Python while the interpreter
    # finalizes (after a failed connect, or after the worker stopped), which now and then
    # aborts the process (SIGABRT) instead of the exit status that says how it went. Once the
    # worker has stopped, or never started, there is nothing left to finalize: leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the app store's schema to the newest revision, saying what that took."""
    from sqlalchemy.engine import make_url

    from journeys.settings import load_settings
    from journeys.store import Store

    settings = load_settings()
    store = Store.from_settings(settings)  # opening a store migrates it
    store.close()
    print(f"database {make_url(settings.database_url).render_as_string(hide_password=True)}")
    print(store.migration.describe())
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Run the HTTP API on the given port until SIGTERM."""
    from journeys.logs import setup_logging
    from journeys.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level)
    from cli.serve import run_api

    run_api(settings, args.port, host=args.host)
    return 0


def designer_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The `streamlit run` command line of the designer on `host:port`."""
    import journey_designer

    app = Path(journey_designer.__file__).with_name("app.py")
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.address", host,
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def cmd_designer(args: argparse.Namespace) -> int:
    """Replace this process with the Streamlit designer (so signals reach Streamlit itself)."""
    from journeys.settings import Component, load_settings

    load_settings().require(Component.DESIGNER)
    argv = designer_argv(args.port, args.host)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def cmd_up(args: argparse.Namespace) -> int:
    """Run the whole local stack until Ctrl-C."""
    from cli.up import StackConfig, run_up

    config = StackConfig(
        data_dir=Path(args.data_dir),
        api_port=args.api_port,
        designer_port=args.designer_port,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        shop_port=args.shop_port,
        designer=not args.no_designer,
    )
    return run_up(config)


def _is_segment(document: Any) -> bool:
    return isinstance(document, dict) and set(document) == {"id", "name", "condition"}


def cmd_publish(args: argparse.Namespace) -> int:
    """Save segments, then save and publish journeys, through the API."""
    from api_client import ApiClient, ApiError, ApiUnreachable
    from journeys.settings import Component, load_settings

    settings = load_settings().require(Component.PUBLISH)
    failed = False
    segments: list[tuple[str, dict[str, Any]]] = []
    journeys: list[tuple[str, dict[str, Any]]] = []
    for name in args.files:
        document, problems = _read_json(Path(name))
        if not problems and not _is_segment(document):
            problems = validate(document)
        for problem in problems:
            print(f"{name}: {problem.path or '$'}: {problem.message}")
        if problems:
            failed = True
        else:
            (segments if _is_segment(document) else journeys).append((name, document))
    with ApiClient(settings.api_url, admin_token=settings.admin_token) as client:
        # Segments first: a journey that names a segment can only be published after it.
        for name, document in segments + journeys:
            try:
                if _is_segment(document):
                    client.put_segment(document)
                    print(f"{name}: saved segment {document['id']}")
                else:
                    client.put_journey(document)
                    version = client.publish(document["id"])
                    print(f"{name}: published {document['id']} v{version}")
            except ApiUnreachable as error:
                print(f"journeys: {error}", file=sys.stderr)
                return 2
            except ApiError as error:
                failed = True
                print(f"{name}: {error.message} (HTTP {error.status} {error.code})")
                for line in error.detail_lines():
                    print(f"{name}: {line}")
    return 1 if failed else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Fit the conversion model now and score every user, as the nightly schedule does."""
    from datetime import UTC, datetime, timedelta

    from activities.predictions import run_predictions
    from cli.demo import progress_bar
    from journeys.settings import load_settings
    from journeys.store import Store

    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage:8} {progress_bar(done, total)} {done}/{total} users", end="", flush=True)
        if done == total:
            print()

    store = Store.from_settings(load_settings())
    try:
        report = run_predictions(
            store, timedelta(days=args.horizon), datetime.now(UTC), progress=show
        )
    finally:
        store.close()
    quality = "n/a" if report.auc is None else f"{report.auc:.3f}"
    print(
        f"{report.status}: {report.training_users} training users, {report.converters} "
        f"converted within {report.horizon_days} days; held-out AUC {quality} "
        f"({report.held_out_users} users); {report.users_scored} users scored"
    )
    if report.message:
        print(report.message)
    for feature, weight in sorted(report.coefficients.items(), key=lambda kv: -abs(kv[1])):
        print(f"  {feature:26} {weight:+.3f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Send realistic storefront traffic and show the demo journeys' messages landing."""
    from api_client import ApiClient, ApiError, ApiUnreachable
    from cli.demo import plan_traffic, run_demo
    from journeys.settings import Component, load_settings

    settings = load_settings().require(Component.DEMO)
    run = f"demo-{int(time.time()) % 1_000_000:06d}"
    traffic = plan_traffic(args.users, seed=args.seed, run=run)
    with ApiClient(
        settings.api_url, admin_token=settings.admin_token, write_key=settings.write_key
    ) as client:
        try:
            run_demo(
                client,
                traffic,
                temporal_ui_url=settings.temporal_ui_url,
                temporal_address=settings.temporal_address,
                temporal_namespace=settings.temporal_namespace,
                speed=args.speed,
                wait=args.wait,
            )
        except ApiUnreachable as error:
            print(f"\njourneys: {error}", file=sys.stderr)
            return 2
        except ApiError as error:
            print(f"\njourneys: the API refused the demo: {error}", file=sys.stderr)
            for line in error.detail_lines():
                print(f"  {line}", file=sys.stderr)
            return 1
    return 0


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


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
    migrate_cmd = commands.add_parser(
        "migrate", help="bring the database (JOURNEYS_DATABASE_URL) to the newest schema"
    )
    migrate_cmd.set_defaults(handler=cmd_migrate)

    up_cmd = commands.add_parser(
        "up", help="run the whole local stack: Temporal, worker, API, designer, storefront"
    )
    up_cmd.add_argument(
        "--data-dir",
        default=".journeys",
        metavar="DIR",
        help="where the Temporal and app databases and the logs live (default .journeys)",
    )
    for option, default, what in (
        ("--api-port", 8000, "the API"),
        ("--designer-port", 8501, "the designer"),
        ("--temporal-port", 7233, "the Temporal frontend (gRPC)"),
        ("--ui-port", 8233, "the Temporal Web UI"),
        ("--shop-port", 8090, "the demo storefront (examples/web/, using the browser SDK)"),
    ):
        up_cmd.add_argument(
            option, type=int, default=default, metavar="PORT", help=f"{what} (default {default})"
        )
    up_cmd.add_argument("--no-designer", action="store_true", help="do not start the designer")
    up_cmd.set_defaults(handler=cmd_up)
    api_cmd = commands.add_parser("api", help="run the HTTP API")
    api_cmd.add_argument("--port", type=int, default=8000, help="(default 8000)")
    api_cmd.add_argument(
        "--host", default="0.0.0.0", help="interface to listen on (default: all, for containers)"
    )
    api_cmd.set_defaults(handler=cmd_api)
    designer_cmd = commands.add_parser("designer", help="run the designer (Streamlit)")
    designer_cmd.add_argument("--port", type=int, default=8501, help="(default 8501)")
    designer_cmd.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: loopback; 0.0.0.0 in a container)",
    )
    designer_cmd.set_defaults(handler=cmd_designer)
    publish_cmd = commands.add_parser(
        "publish", help="save and publish journeys (and save segments) through the API"
    )
    publish_cmd.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="journey documents or segments {id, name, condition}",
    )
    publish_cmd.set_defaults(handler=cmd_publish)
    predict_cmd = commands.add_parser(
        "predict", help="fit the conversion model and score every user (nightly otherwise)"
    )
    predict_cmd.add_argument(
        "--horizon",
        type=_positive(int),
        default=7,
        help="predict conversion within this many days (default 7)",
    )
    predict_cmd.set_defaults(handler=cmd_predict)
    demo_cmd = commands.add_parser("demo", help="send storefront traffic to watch journeys run")
    demo_cmd.add_argument("--users", type=_positive(int), default=20, metavar="N")
    demo_cmd.add_argument(
        "--speed",
        type=_positive(float),
        default=1.0,
        metavar="FACTOR",
        help="play the traffic FACTOR times faster (journey waits stay as published)",
    )
    demo_cmd.add_argument("--seed", type=int, default=42, help="the same seed, the same traffic")
    demo_cmd.add_argument(
        "--wait",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="how long to watch for messages after the traffic",
    )
    demo_cmd.set_defaults(handler=cmd_demo)
    simulate.add_parser(commands)
    people.add_parser(commands)
    tokens.add_parser(commands)
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

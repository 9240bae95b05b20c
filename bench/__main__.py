"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks (see bench/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from bench.common import SCALES
from bench.postgres import ENV
from bench.run import BENCHMARKS, STORES, run_benchmarks

HERE = Path(__file__).parent


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a couple of minutes (--scale quick)"
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="NAME",
        help=f"run only these, of {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=HERE / "results.json", help="(default bench/results.json)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".journeys/bench"),
        help="the stack's databases and logs, emptied first (default .journeys/bench)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(ENV) or None,
        help=f"a PostgreSQL role with CREATEDB, for the replicas benchmark and --store postgres "
        f"(default ${ENV}; the replicas benchmark is skipped without one)",
    )
    parser.add_argument(
        "--store",
        choices=STORES,
        default="sqlite",
        help="the app store of every benchmark's stack: a SQLite file (default), or a PostgreSQL "
        "database of its own on the server of --postgres-url (the replicas benchmark always "
        "uses PostgreSQL)",
    )
    args = parser.parse_args()
    if args.store == "postgres" and args.postgres_url is None:
        parser.error(f"--store postgres needs --postgres-url or ${ENV}")
    # SIGTERM stops a run as Ctrl-C does, so that the stack's processes are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    scale = "quick" if args.quick else args.scale
    asyncio.run(
        run_benchmarks(
            SCALES[scale],
            scale=scale,
            workdir=args.workdir.resolve(),
            output=args.output,
            only=tuple(args.only),
            postgres_url=args.postgres_url,
            store=args.store,
        )
    )


if __name__ == "__main__":
    main()

"""One benchmark run: the chosen benchmarks, each on a stack of its own, then the results.

A fresh stack per benchmark (and per capacity size): the in-memory dev server keeps every
history it was given, and the histories one benchmark leaves behind slowed the next one down
(the first full run entered 5,000 capacity users at 4/s after the others had run, against
36/s for 1,000 before). Side-by-side comparisons stay within one stack."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import burst, capacity, inapp_latency, ingest, interpreter, latency, replicas
from bench.common import Sizes, say
from bench.receiver import Receiver
from bench.report import machine, table
from bench.stack import Stack, running_stack

BENCHMARKS = ("ingest", "latency", "interpreter", "capacity", "inapp", "replicas", "burst")
STORES = ("sqlite", "postgres")


async def run_benchmarks(
    sizes: Sizes,
    *,
    scale: str,
    workdir: Path,
    output: Path | None,
    only: tuple[str, ...] = BENCHMARKS,
    postgres_url: str | None = None,
    store: str = "sqlite",
) -> dict[str, Any]:
    """Run `only` (in the order of `BENCHMARKS`) at `sizes`, on stacks kept in `workdir`
    (emptied first, a folder per stack); print the table and write the results to `output`
    (when given), also after each benchmark, capacity size, replica count and burst side, so
    that a run cut short keeps what it measured. The replicas benchmark creates its databases
    on the PostgreSQL server of `postgres_url` (a role with CREATEDB), and is skipped without
    one; with `store` "postgres", every other stack's app store is a database there too
    (production's store) instead of a SQLite file."""
    default_database = _stacks_database(store, postgres_url)
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "scale": scale,
        "store": store,
        "sizes": dataclasses.asdict(sizes),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }

    def save() -> None:
        if output is not None:
            output.write_text(json.dumps(results, indent=2) + "\n")

    processes: dict[str, dict[str, int]] = {}
    results["processes"] = processes

    @asynccontextmanager
    async def fresh_stack(
        label: str, *, postgres_url: str | None = default_database, apis: int = 1
    ) -> AsyncIterator[Stack]:
        say(f"starting a stack in {workdir / label}")
        async with running_stack(workdir / label, postgres_url=postgres_url, apis=apis) as stack:
            processes[label] = {process.name: process.pid for process in stack.processes()}
            yield stack

    async with Receiver() as receiver:
        for name in BENCHMARKS:
            if name not in only:
                continue
            match name:
                case "ingest":
                    async with fresh_stack(name) as stack:
                        results[name] = await ingest.run(stack, sizes)
                case "latency":
                    async with fresh_stack(name) as stack:
                        results[name] = await latency.run(stack, sizes, receiver)
                case "interpreter":
                    async with fresh_stack(name) as stack:
                        results[name] = await interpreter.run(stack, sizes, receiver)
                case "capacity":
                    async for figures in capacity.run(fresh_stack, sizes):
                        results[name] = figures
                        save()
                case "inapp":
                    async with fresh_stack(name) as stack:
                        results[name] = await inapp_latency.run(stack, sizes)
                case "replicas":
                    async for figures in replicas.run(fresh_stack, sizes, postgres_url):
                        results[name] = figures
                        save()
                case "burst":
                    async for figures in burst.run(fresh_stack, sizes):
                        results[name] = figures
                        save()
            save()
    results["seconds"] = round(time.perf_counter() - started, 1)
    save()
    say("")
    say(table(results))
    if output is not None:
        say(f"\nresults written to {output}")
    return results


def _stacks_database(store: str, postgres_url: str | None) -> str | None:
    """The PostgreSQL server on which the stacks get their app store, None for SQLite files."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}, not one of {', '.join(STORES)}")
    if store == "sqlite":
        return None
    if postgres_url is None:
        raise ValueError("a PostgreSQL store needs a postgres_url")
    return postgres_url

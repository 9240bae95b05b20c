"""The benchmark harness at tiny sizes, so it cannot rot: every benchmark runs end to end against
a real stack (dev server, API, journeys worker, bare worker) and reports every figure. It asserts
the shape of the results, never their values: performance is `make bench`'s business."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.burst import SIDES
from bench.common import TINY
from bench.inapp_latency import CHROMIUM
from bench.postgres import ENV
from bench.replicas import SKIPPED
from bench.run import BENCHMARKS, run_benchmarks
from bench.stack import rss_bytes


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


async def test_every_benchmark_runs_and_reports_its_figures(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    # The in-app benchmark drives Chromium: left out where there is none, except in CI.
    browser = Path(CHROMIUM).exists() or os.environ.get("JOURNEYS_TEST_STRICT") == "1"
    only = BENCHMARKS if browser else tuple(b for b in BENCHMARKS if b != "inapp")
    # The replicas benchmark needs PostgreSQL: it reports why it skipped where there is none.
    postgres_url = os.environ.get(ENV) or os.environ.get("JOURNEYS_TEST_POSTGRES_URL")
    if postgres_url is None and os.environ.get("JOURNEYS_TEST_STRICT") == "1":
        pytest.fail(f"neither {ENV} nor JOURNEYS_TEST_POSTGRES_URL is set")
    results = await run_benchmarks(
        TINY,
        scale="tiny",
        workdir=tmp_path / "stack",
        output=output,
        only=only,
        postgres_url=postgres_url,
    )

    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    assert set(only) <= set(results)
    assert results["machine"]["cores"] >= 1
    assert finite(results["seconds"])
    # A stack per benchmark, capacity size, count of replicas and burst side, every process of
    # each stopped.
    replicas = [f"replicas-{n}" for n in TINY.replicas] if postgres_url else []
    assert sorted(results["processes"]) == sorted(
        [
            "ingest", "latency", "interpreter", *(f"capacity-{n}" for n in TINY.capacity),
            *(["inapp"] if browser else []), *replicas, *(f"burst-{side}" for side in SIDES),
        ]
    )  # fmt: skip
    for label, stack in results["processes"].items():
        apis = TINY.replicas[replicas.index(label)] if label in replicas else 1
        more = {f"api-{n}" for n in range(2, apis + 1)}
        assert set(stack) == {"temporal", "api", "worker", "bare-worker", *more}, label
        for name, pid in stack.items():
            assert not Path(f"/proc/{pid}").exists(), name

    ingest = results["ingest"]
    assert finite(ingest["journeys"]["routed_per_s"])
    assert finite(ingest["bare"]["signalled_per_s"])
    assert finite(ingest["ratio"])
    assert isinstance(ingest["met"], bool)
    assert finite(ingest["journeys"]["cpu_ms_per_event"]["total"])

    [(rate, latency)] = results["latency"]["rates"].items()
    assert rate == str(TINY.latency_rates[0])
    assert latency["received"] + latency["lost"] == latency["events"]
    assert latency["received"] > 0
    assert latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]

    interpreter = results["interpreter"]
    assert interpreter["journeys_per_side"] == TINY.interpreter_journeys
    for figure in ("bare_per_s", "journeys_per_s", "ratio"):
        assert finite(interpreter[figure]), figure
    for side in ("bare_cpu_ms_per_run", "journeys_cpu_ms_per_run"):
        assert interpreter[side]["total"] > 0, side

    capacity = results["capacity"]
    assert [size["users"] for size in capacity["sizes"]] == list(TINY.capacity)
    for size in capacity["sizes"]:
        assert size["worker_rss_mib"] > 0
        assert size["server_rss_mib"] > 0
        assert finite(size["enter_seconds"])
        assert finite(size["release_seconds"])
    assert [g["users_x"] for g in capacity["growth"]] == [1.0, TINY.capacity[1] / TINY.capacity[0]]

    if postgres_url is None:
        assert results["replicas"] == {"skipped": SKIPPED}
    else:
        check_replicas(results["replicas"], postgres_url)
    check_burst(results["burst"])

    if browser:
        inapp = results["inapp"]
        assert inapp["runs"] == TINY.inapp_runs
        assert inapp["shown"] + inapp["lost"] == inapp["runs"]
        assert inapp["shown"] > 0
        assert 0 < inapp["p50_ms"] <= inapp["p95_ms"] <= inapp["p99_ms"] <= inapp["max_ms"]
        stages = {"track_to_stored", "stored_to_sent", "sent_to_screen"}
        assert set(inapp["stages_p50_ms"]) == stages


def check_replicas(replicas: dict[str, Any], postgres_url: str) -> None:
    counts = replicas["counts"]
    assert [count["apis"] for count in counts] == list(TINY.replicas)
    for count in counts:
        assert count["events_sent"] == TINY.replicas_users + TINY.replicas_events
        assert 0 <= count["lost"] <= count["events_sent"]
        # Every event found in a history was signalled at least once.
        assert count["signals"] >= count["events_sent"] - count["lost"]
        assert math.isclose(count["signals_per_event"], count["signals"] / count["events_sent"])
        assert isinstance(count["met"], bool)
        assert finite(count["routed_per_s"])
        assert len(count["routed_by_replica"]) == count["apis"]
        assert finite(count["cpu_ms_per_event"]["total"])
        assert finite(count["other_load_cores"])
    # Each stack's database was dropped with it.
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            names = set(connection.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        admin.dispose()
    assert not names & {count["database"] for count in counts}


def check_burst(burst: dict[str, Any]) -> None:
    assert burst["users"] == TINY.burst_users
    for side in SIDES:
        figures = burst[side]
        assert finite(figures["entered_per_s"]), side
        assert figures["accepted_per_s"] >= figures["entered_per_s"], side
        assert figures["backlog_peak"] >= 0, side
        timeline = figures["timeline"]
        assert timeline, side
        assert [s["seconds"] for s in timeline] == sorted(s["seconds"] for s in timeline), side
        assert timeline[-1]["waiting"] == TINY.burst_users, side
        assert timeline[-1]["accepted"] == TINY.burst_users, side
    assert math.isclose(
        burst["ratio"], burst["unpaced"]["entered_per_s"] / burst["paced"]["entered_per_s"]
    )
    assert isinstance(burst["met"], bool)


def test_rss_of_a_process_that_is_gone_is_zero() -> None:
    assert rss_bytes(2**22 + 7) == 0


async def test_the_latency_benchmark_runs_on_a_postgresql_store(tmp_path: Path) -> None:
    postgres_url = os.environ.get(ENV) or os.environ.get("JOURNEYS_TEST_POSTGRES_URL")
    if postgres_url is None:
        if os.environ.get("JOURNEYS_TEST_STRICT") == "1":
            pytest.fail(f"neither {ENV} nor JOURNEYS_TEST_POSTGRES_URL is set")
        pytest.skip("no PostgreSQL to run on")
    results = await _latency_only(tmp_path, "postgres", postgres_url)
    assert results["store"] == "postgres"
    for figures in results["latency"]["rates"].values():
        used = figures["cpu_ms_per_event"]
        assert set(used) == {"api", "worker", "temporal", "postgres", "total"}
        assert all(finite(value) for value in used.values())
    bare = results["latency"]["entry_path"]["bare"]["cpu_ms_per_event"]
    assert set(bare) == {"bare-worker", "temporal", "driver", "postgres", "total"}


@pytest.mark.parametrize(
    ("chosen", "says"),
    [
        ("postgres", "a PostgreSQL store needs a postgres_url"),
        ("mysql", "unknown store 'mysql'"),
    ],
)
async def test_a_store_the_benchmarks_cannot_use_is_refused_before_anything_starts(
    tmp_path: Path, chosen: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        await _latency_only(tmp_path, chosen, None)
    assert not (tmp_path / "stack").exists()


async def _latency_only(tmp_path: Path, store: str, postgres_url: str | None) -> dict[str, Any]:
    """The latency benchmark alone, at tiny sizes, on `store`."""
    return await run_benchmarks(
        TINY,
        scale="tiny",
        workdir=tmp_path / "stack",
        output=None,
        only=("latency",),
        postgres_url=postgres_url,
        store=store,
    )


def test_the_command_line_asks_for_a_server_for_a_postgresql_store() -> None:
    environment = {k: v for k, v in os.environ.items() if k != ENV}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--store", "postgres", "--only", "latency"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"--store postgres needs --postgres-url or ${ENV}" in result.stderr

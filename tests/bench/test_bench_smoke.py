"""The benchmark harness at tiny sizes, so it cannot rot: every benchmark runs end to end against
a real stack (dev server, API, journeys worker, bare worker) and reports every figure. It asserts
the shape of the results, never their values: performance is `make bench`'s business."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.common import TINY
from bench.inapp_latency import CHROMIUM
from bench.run import BENCHMARKS, run_benchmarks
from bench.stack import rss_bytes


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


async def test_every_benchmark_runs_and_reports_its_figures(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    # The in-app benchmark drives Chromium: left out where there is none, except in CI.
    browser = Path(CHROMIUM).exists() or os.environ.get("JOURNEYS_TEST_STRICT") == "1"
    only = BENCHMARKS if browser else tuple(b for b in BENCHMARKS if b != "inapp")
    results = await run_benchmarks(
        TINY, scale="tiny", workdir=tmp_path / "stack", output=output, only=only
    )

    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    assert set(only) <= set(results)
    assert results["machine"]["cores"] >= 1
    assert finite(results["seconds"])
    # A stack per benchmark and per capacity size, every process of each stopped.
    assert sorted(results["processes"]) == sorted(
        [
            "ingest", "latency", "interpreter", *(f"capacity-{n}" for n in TINY.capacity),
            *(["inapp"] if browser else []),
        ]
    )  # fmt: skip
    for stack in results["processes"].values():
        assert set(stack) == {"temporal", "api", "worker", "bare-worker"}
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

    if browser:
        inapp = results["inapp"]
        assert inapp["runs"] == TINY.inapp_runs
        assert inapp["shown"] + inapp["lost"] == inapp["runs"]
        assert inapp["shown"] > 0
        assert 0 < inapp["p50_ms"] <= inapp["p95_ms"] <= inapp["p99_ms"] <= inapp["max_ms"]
        stages = {"track_to_stored", "stored_to_sent", "sent_to_screen"}
        assert set(inapp["stages_p50_ms"]) == stages


def test_rss_of_a_process_that_is_gone_is_zero() -> None:
    assert rss_bytes(2**22 + 7) == 0

"""The results as a table, and the machine they were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cli.up import find_temporal


def machine() -> dict[str, Any]:
    """Cores, memory, load and versions: what the figures depend on."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    cli = subprocess.run(
        [find_temporal(), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": cli.stdout.strip(),
        "platform": platform.platform(),
    }


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def table(results: dict[str, Any]) -> str:
    """The figures of every benchmark that ran, as a Markdown table."""
    rows = [("benchmark", "figure", "journeys", "bare SDK", "ratio / target")]
    ingest = results.get("ingest")
    if ingest is not None:
        rows.append(
            (
                f"ingest ({ingest['events']} events, {ingest['users']} runs)",
                "events/s routed (accepted)",
                f"{ingest['journeys']['routed_per_s']:.0f} "
                f"({ingest['journeys']['accepted_per_s']:.0f})",
                f"{ingest['bare']['signalled_per_s']:.0f}",
                f"{ingest['ratio']:.2f} ≥ {ingest['target']} {_verdict(ingest['met'])}",
            )
        )
        rows.append(
            (
                "",
                "CPU ms/event: sender + server",
                f"{ingest['journeys']['cpu_ms_per_event']['total']:.2f}",
                f"{ingest['bare']['cpu_ms_per_event']['total']:.2f}",
                "",
            )
        )
    latency = results.get("latency")
    if latency is not None:
        for rate, figures in latency["rates"].items():
            target = ""
            if rate == str(latency["target_rate"]):
                target = f"p99 < {latency['target_p99_ms']:.0f} ms {_verdict(latency['met'])}"
            rows.append(
                (
                    f"latency at {rate}/s ({figures['events']} events, {figures['lost']} lost)",
                    "p50 / p95 / p99 ms; CPU ms/event; other load (cores)",
                    f"{figures['p50_ms']:.0f} / {figures['p95_ms']:.0f} / {figures['p99_ms']:.0f}"
                    f"; {figures['cpu_ms_per_event']['total']:.0f}"
                    f"; {figures['other_load_cores']:.2f}",
                    "",
                    target,
                )
            )
        entry = latency["entry_path"]
        rows.append(
            (
                f"entry path saturated ({entry['rate']} events/s offered)",
                "event → webhook messages delivered/s",
                f"{entry['journeys_per_s']:.1f}",
                f"{entry['bare_per_s']:.1f}",
                f"{entry['ratio']:.2f} ≥ {entry['target']} {_verdict(entry['met'])}",
            )
        )
    interpreter = results.get("interpreter")
    if interpreter is not None:
        rows.append(
            (
                f"interpreter ({interpreter['journeys_per_side']} runs a side)",
                "five-step runs completed/s",
                f"{interpreter['journeys_per_s']:.1f}",
                f"{interpreter['bare_per_s']:.1f}",
                f"{interpreter['ratio']:.2f} ≥ {interpreter['target']} "
                f"{_verdict(interpreter['met'])}",
            )
        )
        bare_cpu, journeys_cpu = (
            interpreter["bare_cpu_ms_per_run"],
            interpreter["journeys_cpu_ms_per_run"],
        )
        rows.append(
            (
                "",
                "CPU ms/run: worker + server + client",
                _cpu_sum(journeys_cpu),
                _cpu_sum(bare_cpu),
                f"{bare_cpu['total'] / journeys_cpu['total']:.2f} (bare/journeys)",
            )
        )
    capacity = results.get("capacity")
    if capacity is not None:
        for size in capacity["sizes"]:
            rows.append(
                (
                    f"capacity: {size['users']} waiting 24 h",
                    "RSS MiB worker / server (added); enter, release s",
                    f"{size['worker_rss_mib']:.0f} / {size['server_rss_mib']:.0f} "
                    f"(+{size['worker_added_mib']:.0f} / +{size['server_added_mib']:.0f}); "
                    f"{size['enter_seconds']:.1f}, {size['release_seconds']:.1f}",
                    "",
                    f"{size['enter_per_s']:.0f} entered/s, {size['release_per_s']:.0f} released/s",
                )
            )
    inapp = results.get("inapp")
    if inapp is not None:
        stages = inapp["stages_p50_ms"]
        rows.append(
            (
                f"in-app: event to tooltip ({inapp['runs']} runs, {inapp['lost']} lost)",
                "p50 / p95 / p99 ms; p50 stages: SDK+ingest, journey, to screen",
                f"{inapp['p50_ms']:.0f} / {inapp['p95_ms']:.0f} / {inapp['p99_ms']:.0f}; "
                f"{stages['track_to_stored']:.0f}, {stages['stored_to_sent']:.0f}, "
                f"{stages['sent_to_screen']:.0f}",
                "",
                "",
            )
        )
    rows.extend(_replicas_rows(results.get("replicas")))
    rows.extend(_burst_rows(results.get("burst")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


Row = tuple[str, str, str, str, str]


def _replicas_rows(replicas: dict[str, Any] | None) -> list[Row]:
    """A row per count of API replicas: signals per event, routed rate, the routing's share."""
    if replicas is None:
        return []
    if "skipped" in replicas:
        return [("replicas", "skipped", replicas["skipped"], "", "")]
    return [
        (
            f"replicas: {count['apis']} API on PostgreSQL ({replicas['events']} events to "
            f"{replicas['users']} runs, {count['lost']} lost)",
            "signals/event; events/s routed (accepted); routed by each; other load",
            f"{count['signals_per_event']:.2f}; {count['routed_per_s']:.0f} "
            f"({count['accepted_per_s']:.0f}); "
            f"{' / '.join(str(n) for n in count['routed_by_replica'])}; "
            f"{count['other_load_cores']:.2f}",
            "",
            f"signals/event = {replicas['target']:.2f} {_verdict(count['met'])}",
        )
        for count in replicas["counts"]
    ]


def _burst_rows(burst: dict[str, Any] | None) -> list[Row]:
    """A row per side of the burst (entry rate, backlog, window), the ratio on the last."""
    if burst is None:
        return []
    rows: list[Row] = []
    for side in ("paced", "unpaced"):
        figures = burst.get(side)
        if figures is None:
            continue
        window = "–"
        if figures["window_min"] is not None:
            window = f"{figures['window_min']:.0f}–{figures['window_max']:.0f}"
        rows.append(
            (
                f"burst: {burst['users']} entering, {side}",
                "entered/s (accepted/s); backlog peak; window; other load",
                f"{figures['entered_per_s']:.1f} ({figures['accepted_per_s']:.0f}); "
                f"{figures['backlog_peak']}; {window}; {figures['other_load_cores']:.2f}",
                "",
                "",
            )
        )
    if "ratio" in burst:
        last = rows[-1]
        rows[-1] = (*last[:4], f"{burst['ratio']:.2f} ≥ {burst['floor']} {_verdict(burst['met'])}")
    return rows


def _cpu_sum(ms: dict[str, float]) -> str:
    """`worker + server + client = total` CPU milliseconds."""
    return f"{ms['worker']:.0f} + {ms['server']:.0f} + {ms['client']:.0f} = {ms['total']:.0f}"

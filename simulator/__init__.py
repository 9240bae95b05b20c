"""Journey simulation: a journey version run for one described user on a time-skipping engine
of its own, against an isolated store, sending nothing (`POST /v1/journeys/{id}/simulate`,
`journeys simulate`).

A layer of its own, between the processes (the API and the command line use it) and the
activities it runs: it builds its own worker, never the `worker` package's.
"""

from __future__ import annotations

from simulator.engine import test_server_binary, time_skipping_engine
from simulator.run import SimulationFailed, simulate
from simulator.scratch import Workspace

__all__ = [
    "SimulationFailed",
    "Workspace",
    "simulate",
    "test_server_binary",
    "time_skipping_engine",
]

"""The tests' shared time-skipping server stays usable after a test that stopped while its run
had work under way: terminating a run whose workflow task is outstanding leaves the server's
clock held for good (no timer fires again), so the conftest replaces such a server. A server
of this test's own, so the session's is not the one broken."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.worker import Worker

from tests.conftest import TimeSkippingServer


@workflow.defn(sandboxed=False)  # the module imports the conftest, too much for the sandbox
class WaitsADay:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=1))


async def test_a_run_terminated_with_a_task_outstanding_leaves_a_server_whose_timers_fire() -> None:
    server = TimeSkippingServer()
    env = await server.start()
    try:
        queue = f"test-{uuid.uuid4().hex[:12]}"
        # No worker polls the queue yet: the run's first workflow task stays outstanding.
        await env.client.start_workflow(WaitsADay.run, id=f"{queue}-left", task_queue=queue)
        await server.end_leftover_runs()

        assert server.env is not None
        async with Worker(server.env.client, task_queue=queue, workflows=[WaitsADay]):
            day = await server.env.client.start_workflow(
                WaitsADay.run, id=f"{queue}-day", task_queue=queue
            )
            await asyncio.wait_for(day.result(), timeout=10)
    finally:
        assert server.env is not None
        await server.env.shutdown()

"""The Temporal server stopped and restarted while users wait on timers and events arrive.

A persistent dev server (its state in a file) runs the journeys; the API (with its event
router) and a worker run in this process. With users waiting on delays and on events, the
server is stopped; during the outage the timers come due, the API keeps accepting events (new
entries, and the events waiting users wait for) into its outbox. Once the server is back every
timer fires and every event accepted during the outage is routed, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cli.serve import api_with_relay
from journeys.contracts import JourneyOutcome, workflow_id
from journeys.settings import Settings
from journeys.store import Store
from tests.reliability.helpers import serve_api, temporal_dev_server
from worker.main import build_worker

WRITE_KEY = "restart-write-key"
ADMIN = {"Authorization": "Bearer restart-admin-token"}
DELAY = 3.0
"""Seconds the timer journey waits: shorter than the outage, so every timer comes due while
the server is down (real time: a dev server cannot skip it)."""
PER_GROUP = 10

log = logging.getLogger(__name__)

TIMER_JOURNEY = {
    "id": "restart-timer",
    "name": "Welcome after a delay",
    "entry": {"event": "Signed Up"},
    "start": "pause",
    "nodes": {
        "pause": {"type": "delay", "duration": f"{DELAY:.0f}s", "next": "welcome"},
        "welcome": {"type": "message", "channel": "in_app", "content": {"body": "Welcome"}},
    },
}
EVENT_JOURNEY = {
    "id": "restart-event",
    "name": "Thanks for the click",
    "entry": {"event": "Started Trial"},
    "start": "wait_click",
    "nodes": {
        "wait_click": {
            "type": "wait_for_event",
            "timeout": "1h",
            "on_timeout": None,
            "paths": [{"event": "Clicked", "next": "thanks"}],
        },
        "thanks": {"type": "message", "channel": "in_app", "content": {"body": "Thanks"}},
    },
}


def track(user: str, event: str) -> dict[str, Any]:
    """A Segment track call for a batch."""
    return {"type": "track", "userId": user, "event": event, "messageId": f"{user}:{event}"}


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Wait (real time) until `check` holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_timers_fire_and_events_accepted_during_an_outage_are_routed(
    tmp_path: Path, store: Store, executor: ThreadPoolExecutor
) -> None:
    waiting_on_timers = [f"timer-{n}" for n in range(PER_GROUP)]
    waiting_on_events = [f"waiter-{n}" for n in range(PER_GROUP)]
    entering_in_outage = [f"late-{n}" for n in range(PER_GROUP)]
    entering_and_clicking = [f"quick-{n}" for n in range(PER_GROUP)]

    with temporal_dev_server(tmp_path / "temporal.db") as server:
        client = await server.connect()
        settings = Settings(
            temporal_address=server.address,
            task_queue="restart",
            write_key=WRITE_KEY,
            admin_token="restart-admin-token",
            unsubscribe_secret="restart-secret",
        )
        async with (
            serve_api(api_with_relay(settings, store=store)) as api_url,
            build_worker(client, store, settings.task_queue, executor),
            httpx.AsyncClient(base_url=api_url, timeout=30) as http,
        ):
            for document in (TIMER_JOURNEY, EVENT_JOURNEY):
                journey_id = document["id"]
                saved = await http.put(f"/v1/journeys/{journey_id}", json=document, headers=ADMIN)
                assert saved.status_code == 200, saved.text
                published = await http.post(f"/v1/journeys/{journey_id}/publish", headers=ADMIN)
                assert published.status_code == 200, published.text

            async def ingest(calls: list[dict[str, Any]]) -> None:
                response = await http.post("/v1/batch", json={"batch": calls}, auth=(WRITE_KEY, ""))
                assert response.status_code == 200, response.text

            async def waiting(journey_id: str, node: str, count: int) -> bool:
                nodes = await asyncio.to_thread(store.node_counts, journey_id)
                return nodes.get(node, {}).get("waiting", 0) == count

            # Before the outage: users wait on their timers and for their events.
            await ingest(
                [track(u, "Signed Up") for u in waiting_on_timers]
                + [track(u, "Started Trial") for u in waiting_on_events]
            )
            await until(lambda: waiting("restart-timer", "pause", PER_GROUP), "timer waits")
            await until(lambda: waiting("restart-event", "wait_click", PER_GROUP), "event waits")

            stopped = time.monotonic()
            await asyncio.to_thread(server.stop)
            during_outage = (
                [track(u, "Clicked") for u in waiting_on_events]
                + [track(u, "Signed Up") for u in entering_in_outage]
                + [track(u, "Started Trial") for u in entering_and_clicking]
                + [track(u, "Clicked") for u in entering_and_clicking]
            )
            for call in during_outage:  # one request each, as services send them
                await ingest([call])
            # Accepted and waiting in the outbox; the router only retries meanwhile.
            assert await asyncio.to_thread(store.unrouted_count) == len(during_outage)
            # Keep the server down until every timer of the first users has come due.
            await asyncio.sleep(max(0.0, DELAY + 1 - (time.monotonic() - stopped)))
            outage = time.monotonic() - stopped
            await asyncio.to_thread(server.start)
            await server.connect()
            restarted = time.monotonic()

            async def outcome(journey_id: str, user: str) -> JourneyOutcome:
                handle = client.get_workflow_handle(
                    workflow_id(journey_id, user), result_type=JourneyOutcome
                )
                while True:
                    try:
                        result: JourneyOutcome = await handle.result()
                        return result
                    except Exception as error:  # not started yet: routing is asynchronous
                        if "not found" not in str(error).lower():
                            raise
                    await asyncio.sleep(0.1)

            timers = waiting_on_timers + entering_in_outage
            clicks = waiting_on_events + entering_and_clicking
            async with asyncio.timeout(120):
                timer_outcomes = await asyncio.gather(
                    *(outcome("restart-timer", u) for u in timers)
                )
                click_outcomes = await asyncio.gather(
                    *(outcome("restart-event", u) for u in clicks)
                )
            recovered = time.monotonic() - restarted
            assert [o.path for o in timer_outcomes] == [["pause", "welcome"]] * len(timers)
            assert [o.path for o in click_outcomes] == [["wait_click", "thanks"]] * len(clicks)
            for user in timers + clicks:
                deliveries = await asyncio.to_thread(store.deliveries_for_user, user)
                assert [d.status for d in deliveries] == ["sent"], user
            await until(
                lambda: asyncio.to_thread(lambda: store.unrouted_count() == 0), "the outbox"
            )
            log.warning(
                "server restart: %d users waiting, %d events accepted during a %.1f s outage, "
                "every run done %.1f s after the restart",
                2 * PER_GROUP,
                len(during_outage),
                outage,
                recovered,
            )

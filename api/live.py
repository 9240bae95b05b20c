"""Live in-app inboxes: `InboxFeed` tells every open stream about its user's unread messages.

The worker writes in-app deliveries to the store, in another process; the feed finds them by
asking the store, on one schedule for all streams: every `interval` seconds, one query for
every user with an open stream (in chunks of `CHUNK` users), whatever their number of streams.
Each stream gets the latest list of its user's unread messages and sends what it has not sent
yet, so a message is announced within about `interval` of its delivery, and a stream that falls
behind skips stale lists rather than queueing them. The loop runs only while streams are open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool

from journeys.store import DeliveryRecord, Store

log = logging.getLogger(__name__)

INTERVAL = 0.25
"""Seconds between two looks at the store while streams are open."""
CHUNK = 500
"""Users per query."""

Unread = list[DeliveryRecord]


class Subscription:
    """One open stream's view of its user's unread messages."""

    def __init__(self) -> None:
        self._latest: asyncio.Queue[Unread] = asyncio.Queue(maxsize=1)

    def offer(self, unread: Unread) -> None:
        """Keep only the newest list: an older one is stale once a newer one exists."""
        if self._latest.full():
            self._latest.get_nowait()
        self._latest.put_nowait(unread)

    async def next(self, timeout: float) -> Unread | None:
        """The next list of unread messages, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self._latest.get(), timeout)
        except TimeoutError:
            return None


class InboxFeed:
    """Polls the store for the unread in-app messages of every user with an open stream."""

    def __init__(self, store: Store, *, interval: float = INTERVAL) -> None:
        self._store = store
        self._interval = interval
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return sum(len(subscriptions) for subscriptions in self._subscribers.values())

    @asynccontextmanager
    async def subscribe(self, user_id: str) -> AsyncIterator[Subscription]:
        """Follow `user_id`'s unread messages while the block runs."""
        subscription = Subscription()
        self._subscribers[user_id].add(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="journeys-inbox-feed")
        try:
            yield subscription
        finally:
            self._subscribers[user_id].discard(subscription)
            if not self._subscribers[user_id]:
                del self._subscribers[user_id]

    async def close(self) -> None:
        """Stop polling (at the app's shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._subscribers:
            try:
                unread = await run_in_threadpool(self._unread, list(self._subscribers))
            except Exception:
                # Streams stay open and are served again once the store answers.
                log.exception("cannot read unread in-app messages for the live inboxes")
            else:
                for user_id, subscriptions in list(self._subscribers.items()):
                    for subscription in subscriptions:
                        subscription.offer(unread.get(user_id, []))
            await asyncio.sleep(self._interval)

    def _unread(self, user_ids: list[str]) -> dict[str, Unread]:
        by_user: dict[str, Unread] = defaultdict(list)
        for start in range(0, len(user_ids), CHUNK):
            for record in self._store.unread_in_app(user_ids[start : start + CHUNK]):
                by_user[record.user_id].append(record)
        return by_user

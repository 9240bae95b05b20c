"""`BroadcastWorkflow`: one message to every member of a segment, once each.

One run per broadcast (`broadcast:{id}`). It waits for `at` on a durable timer, then reads the
segment's members a page at a time (so membership is taken when sending) and hands them to the
`send_broadcast` activity in steps paced by the broadcast's `rate`: a step of n members takes
n/rate of the window, however fast the activities answer. Members a channel's rate limit holds
back, or whose send failed for now, are tried again after the delay the activity gives; those
put off by their quiet hours are sent in passes over the broadcast's unfinished deliveries, each
pass starting when the earliest of their quiet hours seen so far ends. Each delivery's key is
the broadcast's and the member's, so retries, a worker's crash and continue-as-new (every
`pages_per_run` pages, or sooner once the history is long) never send twice; a send names the
broadcast, whose message the activity reads from the store, to keep the history small.

Progress shows in the run's current details (Temporal UI) and in the store (API). The `cancel`
signal (or cancelling the run) stops further sends: steps under way finish, nothing new starts.
Deterministic: every side effect is an activity.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from journeys.broadcasts import (
        BROADCAST_WORKFLOW_TYPE,
        CANCEL_SIGNAL,
        BroadcastActivity,
        BroadcastCounts,
        BroadcastInput,
        BroadcastOutcome,
        BroadcastStatus,
        CloseInput,
        MembersInput,
        MembersPage,
        OpenInput,
        SendInput,
        SendResult,
        UnfinishedInput,
    )
    from journeys.ratelimits import Rate, parse_rate

SEND_BATCH = 50
"""Members per `send_broadcast` activity; a step's batches run at once."""
SEND_TIMEOUT = timedelta(minutes=5)
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
"""A worker that dies mid-batch is noticed this soon, and its batch goes to another worker;
longer than a provider's own timeout, so one slow send is not taken for a dead worker."""
PAGE_TIMEOUT = timedelta(minutes=10)

Result = TypeVar("Result", bound=BaseModel)


@workflow.defn(name=BROADCAST_WORKFLOW_TYPE)
class BroadcastWorkflow:
    """Sends one broadcast, paced, to every member of its segment."""

    def __init__(self) -> None:
        self._cancelled = False
        self._pages = 0

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self) -> None:
        """Stop sending (what was sent stays sent)."""
        self._cancelled = True

    @workflow.run
    async def run(self, request: BroadcastInput) -> BroadcastOutcome:
        """Send the broadcast, continuing as new every `pages_per_run` pages."""
        self._input = request
        self._broadcast = request.broadcast
        self._state = request.state.model_copy(deep=True)
        rate = self._broadcast.rate
        self._rate: Rate | None = None if rate is None else parse_rate(rate)
        try:
            await self._open()
            await self._send_members()
            await self._send_deferred()
        except asyncio.CancelledError:
            # Cancelled from the Temporal UI or CLI: recorded like the cancel signal.
            self._cancelled = True
            await self._close()
            raise
        return await self._close()

    async def _open(self) -> None:
        if self._state.opened:
            return
        at = self._broadcast.at
        scheduled = at is not None and at > workflow.now()
        await self._call(
            BroadcastActivity.OPEN,
            OpenInput(broadcast=self._broadcast, status="scheduled" if scheduled else "sending"),
        )
        self._state.opened = True
        if at is not None and scheduled:
            self._show(f"scheduled for {at.isoformat()}")
            await self._pause_until(at, "scheduled time")
            if not self._cancelled:
                await self._call(
                    BroadcastActivity.OPEN, OpenInput(broadcast=self._broadcast, status="sending")
                )

    async def _send_members(self) -> None:
        while not self._state.members_done and not self._cancelled:
            self._continue_as_new_if_long()
            page = await self._call(
                BroadcastActivity.MEMBERS,
                MembersInput(
                    broadcast_id=self._broadcast.id,
                    segment=self._broadcast.segment,
                    after=self._state.after,
                    limit=self._input.page_size,
                    targeted=self._state.targeted,
                ),
                MembersPage,
                timeout=PAGE_TIMEOUT,
            )
            self._state.targeted = page.targeted
            self._show()
            await self._send_paced(page.users, members=True)
            self._state.after = page.after
            self._state.members_done = page.done

    async def _send_deferred(self) -> None:
        """Members put off by their quiet hours: a pass over the broadcast's unfinished
        deliveries when the first of them may have it, until none is left. A pass carried
        into a fresh run goes on from where it stopped; the next pass waits for the earliest
        end of quiet hours seen during this one."""
        while not self._cancelled:
            if not self._state.in_pass:
                due = self._state.deferred_until
                if due is None:
                    return
                self._show(f"waiting for quiet hours to end ({due.isoformat()})")
                await self._pause_until(due, "quiet hours")
                if self._cancelled:
                    return
                self._state.deferred_until = None
                self._state.in_pass, self._state.pass_after = True, None
            while self._state.in_pass and not self._cancelled:
                self._continue_as_new_if_long()
                page = await self._call(
                    BroadcastActivity.UNFINISHED,
                    UnfinishedInput(
                        broadcast_id=self._broadcast.id,
                        after=self._state.pass_after,
                        limit=self._input.page_size,
                    ),
                    MembersPage,
                )
                await self._send_paced(page.users)
                self._state.pass_after = page.after
                self._state.in_pass = not page.done

    async def _send_paced(self, users: list[str], *, members: bool = False) -> None:
        """Send to `users` in steps of at most the rate's count, each step taking its share
        of the rate's window. A slow pace makes many steps of a page: once the history is
        long, the page (of `members`, or of the unfinished pass) goes on in a fresh run from
        the last member sent."""
        step = len(users) if self._rate is None else min(self._rate.count, self._input.page_size)
        for start in range(0, len(users), max(step, 1)):
            if self._cancelled:
                return
            began = workflow.now()
            chunk = users[start : start + step]
            await self._send(chunk)
            self._show()
            if self._rate is not None:
                share = self._rate.window * len(chunk) / self._rate.count
                await self._pause_until(began + share, f"rate {self._rate.label}")
            left = len(users) - start - len(chunk)
            if left and self._history_is_long() and not self._cancelled:
                # The page is read again from the last member sent: its rest is not yet taken.
                if members:
                    self._state.after = chunk[-1]
                    self._state.targeted -= left
                else:
                    self._state.pass_after = chunk[-1]
                self._pages = self._input.pages_per_run
                self._continue_as_new_if_long()

    async def _send(self, users: list[str]) -> None:
        """Send to `users` (batches at once), then again to those answered `again`."""
        failures: dict[str, int] = {}
        while users and not self._cancelled:
            batches = [users[i : i + SEND_BATCH] for i in range(0, len(users), SEND_BATCH)]
            results = await asyncio.gather(
                *(
                    self._call(
                        BroadcastActivity.SEND,
                        SendInput(
                            broadcast_id=self._broadcast.id,
                            users=batch,
                            failures={u: failures[u] for u in batch if u in failures},
                            now=workflow.now(),
                        ),
                        SendResult,
                        timeout=SEND_TIMEOUT,
                        summary=f"{self._broadcast.message.channel} · {len(batch)} members",
                    )
                    for batch in batches
                )
            )
            users, delays = [], []
            for result in results:
                self._state.counts = self._state.counts.add(result.counts)
                self._cancelled = self._cancelled or result.cancelled
                users += result.again
                for user_id in result.failing:
                    failures[user_id] = failures.get(user_id, 0) + 1
                if result.retry_after is not None:
                    delays.append(result.retry_after)
                due = result.deferred_until
                if due is not None and (
                    self._state.deferred_until is None or due < self._state.deferred_until
                ):
                    self._state.deferred_until = due
            if users:
                self._show(f"{len(users)} members held back")
                await self._pause_until(workflow.now() + min(delays), "held back")

    async def _pause_until(self, until: datetime, why: str) -> None:
        """Wait until `until`, or until the broadcast is cancelled."""
        left = until - workflow.now()
        if left <= timedelta(0) or self._cancelled:
            return
        with contextlib.suppress(TimeoutError):  # the time came
            await workflow.wait_condition(
                lambda: self._cancelled, timeout=left, timeout_summary=why
            )

    async def _close(self) -> BroadcastOutcome:
        status: BroadcastStatus = "cancelled" if self._cancelled else "completed"
        await self._call(
            BroadcastActivity.CLOSE,
            CloseInput(
                broadcast_id=self._broadcast.id, status=status, targeted=self._state.targeted
            ),
            timeout=PAGE_TIMEOUT,
        )
        self._show(status)
        return BroadcastOutcome(
            status=status, targeted=self._state.targeted, counts=self._state.counts
        )

    def _continue_as_new_if_long(self) -> None:
        """After `pages_per_run` pages, or once the history is long (in events or in bytes,
        as the server suggests), hand the state to a fresh run (a short history)."""
        # A page at least per run, however long the history: each run makes progress.
        if self._pages >= self._input.pages_per_run or (self._pages and self._history_is_long()):
            workflow.continue_as_new(self._input.model_copy(update={"state": self._state}))
        self._pages += 1

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() >= self._input.history_limit
            or info.is_continue_as_new_suggested()
        )

    def _show(self, note: str | None = None) -> None:
        """The run's current details: the progress, and what it waits for."""
        counts: BroadcastCounts = self._state.counts
        rate = f" at {self._rate.label}" if self._rate is not None else ""
        text = (
            f"segment {self._broadcast.segment}{rate}: {self._state.targeted} members taken · "
            f"{counts.sent} sent · {counts.skipped} skipped · {counts.failed} failed"
        )
        workflow.set_current_details(text if note is None else f"{text}\n{note}")

    async def _call(
        self,
        name: str,
        argument: BaseModel,
        result_type: type[Result] | None = None,
        *,
        timeout: timedelta = timedelta(minutes=1),
        summary: str | None = None,
    ) -> Any:
        return await workflow.execute_activity(
            name,
            argument,
            result_type=result_type if result_type is not None else type(None),
            start_to_close_timeout=timeout,
            heartbeat_timeout=HEARTBEAT_TIMEOUT if timeout > timedelta(minutes=1) else None,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=summary,
        )

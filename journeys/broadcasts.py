"""Broadcasts: one message to every member of a segment, sent once per member by a durable
`BroadcastWorkflow` (one per broadcast), paced by its own `rate` and the channels' rate limits.

A broadcast's deliveries go through the very delivery path of journey messages (caps,
unsubscribes, tracking, holdouts, rate limits); they are recorded with `journey_id`
`broadcast:{id}` and `node_id` `message`, so no journey's stats ever count them while the
users pages, the inbox and engagement see them like any other delivery. Pure data and names,
importable from deterministic workflow code.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field

from journeys.model import SLUG_PATTERN, MessageFields, QuietHours, Strict
from journeys.ratelimits import RateText

BROADCAST_WORKFLOW_TYPE = "BroadcastWorkflow"
CANCEL_SIGNAL = "cancel"
BROADCAST_NODE = "message"
"""The `node_id` of every broadcast delivery (a broadcast has one message)."""
PAGE_SIZE = 500
"""Members taken from the segment per page (and per activity at most)."""
PAGES_PER_RUN = 20
"""Pages one run sends before it continues as new, so a broadcast to 100k members keeps a
short history."""

HISTORY_LIMIT = 10_000
"""Events after which a run sending a page at a slow pace (a step and a timer per few members)
continues as new in the middle of the page."""

BroadcastStatus = Literal["scheduled", "sending", "completed", "cancelled"]
FINAL_STATUSES: tuple[BroadcastStatus, ...] = ("completed", "cancelled")


def broadcast_workflow_id(broadcast_id: str) -> str:
    """The id of the broadcast's workflow; also the `journey_id` of its deliveries."""
    return f"broadcast:{broadcast_id}"


def broadcast_of(journey_id: str) -> str | None:
    """The broadcast a delivery's `journey_id` names (`broadcast:{id}`), or None for a
    journey's (a journey's id is a slug, so it never holds the ':')."""
    prefix = broadcast_workflow_id("")
    return journey_id.removeprefix(prefix) if journey_id.startswith(prefix) else None


def broadcast_delivery_key(broadcast_id: str, user_id: str) -> str:
    """The idempotency key of the broadcast's one message to the user."""
    return f"{broadcast_workflow_id(broadcast_id)}:{user_id}"


class Broadcast(Strict):
    """A broadcast as asked for (`POST /v1/broadcasts`): also its workflow's input."""

    id: Annotated[str, Field(pattern=SLUG_PATTERN, description="a slug, never used before")]
    segment: Annotated[str, Field(pattern=SLUG_PATTERN, description="the segment's id")]
    message: MessageFields
    at: AwareDatetime | None = Field(
        default=None, description="when to send (ISO time with offset); null: at once"
    )
    rate: RateText | None = Field(
        default=None, description='the most messages sent per window ("200/s"); null: no limit'
    )
    quiet_hours: QuietHours | None = Field(
        default=None,
        description=(
            "members' local quiet hours: `delay` sends to a member when theirs end (the others "
            "go on meanwhile), `skip` records the message skipped (reason `quiet hours`)"
        ),
    )


class BroadcastCounts(BaseModel):
    """The broadcast's outcomes so far, as its workflow counted them."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, other: BroadcastCounts) -> BroadcastCounts:
        """These counts and `other`'s."""
        return BroadcastCounts(
            sent=self.sent + other.sent,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
        )


class BroadcastState(BaseModel):
    """A broadcast's progress, carried across continue-as-new."""

    opened: bool = False
    after: str | None = Field(default=None, description="the last user id of the segment read")
    members_done: bool = False
    targeted: int = 0
    counts: BroadcastCounts = Field(default_factory=BroadcastCounts)
    deferred_until: AwareDatetime | None = Field(
        default=None, description="when the first member deferred by quiet hours may have it"
    )
    in_pass: bool = Field(
        default=False, description="a pass over the unfinished deliveries is under way"
    )
    pass_after: str | None = Field(
        default=None, description="the last user id that pass read: a fresh run goes on there"
    )


class BroadcastInput(BaseModel):
    """Input of `BroadcastWorkflow`."""

    broadcast: Broadcast
    state: BroadcastState = Field(default_factory=BroadcastState)
    page_size: int = Field(default=PAGE_SIZE, ge=1, le=PAGE_SIZE)
    pages_per_run: int = Field(default=PAGES_PER_RUN, ge=1)
    history_limit: int = Field(
        default=HISTORY_LIMIT, ge=1, description="history length that makes a run go on anew"
    )


class BroadcastOutcome(BaseModel):
    """How a broadcast ended."""

    status: BroadcastStatus
    targeted: int
    counts: BroadcastCounts


# --- activities -------------------------------------------------------------------------------


class BroadcastActivity(StrEnum):
    """Names of the broadcast activities (implemented in `activities/broadcasts.py`)."""

    OPEN = "open_broadcast"
    MEMBERS = "broadcast_members"
    UNFINISHED = "broadcast_unfinished"
    SEND = "send_broadcast"
    CLOSE = "close_broadcast"


class OpenInput(BaseModel):
    """Record the broadcast (unless the API did) in `status`."""

    broadcast: Broadcast
    status: BroadcastStatus


class MembersInput(BaseModel):
    """The next page of the segment's members now, after user id `after`; `targeted` is how
    many the pages before it held (recorded with this page's, for the API to show)."""

    broadcast_id: str
    segment: str
    after: str | None = None
    limit: int = PAGE_SIZE
    targeted: int = 0


class UnfinishedInput(BaseModel):
    """The next page of members whose message is still unfinished (deferred by quiet hours,
    or interrupted), after user id `after`."""

    broadcast_id: str
    after: str | None = None
    limit: int = PAGE_SIZE


class MembersPage(BaseModel):
    """A page of users, by user id; `after` is where the next page starts, `done` says there
    is none."""

    users: list[str]
    after: str | None
    done: bool
    targeted: int = 0


class SendInput(BaseModel):
    """Deliver the broadcast's message to these members (each at most once, whatever the
    attempt); `failures` counts, per member, the sends that failed for now so far. The
    broadcast is named, not carried: its stored definition (content and all) is read by the
    activity, so each scheduled send adds little to the workflow's history."""

    broadcast_id: str
    users: list[str]
    failures: dict[str, int] = Field(default_factory=dict)
    now: AwareDatetime = Field(
        description="the workflow's time: quiet hours are judged by the clock of its timers"
    )


class SendResult(BaseModel):
    """What a send did: outcomes counted, members to try again (held back by a rate limit,
    or a failure for now) after `retry_after`, and when the first member deferred by quiet
    hours may have it."""

    counts: BroadcastCounts = Field(default_factory=BroadcastCounts)
    again: list[str] = Field(default_factory=list)
    failing: list[str] = Field(
        default_factory=list, description="those of `again` whose send failed for now"
    )
    retry_after: timedelta | None = None
    deferred_until: datetime | None = None
    cancelled: bool = False


class CloseInput(BaseModel):
    """The broadcast ended: its final status and how many members it targeted."""

    broadcast_id: str
    status: BroadcastStatus
    targeted: int

"""The rate limiter: at most `Rate.count` sends in any `Rate.window` on one bucket (a channel),
however many workers send, decided inside the caller's write transaction.

A send takes its slot right before it calls the provider (`take_slot`) and gives it back once
the provider answered (`finish_slot`). A slot counts from its grant until a window after it
finished, so whatever instant a provider saw a request at (between the two), no window of
`window` at the provider holds more than `count` of them: of the requests in any such window,
the last one granted found all the others still counting.

A refused send is told when to come back, and that time is reserved for it: the refused queue
up `Rate.spacing` apart after the next slot opens, and while someone holds a reservation in the
future, newcomers queue behind it even when a slot is free. So a crowd waits in turn rather
than racing for every freed slot, and nobody waits for ever behind later arrivals. A
reservation whose holder never came back (its run ended) just lapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, or_
from sqlmodel import Session, col, select

from journeys.ratelimits import Rate
from journeys.store.records import RateGrantRecord, utcnow

SEND_LIMIT = timedelta(minutes=2)
"""A granted send that never finished (its worker died mid-call) stops counting this long after
a window past its grant: no provider call lasts that long."""
SHORTEST_WAIT = timedelta(milliseconds=10)
"""A refused send comes back this much later at the soonest, so a caller never spins."""
_RATE_LOCKS = int.from_bytes(b"rate")
"""PostgreSQL advisory locks (this number, hash of a bucket) serialise a bucket's slots."""


@dataclass(frozen=True)
class Slot:
    """A send's answer: go now (`granted`), or come back at `retry_at`."""

    granted: bool
    retry_at: datetime | None = None


def take_slot(
    session: Session, bucket: str, key: str, rate: Rate, now: datetime | None = None
) -> Slot:
    """Grant `key` a send on `bucket` now if the rate allows it and its turn has come; else
    reserve it a time to come back (the one it holds, if any). In the caller's transaction.

    `now` is the clock's once the bucket is locked (a grant is stamped when it is made, not
    when its caller began to queue for the lock), unless given."""
    if session.get_bind().dialect.name == "postgresql":
        # SQLite's write lock already serialises every write transaction.
        session.exec(select(func.pg_advisory_xact_lock(_RATE_LOCKS, func.hashtext(bucket)))).one()
    now = now or utcnow()
    _forget_old(session, bucket, rate, now)
    reservation = session.exec(
        select(RateGrantRecord)
        .where(
            RateGrantRecord.bucket == bucket,
            RateGrantRecord.key == key,
            col(RateGrantRecord.granted_at).is_(None),
        )
        .order_by(col(RateGrantRecord.id).desc())
    ).first()
    counting, queue_end = _counting_and_queue_end(session, bucket, rate, now)
    # A send with a reservation waits for its own time; a newcomer for the end of the queue.
    turn = reservation.reserved_for if reservation is not None else queue_end
    my_turn = turn is None or turn <= now
    if my_turn and counting < rate.count:
        grant = reservation or RateGrantRecord(bucket=bucket, key=key)
        grant.granted_at = now
        session.add(grant)
        return Slot(granted=True)
    if reservation is not None and not my_turn:
        return Slot(granted=False, retry_at=turn)
    retry_at = now + SHORTEST_WAIT
    if counting >= rate.count:
        retry_at = max(retry_at, _next_opening(session, bucket, rate, now, counting))
    if reservation is None and queue_end is not None:
        retry_at = max(retry_at, queue_end + rate.spacing)
    # A due reservation refused (the window still full) keeps its place at the head.
    held = reservation or RateGrantRecord(bucket=bucket, key=key)
    held.reserved_for = retry_at
    session.add(held)
    return Slot(granted=False, retry_at=retry_at)


def finish_slot(session: Session, bucket: str, key: str, now: datetime) -> None:
    """The provider answered `key` (or it will not be sent): its grant counts on for a window
    from now, and a reservation it held is dropped. In the caller's transaction."""
    rows = session.exec(
        select(RateGrantRecord).where(
            RateGrantRecord.bucket == bucket,
            RateGrantRecord.key == key,
            col(RateGrantRecord.finished_at).is_(None),
        )
    )
    for row in rows:
        if row.granted_at is None:
            session.delete(row)
        else:
            row.finished_at = now
            session.add(row)


def _counting_and_queue_end(
    session: Session, bucket: str, rate: Rate, now: datetime
) -> tuple[int, datetime | None]:
    """How many grants count against the rate now (unfinished ones, and those finished within
    the last window), and the latest time reserved for a send that waits, if any."""
    counts = or_(
        col(RateGrantRecord.finished_at) > now - rate.window,
        col(RateGrantRecord.finished_at).is_(None)
        & (col(RateGrantRecord.granted_at) >= now - rate.window - SEND_LIMIT),
    )
    waits = col(RateGrantRecord.granted_at).is_(None)
    statement = select(
        func.count(case((col(RateGrantRecord.granted_at).is_not(None) & counts, 1))),
        func.max(case((waits, RateGrantRecord.reserved_for))),
    ).where(RateGrantRecord.bucket == bucket)
    counting, queue_end = session.exec(statement).one()
    return counting, queue_end


def _next_opening(
    session: Session, bucket: str, rate: Rate, now: datetime, counting: int
) -> datetime:
    """When enough counting grants expire for one more to fit: the finished ones a window
    after they finished; the unfinished ones are taken to finish now (they rarely take long)."""
    expiring = counting - rate.count  # how many must expire before the one that opens the slot
    statement = (
        select(RateGrantRecord.finished_at)
        .where(
            RateGrantRecord.bucket == bucket,
            col(RateGrantRecord.finished_at) > now - rate.window,
        )
        .order_by(col(RateGrantRecord.finished_at))
        .offset(expiring)
        .limit(1)
    )
    finished = session.exec(statement).first()
    return (now if finished is None else finished) + rate.window


def _forget_old(session: Session, bucket: str, rate: Rate, now: datetime) -> None:
    """Delete what can no longer count nor hold a place: grants and reservations a window and
    `SEND_LIMIT` old."""
    older = now - rate.window - SEND_LIMIT
    statement = delete(RateGrantRecord).where(
        col(RateGrantRecord.bucket) == bucket,
        or_(
            col(RateGrantRecord.finished_at) < older,
            col(RateGrantRecord.finished_at).is_(None) & (col(RateGrantRecord.granted_at) < older),
            col(RateGrantRecord.granted_at).is_(None) & (col(RateGrantRecord.reserved_for) < older),
        ),
    )
    session.exec(statement)

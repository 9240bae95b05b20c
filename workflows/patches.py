"""The interpreter's revisions and patches, and the behaviour of the runs that started before each.

A run replays its history on whichever worker picks it up, so for as long as it lives the
interpreter must issue the commands its history recorded. A run's `RunStyle` is chosen once,
first thing in the run, and `workflows.journey` never asks anything else of a version.

Runs started today carry the interpreter's `REVISION` in their input (`JourneyInput.revision`,
set by `start_journey` and kept across continue-as-new): the input pins their behaviour, so they
record no patch marker, and the SDK upserts no `TemporalChangeVersion` for them (a marker event
and a visibility write on the server for every run they would cost). A change to the commands
today's runs issue raises `REVISION`, and the style of the revision before it stays here for
the runs pinned to it. A worker that meets a revision newer than its own fails
the workflow task instead of guessing, so during a rolling upgrade such runs wait for a new
worker (Temporal retries the task) and never run on old code.

Runs started before revisions carry none, and their patch markers tell how they behave. Every
patch id is here, with the branch it replaced:

- revision 1 (`REVISION`): `Revision1`: `LocalCalls` with every patch below taken; a delivery
  whose local attempt failed publishes where the run is before it is tried again as a normal
  activity, so the store and `JourneyNode` show a run held up by its provider.
- `local-calls` (`LOCAL_CALLS_PATCH`): `LocalCalls`; runs started before it are `LeanSteps` or
  older, as `lean-steps` says.
- `lean-steps` (`LEAN_STEPS_PATCH`): `LeanSteps`; runs started before it are `PreLeanSteps`.
- `experiment-winner` (`EXPERIMENT_WINNER_PATCH`): `RunStyle.asks_for_winner`, asked at each
  experiment node with a `winner` rule, as it always was.
- `machine-engagement` (`MACHINE_ENGAGEMENT_PATCH`): `RunStyle.ignores_machine_engagement`,
  asked only of events marked `machine: true`.

Retiring a patch (docs/operations.md, "Retire old patches"), in two releases: once no run needs
its old branch, delete that branch and the histories that replayed it, and call
`workflow.deprecate_patch` where `workflow.patched` was; once no run predates that release,
delete the call too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from journeys.contracts import (
        JOURNEY_ID,
        JOURNEY_NODE,
        JOURNEY_VERSION,
        USER_ID,
        Activity,
        DeliverInput,
        DeliveryOutcome,
        EnrollInput,
        ProgressInput,
        StepsInput,
    )

STORE_TIMEOUT = timedelta(seconds=30)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
DELIVERY_TIMEOUT = timedelta(seconds=60)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
)
DELIVERY_ONCE = RetryPolicy(maximum_attempts=1)
"""A local delivery's one attempt: any retry is a normal activity's."""
LOCAL_START_TIMEOUT = timedelta(seconds=2)
"""How long a local delivery may wait for a free slot in the worker before it goes through the
task queue instead: a busy worker must not hold workflow tasks open towards their timeout."""
DELIVERY_RETRY_AFTER_LOCAL = dataclasses.replace(
    DELIVERY_RETRY, maximum_attempts=DELIVERY_RETRY.maximum_attempts - 1
)
"""The normal activity after a local attempt failed: as many attempts in all as before."""

REVISION = 1
"""The revision runs start on today (see the module's docstring)."""

LOCAL_CALLS_PATCH = "local-calls"
"""Runs that recorded this marker (at their start) are `LocalCalls`; the others are older styles
(`LEAN_STEPS_PATCH` tells which). Retire it once no running run lacks it."""

LEAN_STEPS_PATCH = "lean-steps"
"""Runs without `local-calls` that recorded this marker (at their start) are `LeanSteps`; the
others `PreLeanSteps`. Retire it once no running run is `PreLeanSteps`."""
EXPERIMENT_WINNER_PATCH = "experiment-winner"
"""Runs that recorded this marker ask for an experiment's winner before splitting; the others
split by hash alone. Retire it once no running run reached an experiment node without it."""

MACHINE_ENGAGEMENT_PATCH = "machine-engagement"
"""Runs that recorded this marker let no event marked `machine: true` (a link scanner's click, a
mail proxy's open) match a wait, an exit rule or the goal; an older worker took such an event
like any other (only during the upgrade that brought machine marks could it have seen one).
Retire it once no running run started before that release."""

Result = TypeVar("Result")


Where = Callable[[], str | None]
"""Where the run is now: the node it reached (`JourneyState.current_node`), None once it ended."""


class UnknownRevision(Exception):
    """A run pinned to a revision newer than this worker's. Not a Temporal failure, so it fails
    the workflow task (retried, until a worker that knows the revision takes it), never the
    run."""


def choose_run_style(where: Where, revision: int | None) -> RunStyle:
    """The style of this run, pinned to `revision` (None: a run started before revisions);
    `where()` says where it is (at first, a node carried over by continue-as-new).

    Call it first thing in the run: that is where runs started before revisions recorded the
    `local-calls` marker (and runs before it the `lean-steps` one), and where replay looks for
    them. Such a run records one marker: none ever asks for `lean-steps` after `local-calls`.
    """
    if revision is not None:
        if revision > REVISION:
            raise UnknownRevision(
                f"this run started on interpreter revision {revision}, newer than this "
                f"worker's {REVISION}: it waits for an upgraded worker"
            )
        return Revision1(where)
    if workflow.patched(LOCAL_CALLS_PATCH):
        return LocalCalls(where)
    if workflow.patched(LEAN_STEPS_PATCH):
        return LeanSteps(where)
    return PreLeanSteps()


class RunStyle(ABC):
    """How a run records where it is and sleeps, fixed by the patches its history holds."""

    async def _record(self, activity: Activity, argument: BaseModel) -> None:
        """Record progress in the store with a local activity (no task-queue round trip)."""
        await workflow.execute_local_activity(
            activity,
            argument,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )

    @abstractmethod
    async def enroll(self, enrollment: EnrollInput) -> None:
        """A new run (not one continued as new): its search attributes and its enrollment."""

    @abstractmethod
    async def step(self, step: ProgressInput) -> None:
        """A step of the run for the store (reaching a node, or the end, moves `JourneyNode`)."""

    @abstractmethod
    async def publish(self) -> None:
        """Bring the store and `JourneyNode` up to date (before continuing as new, at the end)."""

    @abstractmethod
    def refreshes_traits(self, needed: bool) -> bool:
        """Whether a message loads the user's traits first, `needed` saying whether something
        there reads them (quiet hours in the user's zone, a `when` exit rule)."""

    @abstractmethod
    async def sleep(
        self, until: Callable[[], datetime], woken: Callable[[], bool], summary: str
    ) -> bool:
        """Sleep until `woken()` (True) or the deadline `until()` passes (False), on a timer the
        Temporal UI shows as `summary`. Called again in the same wait once the run has looked
        at what woke it; `until()` may have moved meanwhile."""

    @abstractmethod
    def cancel_timer(self) -> None:
        """The wait is over: cancel a timer `sleep` left running, if any."""

    calls_locally = False
    """Whether store activities run as local activities."""

    async def call(self, activity: Activity, argument: BaseModel, result: type[Result]) -> Result:
        """Run a store activity (short, idempotent, retried until the store answers)."""
        run = workflow.execute_local_activity if self.calls_locally else workflow.execute_activity
        value: Result = await run(
            activity,
            argument,
            result_type=result,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        return value

    async def deliver(
        self, request: DeliverInput, summary: str, then: ProgressInput | None
    ) -> DeliveryOutcome:
        """Deliver a message (the Temporal UI shows the activity as `summary`); raises
        `DeliveryFailed` once it failed for good, answers "waiting" while a rate limit holds
        it back. `then` is the step the run takes next if the
        delivery goes through (reaching the next node, or its end), which it will also pass to
        `step` at once."""
        return await _deliver(request, summary, DELIVERY_RETRY)

    pinned = False
    """Whether the run's revision (its input) says how it behaves, rather than its markers."""

    def asks_for_winner(self) -> bool:
        """Whether the run asks for an experiment's winner before splitting.

        Asked at the experiment node only: moving it would move its marker in new histories,
        and runs that reached an experiment before the patch must keep splitting by hash.
        """
        return self.pinned or workflow.patched(EXPERIMENT_WINNER_PATCH)

    def ignores_machine_engagement(self) -> bool:
        """Whether an event marked `machine: true` matches nothing (asked of such events only,
        so histories without one never record the marker)."""
        return self.pinned or workflow.patched(MACHINE_ENGAGEMENT_PATCH)


def _moves(step: ProgressInput) -> bool:
    """Whether a step changes where the run is: it reached a node, or ended (at none)."""
    return step.node_id is not None or step.ended is not None


def _journey_node(node: str | None) -> SearchAttributeUpdate[str]:
    return JOURNEY_NODE.value_unset() if node is None else JOURNEY_NODE.value_set(node)


def _identity(
    enrollment: EnrollInput,
) -> list[SearchAttributeUpdate[str] | SearchAttributeUpdate[int]]:
    return [
        JOURNEY_ID.value_set(enrollment.journey_id),
        JOURNEY_VERSION.value_set(enrollment.version),
        USER_ID.value_set(enrollment.user_id),
    ]


def _woken_or_done(woken: Callable[[], bool], timer: asyncio.Task[None]) -> bool:
    """A wait's condition: something woke it, or its timer fired."""
    return woken() or timer.done()


class DeliveryFailed(Exception):
    """A delivery failed for good: a permanent failure, or every attempt failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _deliver(request: DeliverInput, summary: str, retry: RetryPolicy) -> DeliveryOutcome:
    """The delivery as a normal activity, through the task queue."""
    try:
        outcome = await _delivery(request, summary, retry, local=False)
    except ActivityError as error:
        raise DeliveryFailed(_reason(error)) from None
    return outcome


async def _delivery(
    request: DeliverInput, summary: str, retry: RetryPolicy, *, local: bool
) -> DeliveryOutcome:
    """The `deliver` activity, local (waiting `LOCAL_START_TIMEOUT` at most to start) or not."""
    run = workflow.execute_local_activity if local else workflow.execute_activity
    outcome: DeliveryOutcome = await run(
        Activity.DELIVER,
        request,
        result_type=DeliveryOutcome,
        schedule_to_start_timeout=LOCAL_START_TIMEOUT if local else None,
        start_to_close_timeout=DELIVERY_TIMEOUT,
        retry_policy=retry,
        summary=summary,
    )
    return outcome


def _cause(failure: FailureError) -> BaseException | None:
    """What failed: a normal activity's failure wraps it; a local activity's is it."""
    return failure.cause if isinstance(failure, ActivityError) else failure


def _reason(failure: FailureError) -> str:
    cause = _cause(failure)
    return cause.message if isinstance(cause, ApplicationError) else str(failure)


def _retry_delay(failure: FailureError) -> timedelta | None:
    """How long a failed delivery must wait before it is tried again: None when it must not be
    (a permanent failure), else what the provider asked for (zero when it said nothing)."""
    cause = _cause(failure)
    if not isinstance(cause, ApplicationError):
        return timedelta(0)  # a timeout, or the worker's own failure
    if cause.non_retryable:
        return None
    return cause.next_retry_delay or timedelta(0)


class _Timer(NamedTuple):
    task: asyncio.Task[None]
    until: datetime


class LeanSteps(RunStyle):
    """Today's runs (`lean-steps` recorded at their start) skip commands nothing needed:

    - they publish where they are (`JourneyNode`, and their enrollment and steps in the store,
      in one local activity) only when they stop to wait and when they end, not at every node:
      nodes passed on the way are recorded then, each with when it was reached (and a run
      started at its start node, as `start_journey` sets it, need not set it again);
    - they do not upsert the search attributes their start already set;
    - they load the user's traits before a message only when something there needs them (the
      delivery activity reads the traits itself);
    - a wait keeps one timer, not a new one for every event it receives (armed again only when
      it fires before a deadline that moved on).
    """

    def __init__(self, where: Where) -> None:
        self._where = where
        self._published_node = where()  # a run published before it continued as new
        self._enrollment: EnrollInput | None = None
        self._steps: list[ProgressInput] = []
        self._timer: _Timer | None = None

    async def enroll(self, enrollment: EnrollInput) -> None:
        """Queue the enrollment; set the search attributes unless the start set them."""
        started_with = workflow.info().typed_search_attributes
        self._published_node = started_with.get(JOURNEY_NODE)
        if started_with.get(JOURNEY_ID) is None:
            workflow.upsert_search_attributes(_identity(enrollment))
        self._enrollment = enrollment

    async def step(self, step: ProgressInput) -> None:
        """Queue the step until the run publishes."""
        self._steps.append(step)

    def _unpublished(self) -> bool:
        return (
            self._enrollment is not None
            or bool(self._steps)
            or self._published_node != self._where()
        )

    async def publish(self) -> None:
        """Set `JourneyNode` and record the enrollment and the queued steps, if they lag."""
        where = self._where()
        if self._published_node != where:
            workflow.upsert_search_attributes([_journey_node(where)])
            self._published_node = where
        unrecorded = self._unrecorded()
        if unrecorded is not None:
            await self._record(Activity.RECORD_STEPS, unrecorded)
            self._recorded(unrecorded)

    def _unrecorded(self) -> StepsInput | None:
        """The enrollment (if not recorded yet) and the queued steps; None when there are none."""
        if self._enrollment is None and not self._steps:
            return None
        return StepsInput(enrollment=self._enrollment, steps=list(self._steps))

    def _recorded(self, recorded: StepsInput) -> None:
        # Dropped only once recorded: a run cancelled meanwhile records them as it ends.
        self._enrollment = None
        del self._steps[: len(recorded.steps)]

    def refreshes_traits(self, needed: bool) -> bool:
        """Only when something reads them."""
        return needed

    async def sleep(
        self, until: Callable[[], datetime], woken: Callable[[], bool], summary: str
    ) -> bool:
        """Publish first, then sleep on the wait's one timer."""
        while True:
            deadline = until()
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return False
            if not woken() and self._unpublished():
                await self.publish()
                continue  # time passed, and events may have come, while it recorded
            # One timer for the wait, not one per event: a deadline that moved later
            # (inactivity) keeps the running timer, which is armed again when it fires.
            timer = self._timer
            if timer is None or timer.task.done() or timer.until > deadline:
                self.cancel_timer()
                sleeping = workflow.sleep(remaining, summary=summary)
                timer = self._timer = _Timer(asyncio.create_task(sleeping), deadline)
            await workflow.wait_condition(partial(_woken_or_done, woken, timer.task))
            if woken():
                return True
            # The timer fired: the deadline has passed, or moved on and needs a new timer.

    def cancel_timer(self) -> None:
        """Cancel the wait's timer."""
        if self._timer is not None:
            self._timer.task.cancel()
            self._timer = None


class LocalCalls(LeanSteps):
    """Today's runs (`local-calls` recorded at their start): `LeanSteps`, and their activities
    run inside the workflow task rather than through the task queue, sparing a round trip, an
    activity task and a workflow task each:

    - store calls (loading the user, updating traits, an experiment's winner...) are local
      activities, with the same timeout and retries;
    - a delivery is first one local attempt, which also records the run's queued steps (and
      its enrollment) once the message went, and the step the run takes right after: reaching
      the next node, or its end after the last one. So a run that sends before it waits has
      nothing left to record there. (Only an operator's cancellation landing between the
      delivery and that step keeps the run from taking it; the store has it all the same,
      and of two ends keeps the first.) When that attempt fails other than for good, or
      cannot start within `LOCAL_START_TIMEOUT` (a saturated worker), the delivery goes on as
      a normal activity with the retries left (after the wait the provider asked for). The
      idempotency key is the same throughout, so nothing is sent twice.
    """

    calls_locally = True

    def __init__(self, where: Where) -> None:
        super().__init__(where)
        self._recorded_then: ProgressInput | None = None

    async def step(self, step: ProgressInput) -> None:
        """Queue the step until the run publishes, unless the delivery just before recorded it
        (as its `then`, stamped when the delivery was scheduled, a moment earlier)."""
        recorded, self._recorded_then = self._recorded_then, None
        if recorded is None or step.model_copy(update={"at": recorded.at}) != recorded:
            await super().step(step)

    async def deliver(
        self, request: DeliverInput, summary: str, then: ProgressInput | None
    ) -> DeliveryOutcome:
        """One local attempt carrying the queued steps and `then`, then normal activities if
        need be."""
        unrecorded = self._unrecorded()
        carrying = request.model_copy(update={"steps": unrecorded, "then": then})
        try:
            outcome = await _delivery(carrying, summary, DELIVERY_ONCE, local=True)
        except FailureError as failure:
            if isinstance(_cause(failure), CancelledError):
                raise
            delay = _retry_delay(failure)
            if delay is None:
                raise DeliveryFailed(_reason(failure)) from None
            await self._held_up()
            if delay > timedelta(0):
                await workflow.sleep(delay, summary=f"{summary}: retry after {delay}")
            # The steps are recorded again at the next publish whatever happens here (a
            # second record of the same changes nothing).
            return await _deliver(request, summary, DELIVERY_RETRY_AFTER_LOCAL)
        if outcome.status == "waiting":
            return outcome  # held back by a rate limit: it recorded nothing
        if unrecorded is not None:
            self._recorded(unrecorded)
        self._recorded_then = then
        return outcome

    async def _held_up(self) -> None:
        """The local attempt failed and the delivery is tried again: nothing more, as runs of
        this style did."""


class Revision1(LocalCalls):
    """Runs started on revision 1: `LocalCalls`, with every patch taken (the input says so, no
    marker does), and publishing before a delivery is tried again: without it, a run whose
    provider is down for hours stays unrecorded (not entered in the journey's stats, invisible
    to its router's admission window) until the message finally goes."""

    pinned = True

    async def _held_up(self) -> None:
        """Publish where the run is: its enrollment and steps, and `JourneyNode` at the
        message."""
        await self.publish()


class PreLeanSteps(RunStyle):
    """Runs started before `lean-steps`: every node upserts `JourneyNode` and records its step
    at once (a local activity each, the enrollment too); every message loads the user's traits
    first; a wait's timer is its condition's timeout, a new one each time an event wakes it.

    Delete this class with `LEAN_STEPS_PATCH`, once no running run is one of these.
    """

    async def enroll(self, enrollment: EnrollInput) -> None:
        """Set the search attributes and record the enrollment at once."""
        workflow.upsert_search_attributes(_identity(enrollment))
        await self._record(Activity.ENROLL, enrollment)

    async def step(self, step: ProgressInput) -> None:
        """Move `JourneyNode` and record the step at once."""
        if _moves(step):
            workflow.upsert_search_attributes([_journey_node(step.node_id)])
        await self._record(Activity.RECORD_PROGRESS, step)

    async def publish(self) -> None:
        """Nothing lags: every step was published as it happened."""

    def refreshes_traits(self, needed: bool) -> bool:
        """Always."""
        return True

    async def sleep(
        self, until: Callable[[], datetime], woken: Callable[[], bool], summary: str
    ) -> bool:
        """Wait for the condition, the deadline its timeout."""
        remaining = until() - workflow.now()
        if remaining <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(woken, timeout=remaining, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    def cancel_timer(self) -> None:
        """Nothing left: `wait_condition` cancels its own timeout."""

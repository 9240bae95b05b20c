"""`JourneyWorkflow`: the interpreter that walks one user through one published journey.

One run per user per journey (`journey:{journey_id}:{user_id}`). The definition snapshot is
input, so publishing a new version never changes a run already under way. Events arrive by the
`event` signal; the handler only deduplicates and queues them, and the main coroutine observes
them (goal, exit rules, trait changes) at every node and inside every wait, so an exit rule
ends a wait or a delay at once. The run remembers its sent deliveries and how far the user
engaged with each (from the engagement events it hears), for `of` paths and `message`
conditions. A journey with an entry limit asks for the run's place before it enters; a user
in the journey's holdout gets its non-transactional messages skipped (reason `holdout`). Every
side effect is an activity; this module is deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, assert_never
from zoneinfo import ZoneInfo

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from journeys.conditions import carries, evaluate, fact_key, facts_needed
    from journeys.contracts import (
        ENTRY_LIMIT,
        EVENT_SIGNAL,
        LEAVE_SIGNAL,
        STATE_QUERY,
        WORKFLOW_TYPE,
        ActiveHour,
        ActiveHourInput,
        Activity,
        Admission,
        AdmitInput,
        Delivered,
        DeliverInput,
        DeliveryOutcome,
        EndStatus,
        EnrollInput,
        FailDeliveryInput,
        JourneyEvent,
        JourneyInput,
        JourneyOutcome,
        JourneyState,
        LeaveRequest,
        LoadContextInput,
        ProgressInput,
        StateView,
        TemplateContext,
        UpdateUserInput,
        UserContext,
        WinnerAnswer,
        WinnerInput,
        delivery_key,
    )
    from journeys.durations import as_written
    from journeys.engaged import (
        delivery_of,
        engage,
        engagement_of,
        exits_on_engagement,
        is_machine,
    )
    from journeys.experiments import experiment_bucket
    from journeys.holdouts import HOLDOUT, in_journey_holdout
    from journeys.localtime import (
        delay_summary,
        next_local_time,
        parse_clock,
        quiet_hours_end,
        user_timezone,
    )
    from journeys.model import (
        BranchNode,
        Condition,
        DelayNode,
        EventPath,
        ExitNode,
        ExitRule,
        ExperimentNode,
        Goal,
        Match,
        MessageNode,
        Node,
        QuietHours,
        UpdateUserNode,
        Variant,
        WaitForEventNode,
        WaitForInactivityNode,
        Winner,
        to_timedelta,
    )
    from journeys.templates import TemplateError, names_read, render_value

    # Imported once and shared by every run, not executed afresh in each run's sandbox (about
    # 4 % of a busy worker's CPU): its code keeps no state of a run's, and the import contract
    # keeps it deterministic.
    from workflows.patches import DeliveryFailed, RunStyle, choose_run_style

SEEN_MESSAGE_IDS = 1000
"""How many recent messageIds a run remembers to drop redelivered events."""

Result = TypeVar("Result")
Offer = Callable[[JourneyEvent], Awaitable[bool]]


async def _ignore(event: JourneyEvent) -> bool:
    """An offer that takes no event: the wait only ends at its deadline (or an exit)."""
    return False


class _Exited(Exception):
    """An exit rule matched: unwinds whatever the run was doing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ContinueAsNew(Exception):
    """History grew long: the run hands its state to a fresh run at a safe point."""


@workflow.defn(name=WORKFLOW_TYPE)
class JourneyWorkflow:
    """Interprets a journey graph for one user; see the module docstring."""

    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self._input = input
        self._journey = input.journey
        self._resuming = input.state is not None
        self._state = input.state or JourneyState(
            # The chain's first run: the same after continue-as-new and after a reset, so a
            # reset run keeps its enrollment and its deliveries' keys (nothing sent twice).
            enrollment_id=f"{workflow.info().workflow_id}:{workflow.info().first_execution_run_id}",
            entered_at=input.entry.timestamp,
            event=dict(input.entry.properties),
            seen=[input.entry.message_id] if input.entry.message_id else [],
        )
        self._seen = set(self._state.seen)
        self._held_out = in_journey_holdout(self._journey, input.user_id)
        self._leave: str | None = None
        self._style: RunStyle  # chosen first thing in `run`, by the patches the run recorded

    # --- handlers -------------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: JourneyEvent) -> None:
        """Queue an event for the run, once per messageId."""
        if event.message_id in self._seen:
            return
        self._seen.add(event.message_id)
        self._state.seen.append(event.message_id)
        if len(self._state.seen) > SEEN_MESSAGE_IDS:
            self._seen.discard(self._state.seen.pop(0))
        self._state.pending.append(event)

    @workflow.signal(name=LEAVE_SIGNAL)
    def leave(self, request: LeaveRequest) -> None:
        """End the run at once, as an exit rule would (the journey was archived)."""
        self._leave = request.reason

    @workflow.query(name=STATE_QUERY)
    def state(self) -> StateView:
        """Where the user is and what they wait for."""
        return StateView(
            journey_id=self._journey.id,
            version=self._input.version,
            current_node=self._state.current_node,
            path=self._state.path,
            waiting_for=self._state.waiting_for,
            entered_at=self._state.entered_at,
        )

    # --- main loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyOutcome:
        """Walk the graph from the start (or where the previous run left off) to an end."""
        self._style = choose_run_style(lambda: self._state.current_node, input.revision)
        if not self._resuming:
            enrollment = EnrollInput(
                enrollment_id=self._state.enrollment_id,
                user_id=input.user_id,
                journey_id=self._journey.id,
                version=input.version,
                workflow_id=workflow.info().workflow_id,
                entered_at=self._state.entered_at,
                holdout=HOLDOUT if self._held_out else None,
            )
            if not await self._admitted(enrollment):
                self._show(f"not entered: {ENTRY_LIMIT}")
                return JourneyOutcome(status="exited", path=[], reason=ENTRY_LIMIT)
            await self._style.enroll(enrollment)
        node_id: str | None = self._state.current_node or self._journey.start
        try:
            while node_id is not None:
                node_id = await self._visit(node_id)
            status: EndStatus = "completed"
            reason = None
        except _Exited as exited:
            status, reason = "exited", exited.reason
        except _ContinueAsNew:
            await self._style.publish()
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._input.model_copy(update={"state": self._state}))
        except asyncio.CancelledError:
            # An operator cancelled the run: record that the user left, then end as cancelled.
            await self._end("exited", "cancelled")
            raise
        return await self._end(status, reason)

    async def _admitted(self, enrollment: EnrollInput) -> bool:
        """Whether the journey's entry limit lets the new run in (no command without one)."""
        limit = self._journey.entry.limit
        if limit is None:
            return True
        request = AdmitInput(enrollment=enrollment, limit=limit, at=workflow.now())
        return (await self._call(Activity.ADMIT_ENTRY, request, Admission)).admitted

    async def _end(self, status: EndStatus, reason: str | None) -> JourneyOutcome:
        """Record how the run ended and clear where it was."""
        self._state.current_node = None
        self._state.waiting_for = None
        self._state.deadline = None
        self._show(f"{status}" + (f": {reason}" if reason else ""))
        await self._style.step(self._step(ended=status))
        await self._style.publish()
        return JourneyOutcome(status=status, path=self._state.path, reason=reason)

    async def _visit(self, node_id: str) -> str | None:
        """Run one node and return the next node id (None ends the journey)."""
        resuming, self._resuming = self._resuming, False
        if not resuming:
            self._state.current_node = node_id
            self._state.path.append(node_id)
            self._state.deadline = None
            await self._style.step(self._step(node_id=node_id))
        await self._observe_pending()
        node: Node = self._journey.nodes[node_id]
        match node:
            case MessageNode():
                return await self._message(node_id, node)
            case DelayNode():
                return await self._delay(node_id, node, resuming)
            case WaitForEventNode():
                return await self._wait_for_event(node_id, node, resuming)
            case WaitForInactivityNode():
                return await self._wait_for_inactivity(node_id, node, resuming)
            case BranchNode(paths=paths, else_=otherwise):
                chosen = await self._first_true([branch.when for branch in paths])
                return otherwise if chosen is None else paths[chosen].next
            case ExperimentNode():
                return await self._experiment(node_id, node)
            case UpdateUserNode():
                return await self._update_user(node)
            case ExitNode():
                return None
            case _:
                assert_never(node)

    # --- node types -----------------------------------------------------------------------

    async def _message(self, node_id: str, node: MessageNode) -> str | None:
        held_out = self._held_out and not node.transactional
        quiet = None if node.transactional or held_out else self._journey.settings.quiet_hours
        await self._check_exit_conditions(
            refresh=self._style.refreshes_traits(
                quiet is not None or any(rule.when is not None for rule in self._journey.exit)
            )
        )
        skip_reason = HOLDOUT if held_out else None
        if quiet is not None:
            skip_reason = await self._quiet_hours(node_id, quiet)
        request = DeliverInput(
            idempotency_key=delivery_key(self._state.enrollment_id, node_id),
            journey_id=self._journey.id,
            version=self._input.version,
            node_id=node_id,
            user_id=self._input.user_id,
            channel=node.channel,
            content=node.content,
            template=node.template,
            transactional=node.transactional,
            track=node.tracked,
            context=self._template_context(),
            skip_reason=skip_reason,
        )
        # A delivery that goes through leads to `next` at once (or ends the run after the last
        # node), so that step may be recorded with it.
        then = self._step(ended="completed") if node.next is None else self._step(node_id=node.next)
        try:
            outcome = await self._deliver(request, then)
        except DeliveryFailed as failed:
            # A permanent failure (non-retryable) or retries exhausted: record it, move on.
            failure = FailDeliveryInput(delivery=request, reason=failed.reason)
            await self._call(Activity.FAIL_DELIVERY, failure, type(None))
            return node.on_failure if node.on_failure is not None else node.next
        if outcome.status == "sent" and outcome.delivery_id is not None:
            self._state.delivered[node_id] = Delivered(delivery_id=outcome.delivery_id)
        return node.next

    async def _deliver(self, request: DeliverInput, then: ProgressInput) -> DeliveryOutcome:
        """Deliver the message, waiting for its turn whenever its channel's rate limit holds
        it back (only then does the run issue more commands than a plain delivery)."""
        summary = f"{request.channel} · {request.node_id}"
        outcome = await self._style.deliver(request, summary, then)
        while outcome.status == "waiting":
            await self._wait_for_slot(request, outcome)
            outcome = await self._style.deliver(request, summary, then)
        return outcome

    async def _wait_for_slot(self, request: DeliverInput, outcome: DeliveryOutcome) -> None:
        """Sleep on a timer until the rate limit's slot for this message opens, observing the
        events that come meanwhile (an exit rule ends the run; waits get them later)."""
        assert outcome.retry_after is not None  # a waiting outcome says how long
        await self._style.publish()  # first, or a short wait would pass while it records
        until = workflow.now() + outcome.retry_after
        ends = until.isoformat(timespec="milliseconds")
        self._state.waiting_for = f"{request.node_id}: {outcome.reason} · until {ends}"
        self._show(self._state.waiting_for)

        def woken() -> bool:
            return bool(self._state.pending) or self._leave is not None

        summary = f"{request.channel} rate limit: waiting for a slot"
        try:
            while await self._style.sleep(lambda: until, woken, summary):
                await self._observe_pending()
        except (_Exited, asyncio.CancelledError) as stopped:  # an exit rule, or an operator
            reason = stopped.reason if isinstance(stopped, _Exited) else "cancelled"
            unsent = FailDeliveryInput(delivery=request, reason=reason, status="skipped")
            await self._call(Activity.FAIL_DELIVERY, unsent, type(None))
            raise
        finally:
            self._state.waiting_for = None
            self._style.cancel_timer()

    async def _quiet_hours(self, node_id: str, quiet: QuietHours) -> str | None:
        """Wait for the user's quiet hours to end, or say why the message is skipped."""
        zone = self._zone("user")
        quiet_end = quiet_hours_end(workflow.now(), quiet, zone)
        if quiet_end is None:
            return None
        match quiet.action:
            case "skip":
                return "quiet hours"
            case "delay":
                self._state.deadline = quiet_end
                await self._wait(f"{node_id}: quiet hours until {quiet.end} {zone}", _ignore)
                await self._check_exit_conditions()
                return None
            case _:
                assert_never(quiet.action)

    async def _delay(self, node_id: str, node: DelayNode, resuming: bool) -> str | None:
        why = ""
        if not (resuming and self._state.deadline is not None):
            self._state.deadline, why = await self._delay_deadline(node)
        zone = None if node.until is None else self._zone(node.until.timezone)
        summary = delay_summary(node, self._deadline(), zone)
        await self._wait(f"{node_id}: {summary}", _ignore, about=why)
        return node.next

    async def _delay_deadline(self, node: DelayNode) -> tuple[datetime, str]:
        """When the delay ends, and for an optimal time which hour was chosen and why."""
        now = workflow.now()
        if node.duration is not None:
            return now + to_timedelta(node.duration), ""
        until = node.until
        assert until is not None  # the model requires duration or until
        await self._refresh_traits()  # the user's time zone may have changed
        zone = self._zone(until.timezone)
        clock, why = until.time, ""
        if clock == "optimal":
            active = await self._call(
                Activity.MOST_ACTIVE_HOUR,
                ActiveHourInput(user_id=self._input.user_id, timezone=str(zone)),
                ActiveHour,
            )
            if active.hour is not None:
                clock, why = f"{active.hour:02d}:00", " (their most active hour)"
            else:
                clock, why = until.fallback or "00:00", " (fallback: too little history)"
        return next_local_time(now, parse_clock(clock), zone, until.weekdays), why

    def _zone(self, choice: str) -> ZoneInfo:
        """The time zone a delay or quiet hours go by (`"user"`: the user's, as last loaded)."""
        return user_timezone(choice, self._state.traits, self._journey.settings.timezone)

    async def _wait_for_event(
        self, node_id: str, node: WaitForEventNode, resuming: bool
    ) -> str | None:
        if not (resuming and self._state.deadline is not None):
            self._state.deadline = workflow.now() + to_timedelta(node.timeout)
        chosen: list[EventPath] = []

        async def offer(event: JourneyEvent) -> bool:
            for path in node.paths:
                if event.name == path.event and await self._matches(path, event):
                    chosen.append(path)
                    self._state.event = dict(event.properties)
                    return True
            return False

        names = " or ".join(dict.fromkeys(p.event for p in node.paths))
        timeout = as_written(node.timeout)
        if await self._wait(f"{node_id}: up to {timeout} for {names}", offer):
            return chosen[0].next
        return node.on_timeout

    async def _wait_for_inactivity(
        self, node_id: str, node: WaitForInactivityNode, resuming: bool
    ) -> str | None:
        length = to_timedelta(node.duration)
        if not (resuming and self._state.deadline is not None):
            self._state.deadline = workflow.now() + length

        async def restart_clock(event: JourneyEvent) -> bool:
            # Each watched event restarts the clock; the wait ends only at a quiet deadline.
            if event.type == "track" and (node.events is None or event.name in node.events):
                # From when the user acted (a late-routed event restarts the clock in the past),
                # and never earlier than an event already seen.
                restarted = min(event.timestamp, workflow.now()) + length
                self._state.deadline = max(self._deadline(), restarted)
            return False

        summary = f"{node_id}: {as_written(node.duration)} without activity"
        watched = f" ({', '.join(node.events)})" if node.events else ""
        await self._wait(summary, restart_clock, about=watched)
        return node.next

    async def _experiment(self, node_id: str, node: ExperimentNode) -> str | None:
        bucket = experiment_bucket(self._journey.id, node_id, self._input.user_id)
        threshold = 0
        for variant in node.variants:
            threshold += variant.weight
            if bucket < threshold:
                break
        if node.winner is not None and self._style.asks_for_winner():
            winner = await self._winner(node_id, node, node.winner)
            if winner is not None:
                variant = winner
        self._state.variant = variant.name
        await self._style.step(self._step(variant=variant.name))
        return variant.next

    async def _winner(self, node_id: str, node: ExperimentNode, rule: Winner) -> Variant | None:
        """The variant that won the experiment, if it has one (it takes every new arrival)."""
        answer = await self._call(
            Activity.EXPERIMENT_WINNER,
            WinnerInput(
                journey_id=self._journey.id,
                version=self._input.version,
                node_id=node_id,
                variants=[v.name for v in node.variants],
                after=rule.after,
                min_users=rule.min_users,
                metric=rule.metric,
                within=rule.within,
                tracked=self._journey.tracked_after(node_id) if rule.metric == "click" else [],
            ),
            WinnerAnswer,
        )
        winner = next((v for v in node.variants if v.name == answer.winner), None)
        if winner is not None:
            self._state.notes.append(
                f"experiment {node_id}: '{winner.name}' won, so every new arrival takes it"
            )
        return winner

    async def _update_user(self, node: UpdateUserNode) -> str | None:
        changed = await self._call(
            Activity.UPDATE_USER,
            UpdateUserInput(
                user_id=self._input.user_id,
                set=node.set,
                unset=node.unset,
                context=self._template_context(),
            ),
            UserContext,
        )
        self._state.traits = changed.traits
        await self._check_exit_conditions(refresh=False)
        return node.next

    # --- events, exits, goals -------------------------------------------------------------

    async def _wait(self, summary: str, offer: Offer, *, about: str = "") -> bool:
        """Wait until `self._state.deadline`, offering every event to `offer` on the way.

        Returns True as soon as `offer` accepts an event, False when the deadline passes.
        `offer` may move the deadline (inactivity). Raises `_Exited` when an exit rule matches.
        `summary` names the wait's timer (`wait_checkout: up to 24h for Checkout Started`); the
        current details add `about` and the deadline.

        Which wait an event belongs to goes by when it happened: one that arrived while the
        user passed through instant nodes (a message, a branch) is offered to the next wait;
        one that happened after this wait's deadline is left for the next node, even when its
        signal and the timer reach the run together.
        """
        what = summary + about
        self._show_wait(what)

        def woken() -> bool:
            return bool(self._state.pending) or self._leave is not None or self._history_is_long()

        try:
            while True:
                deadline = self._deadline()
                while self._state.unclaimed:
                    event = self._state.unclaimed[0]
                    if event.timestamp >= deadline and workflow.now() >= deadline:
                        return False
                    self._state.unclaimed.pop(0)
                    if await offer(event):
                        return True
                    if self._deadline() != deadline:
                        deadline = self._deadline()
                        self._show_wait(what)
                if not await self._style.sleep(self._deadline, woken, summary):
                    return False
                await self._observe_pending()
                if self._history_is_long():
                    raise _ContinueAsNew
        finally:
            self._state.waiting_for = None
            self._style.cancel_timer()

    def _show_wait(self, what: str) -> None:
        """Show what the run waits for, and until when at the latest."""
        self._state.waiting_for = f"{what} · ends {self._deadline().isoformat(timespec='seconds')}"
        self._show(self._state.waiting_for)

    def _deadline(self) -> datetime:
        assert self._state.deadline is not None, "every wait sets its deadline first"
        return self._state.deadline

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._input.continue_as_new_after
        if limit is not None and info.get_current_history_length() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    async def _observe_pending(self) -> None:
        """Check new events against exits and the goal at once, then queue them for waits."""
        if self._leave is not None:
            raise _Exited(self._leave)
        while self._state.pending:
            event = self._state.pending.pop(0)
            await self._observe(event)
            self._state.unclaimed.append(event)

    async def _observe(self, event: JourneyEvent) -> None:
        """What every event does whatever the node: engagement with this run's messages (first,
        so the goal and exit rules see it), goal, event exit rules, trait changes."""
        engaged = engage(self._state.delivered, event)
        goal = self._journey.goal
        if (
            goal is not None
            and not self._state.converted
            and event.name == goal.event
            and timedelta(0)
            <= event.timestamp - self._state.entered_at
            <= to_timedelta(goal.within)
            and await self._matches(goal, event)
        ):
            self._state.converted = True
            await self._style.step(self._step(converted=True))
        for rule in self._journey.exit:
            if (
                rule.event is not None
                and event.name == rule.event
                and await self._matches(rule, event)
            ):
                raise _Exited(f"exit event {rule.event}")
        if event.type == "identify" and event.traits:
            self._state.traits = {**self._state.traits, **event.traits}
            await self._check_exit_conditions(refresh=False)
        if engaged and exits_on_engagement(self._journey):
            await self._check_exit_conditions(refresh=False)

    async def _check_exit_conditions(self, *, refresh: bool = True) -> None:
        """Apply the `when` exit rules to the user as they are now (refreshing traits first)."""
        whens = [rule.when for rule in self._journey.exit if rule.when is not None]
        if (whens or refresh) and await self._first_true(whens, refresh=refresh) is not None:
            raise _Exited("exit condition")

    async def _matches(self, matcher: EventPath | ExitRule | Goal, event: JourneyEvent) -> bool:
        """Whether an event of the matcher's name meets the rest of it: made by a person (not a
        link scanner), about this run's delivery of `of`, carrying the `match` values, and
        with `where` holding, `event.*` being the event matched."""
        if is_machine(event) and self._style.ignores_machine_engagement():
            return False
        of = matcher.of if isinstance(matcher, EventPath) else None
        if of is not None and delivery_of(self._state.delivered, event) != of:
            return False
        if matcher.match is not None and not await self._carries(matcher.match, event):
            return False
        if matcher.where is None:
            return True
        found = await self._first_true([matcher.where], event=event.properties, refresh=False)
        return found is not None

    async def _carries(self, match: Match, event: JourneyEvent) -> bool:
        """Whether the event carries the values of a keyed `match`, rendered now."""
        if any("user" in names_read(source)[0] for source in match.values()):
            await self._refresh_traits()
        try:
            expected = render_value(dict(match), self._context())
        except TemplateError:
            return False  # a value that cannot be rendered matches nothing; the run carries on
        return carries(event.properties, expected)

    async def _first_true(
        self,
        conditions: list[Condition],
        *,
        event: dict[str, Any] | None = None,
        refresh: bool = True,
    ) -> int | None:
        """The index of the first condition that holds, or None.

        One `load_context` activity refreshes the traits (when `refresh`) and answers every
        segment and `event_count` fact the conditions ask, so a branch costs one round trip.
        """
        needed = [fact for condition in conditions for fact in facts_needed(condition)]
        answers: dict[str, bool | int] = {}
        if refresh or needed:
            request = LoadContextInput(user_id=self._input.user_id, facts=needed)
            loaded = await self._call(Activity.LOAD_CONTEXT, request, UserContext)
            self._state.traits, answers = loaded.traits, loaded.facts
        context = self._context(event)
        engagement = engagement_of(self._state.delivered)
        for index, condition in enumerate(conditions):
            if evaluate(condition, context, lambda fact: answers[fact_key(fact)], engagement):
                return index
        return None

    def _context(self, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """What conditions and `match` templates read: `user` (as last loaded), `entry` and
        `event` (the run's current event, unless an event matcher gives the one matched)."""
        return {
            "user": {**self._state.traits, "id": self._input.user_id},
            "entry": self._input.entry.properties,
            "event": self._state.event if event is None else event,
        }

    async def _refresh_traits(self) -> None:
        await self._first_true([])

    def _show(self, details: str) -> None:
        """Set what the Temporal UI shows for the run: `details`, then the run's notes."""
        workflow.set_current_details("\n".join([details, *self._state.notes]))

    async def _call(self, activity: Activity, argument: BaseModel, result: type[Result]) -> Result:
        """Run a store activity (short, idempotent, retried until the store answers), as the
        run's style says."""
        return await self._style.call(activity, argument, result)

    # --- progress records -----------------------------------------------------------------

    def _template_context(self) -> TemplateContext:
        return TemplateContext(
            entry=self._input.entry.properties,
            event=self._state.event,
            journey={
                "id": self._journey.id,
                "name": self._journey.name,
                "version": self._input.version,
            },
            variant=self._state.variant,
        )

    def _step(
        self,
        *,
        node_id: str | None = None,
        variant: str | None = None,
        converted: bool = False,
        ended: EndStatus | None = None,
    ) -> ProgressInput:
        """A step of the run, now, for the store (the run's style says when it is recorded)."""
        return ProgressInput(
            enrollment_id=self._state.enrollment_id,
            at=workflow.now(),
            node_id=node_id,
            variant=variant,
            converted=converted,
            ended=ended,
        )

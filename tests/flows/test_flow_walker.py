"""The generic walker: every path of every flow reaches an end.

It drives the real engine and store. Starting from each flow's time-driven start,
it tries every answer at every question (every option; for scales, the values on
both sides of every threshold the flow tests), restoring the conversation from
the store between tries. Conversations that differ only in variables the flow
never reads are the same state, which keeps the search small but complete.
Then it proves that from every state it saw, some sequence of answers ends the
conversation, and that it passed through every step of every flow.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address, Inbound
from dialogs.flows.model import (
    MEMORY_VARIABLES,
    AskStep,
    BranchStep,
    ChoiceStep,
    Flow,
    Option,
    ScaleStep,
    ScheduleStep,
)
from dialogs.memory import SOURCES
from dialogs.payloads import Payload, encode_payload
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import ConversationState, FollowUpRequest, UserKey
from storage import SqlStore
from tests.conftest import onboarded

ADDRESS = Address("walker", "w1", "w1")
USER = UserKey("walker", "w1")
StateKey = tuple[object, ...]
END: StateKey = ("<end>",)
# The engine's zone in tests (tests/conftest.py); the walker's profile has no other.
ZONE = ZoneInfo("Europe/London")


def _scale_values(flow: Flow) -> list[int]:
    values = {0, 10}
    for s in flow.steps:
        if isinstance(s, BranchStep):
            for c in s.cases:
                for bound in (c.when.at_least, c.when.below):
                    if bound is not None:
                        values |= {max(0, min(10, bound - 1)), max(0, min(10, bound))}
    return sorted(values)


def offered_from(now: datetime, option: Option) -> datetime:
    """The first whole hour from `now` at which `option` is offered, in the walker's
    zone (London: UTC in January). The walk runs on a Monday at noon; an option
    hidden then ("Tomorrow morning" from 22:00, "Next weekend" on a Sunday) is
    pressed at its own time, so the steps behind it are walked too."""
    for hours in range(7 * 24):
        local = (now + timedelta(hours=hours)).astimezone(ZONE)
        if option.shown_at(local.hour, local.weekday()):
            return now if hours == 0 else local.replace(minute=0, second=0, microsecond=0)
    raise AssertionError(f"option {option.id!r} is offered at no hour of the week")


@dataclass
class Walk:
    engine: Engine
    store: SqlStore
    clock: ManualClock
    content: Content

    def __post_init__(self) -> None:
        self.events = itertools.count()
        self.read = {fid: f.read_variables for fid, f in self.content.flows.items()}
        self.visited_steps: set[tuple[str, str]] = set()

    def key(self, state: ConversationState) -> StateKey:
        if state.flow_id is None:
            return END
        read = self.read[state.flow_id]
        relevant = tuple(sorted((k, str(v)) for k, v in state.variables.items() if k in read))
        return (state.flow_id, state.node_id, relevant)

    async def load(self) -> ConversationState:
        async with self.store.session() as s:
            return await s.load_state(USER, self.clock.now())

    async def restore(self, state: ConversationState, **profile: object) -> None:
        # The profile goes back to a consented, screened adult each time, so what one
        # path remembers (under 18, unsafe, consent withdrawn) does not leak into others.
        # One transaction for both: the walk restores before each of its many tries.
        async with self.store.session() as s:
            await s.save_profile(USER, onboarded(self.clock.now(), **profile))
            await s.save_state(USER, state, self.clock.now())

    async def start(self, flow_id: str, **profile: object) -> ConversationState:
        """Start a flow the way a due follow-up does: the engine's time-driven entry;
        `profile` changes the person's profile for the start (what the flow reads from
        it then stays in its variables)."""
        await self.restore(ConversationState(), **profile)
        async with self.store.session() as s:
            await s.schedule_followup(
                USER,
                FollowUpRequest(
                    flow_id,
                    "w1",
                    self.clock.now(),
                    self.clock.now() + timedelta(hours=1),
                    f"walk-{next(self.events)}",
                ),
            )
        [due] = await self.store.claim_due(self.clock.now(), 1, ["walker"])
        await self.engine.start_due(due)
        return await self.load()

    def answers(self, state: ConversationState) -> list[Inbound]:
        assert state.flow_id is not None and state.node_id is not None
        flow = self.content.flows[state.flow_id]
        step = flow.step(state.node_id)
        assert step is not None, f"{flow.id} has no step {state.node_id}"
        at = self.clock.now()

        def press(option: str, when: datetime = at) -> Inbound:
            payload = encode_payload(Payload(flow.id, step.id, option, state.turn))
            return Inbound(ADDRESS, f"w{next(self.events)}", when, choice=payload)

        if isinstance(step, ChoiceStep):
            return [press(o.id, offered_from(at, o)) for o in step.options]
        if isinstance(step, ScaleStep):
            return [press(str(v)) for v in _scale_values(flow)]
        if isinstance(step, AskStep):
            typed = {"time": "9:30pm", "zone": "Lisbon"}.get(step.expect, "words from the walker")
            return [Inbound(ADDRESS, f"w{next(self.events)}", at, text=typed)]
        raise AssertionError(f"{flow.id}/{step.id} waits but is not a question")  # pragma: no cover

    def mark_asked(self, state: ConversationState) -> None:
        if state.flow_id is not None and state.node_id is not None:
            self.visited_steps.add((state.flow_id, state.node_id))


async def test_every_path_of_every_flow_reaches_an_end(
    store: SqlStore,
    clock: ManualClock,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    scheduled: list[datetime] = []
    engine = Engine(
        content,
        store,
        clock,
        safety_screen,
        lambda signal, country: resource_text(resources, signal, country),
        on_followup_scheduled=scheduled.append,
    )
    walk = Walk(engine, store, clock, content)
    # A pause in the journal, so /insights and the weekly look have something to
    # show, and ask their questions.
    async with store.session() as s:
        yesterday = clock.now() - timedelta(days=1)
        await s.append_journal(USER, yesterday, "pause", "rate", "rating", "7")
    edges: dict[StateKey, set[StateKey]] = defaultdict(set)
    representative: dict[StateKey, ConversationState] = {}
    frontier: list[StateKey] = []
    starts = [await walk.start(flow_id) for flow_id in content.flows]
    # A flow that reads the journal (what helped last time) starts once per answer the
    # journal may hold, so the paths that memory opens are walked too.
    for flow in content.flows.values():
        for name in MEMORY_VARIABLES:
            if name not in flow.variables:
                continue
            source_flow, step_id, kind = SOURCES[name]
            source = content.flows[source_flow].step(step_id)
            assert isinstance(source, ChoiceStep)
            for option in source.options:
                async with store.session() as s:
                    await s.append_journal(USER, clock.now(), source_flow, step_id, kind, option.id)
                starts.append(await walk.start(flow.id))
    # A flow that reads whether the person has had the safety questions starts once
    # for someone who has not, so the moves offered before the screen are walked too.
    for flow in content.flows.values():
        if "screened" in flow.variables:
            starts.append(await walk.start(flow.id, screened=False))
    for state in starts:
        key = walk.key(state)
        if key != END and key not in representative:
            representative[key] = state
            frontier.append(key)
            walk.mark_asked(state)
    tries = off_hours = 0
    noon = clock.now()
    while frontier:
        key = frontier.pop()
        state = representative[key]
        for inbound in walk.answers(state):
            # An option hidden at noon is pressed at a time it is offered, and the
            # conversation is restored as it stood then.
            clock.set(inbound.at)
            await walk.restore(state)
            replies = await engine.handle(inbound)
            assert replies, f"no reply at {key}"
            assert "something went wrong" not in replies[0].text, f"engine error at {key}"
            assert "earlier step" not in replies[0].text, f"{inbound.choice} not taken at {key}"
            off_hours += inbound.at != noon
            tries += 1
            after = await walk.load()
            clock.set(noon)
            after_key = walk.key(after)
            edges[key].add(after_key)
            if after_key != END and after_key not in representative:
                representative[after_key] = after
                frontier.append(after_key)
                walk.mark_asked(after)

    # Every state can still reach an end: search backwards from END.
    reverse: dict[StateKey, set[StateKey]] = defaultdict(set)
    for src, targets in edges.items():
        for t in targets:
            reverse[t].add(src)
    can_end = {END}
    todo = [END]
    while todo:
        for src in reverse[todo.pop()]:
            if src not in can_end:
                can_end.add(src)
                todo.append(src)
    stuck = [k for k in representative if k not in can_end]
    assert stuck == [], f"states from which no path ends: {stuck}"

    # Every question of every flow was asked at least once.
    questions = {
        (f.id, s.id)
        for f in content.flows.values()
        for s in f.steps
        if isinstance(s, ChoiceStep | ScaleStep | AskStep)
    }
    assert questions - walk.visited_steps == set()
    assert tries > 50  # the walk really walked
    assert off_hours > 0  # options hidden at noon were pressed at their own hours

    # Schedule steps ran through the store too (they sit between questions, so the
    # question coverage above reaches them; this checks they did their work).
    schedule_steps = sum(
        isinstance(st, ScheduleStep) for f in content.flows.values() for st in f.steps
    )
    assert schedule_steps and len(scheduled) >= schedule_steps

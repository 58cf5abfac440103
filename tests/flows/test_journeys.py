"""Taps to help (docs/transcripts/journeys.md): the counts the generator prints are
the taps the real engine takes; a first-time person breathes within two taps and has a
next step on screen within eight, with the safety questions only on the way to the
first push-pull reframe. The goals are the content's property: a flow change that
breaks one fails here."""

from __future__ import annotations

import pytest

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address
from dialogs.flows.journeys import (
    FIRST_BREATH,
    GOAL_BREATH,
    GOAL_NEXT_STEP,
    JOURNEYS,
    NEXT_STEP,
    Journey,
    pick,
    walk,
)
from dialogs.flows.model import ChoiceStep
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard

SCALE = [str(n) for n in range(11)]


async def taps_in_the_engine(
    engine: Engine,
    store: SqlStore,
    clock: ManualClock,
    content: Content,
    journey: Journey,
    n: int,
) -> tuple[int | None, int | None]:
    """Drive the real engine the way the journey answers: its option at every choice
    (the first, "No" on the safety questions, or the one it prefers), its number on a
    scale. Counted from the state the engine stores after each tap: a tap at a next-step
    choice counts unless the engine then asks the safety questions."""
    address = Address("test", f"j{n}", f"j{n}", True)
    if not journey.new:
        await onboard(store, clock, address, country="GB")
    chat = Chat(engine, clock=clock, address=address)
    await chat.command(journey.command)
    to_breath = None
    user = UserKey("test", address.user_id)
    for taps in range(60):
        async with store.session() as s:
            state = await s.load_state(user, clock.now())
        assert state.flow_id is not None and state.node_id is not None
        where = f"{state.flow_id}/{state.node_id}"
        if where in FIRST_BREATH and to_breath is None:
            to_breath = taps
        labels = [c.label for c in chat.buttons()]
        flow = content.flows[state.flow_id]
        step = flow.step(state.node_id)
        if isinstance(step, ChoiceStep):
            label = pick(journey, flow, step).label
        else:
            assert labels == SCALE, where
            label = str(journey.rating)
        assert label in labels, (where, label, labels)
        await chat.press(label)
        if where in NEXT_STEP:
            async with store.session() as s:
                after = await s.load_state(user, clock.now())
            if after.flow_id != "screen":
                return to_breath, taps + 1
    return to_breath, None


@pytest.mark.parametrize("n", range(len(JOURNEYS)), ids=[j.name for j in JOURNEYS])
async def test_the_counts_are_the_engines(
    engine: Engine, store: SqlStore, clock: ManualClock, content: Content, n: int
) -> None:
    journey = JOURNEYS[n]
    walked = walk(content, journey)
    assert walked.to_breath is not None and walked.to_next_step is not None
    counted = await taps_in_the_engine(engine, store, clock, content, journey, n)
    assert counted == (walked.to_breath, walked.to_next_step)


def test_a_new_person_breathes_within_two_taps(content: Content) -> None:
    for journey in JOURNEYS:
        if journey.new:
            breath = walk(content, journey).to_breath
            assert breath is not None and breath <= GOAL_BREATH, journey.name


def test_a_new_person_has_a_next_step_within_eight_taps(content: Content) -> None:
    held = [j for j in JOURNEYS if j.new and j.goal]
    assert len(held) >= 3  # from /start, from /pause, and very loud
    for journey in held:
        walked = walk(content, journey)
        assert walked.to_next_step is not None, journey.name
        assert walked.to_next_step <= GOAL_NEXT_STEP, (journey.name, walked.taps)


def test_the_safety_questions_wait_for_a_reframe_the_person_chooses(content: Content) -> None:
    """The quickest way offered to a new person asks none of them; choosing to look
    closer asks all four, right before the check and anything after it."""
    for journey in JOURNEYS:
        if journey.new and journey.goal:
            taps = walk(content, journey).taps
            assert not any(t.startswith("screen/") for t in taps), journey.name
    [closer] = [j for j in JOURNEYS if j.new and not j.goal]
    taps = walk(content, closer).taps
    screen = [n for n, t in enumerate(taps) if t.startswith("screen/")]
    assert len(screen) == 4
    assert taps[screen[0] - 1] == "pause/first_move: Look at what's going on"
    assert taps[screen[-1] + 1].startswith("pause/fits")


def test_the_first_breath_comes_before_the_agreement_and_the_safety_questions(
    content: Content,
) -> None:
    for journey in JOURNEYS:
        walked = walk(content, journey)
        assert walked.to_breath is not None
        before = walked.taps[: walked.to_breath]
        assert not any(t.startswith(("consent/", "screen/")) for t in before), journey.name


def test_a_returning_person_reaches_a_next_step_without_gates(content: Content) -> None:
    [returning] = [j for j in JOURNEYS if not j.new]
    walked = walk(content, returning)
    assert not any(t.startswith(("consent/", "screen/")) for t in walked.taps)
    assert walked.to_breath == 0


def test_the_milestones_name_steps_that_exist(content: Content) -> None:
    def exists(where: str) -> bool:
        flow_id, step_id = where.split("/")
        return flow_id in content.flows and content.flows[flow_id].step(step_id) is not None

    assert any(exists(w) for w in FIRST_BREATH)
    assert any(exists(w) for w in NEXT_STEP)

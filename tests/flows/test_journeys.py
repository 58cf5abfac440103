"""Taps to help (docs/transcripts/journeys.md): the counts the generator prints are
the taps the real engine takes, and a first-time person breathes within two taps."""

from __future__ import annotations

import pytest

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address
from dialogs.flows.journeys import (
    FIRST_BREATH,
    GOAL_BREATH,
    JOURNEYS,
    NEXT_STEP,
    Journey,
    walk,
)
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard

SCALE = [str(n) for n in range(11)]


async def taps_in_the_engine(
    engine: Engine, store: SqlStore, clock: ManualClock, journey: Journey, n: int
) -> tuple[int | None, int | None]:
    """Drive the real engine the way the journey answers: the first button, "No" on
    the safety questions, the journey's number on a scale. Counted from the state the
    engine stores after each tap."""
    address = Address("test", f"j{n}", f"j{n}", True)
    if not journey.new:
        await onboard(store, clock, address, country="GB")
    chat = Chat(engine, clock=clock, address=address)
    await chat.command(journey.command)
    to_breath = None
    for taps in range(60):
        async with store.session() as s:
            state = await s.load_state(UserKey("test", address.user_id), clock.now())
        where = f"{state.flow_id}/{state.node_id}"
        if where in FIRST_BREATH and to_breath is None:
            to_breath = taps
        labels = [c.label for c in chat.buttons()]
        if state.flow_id == "screen":
            label = "No"
        elif labels == SCALE:
            label = str(journey.rating)
        else:
            label = labels[0]
        await chat.press(label)
        if where in NEXT_STEP:
            return to_breath, taps + 1
    return to_breath, None


@pytest.mark.parametrize("n", range(len(JOURNEYS)), ids=[j.name for j in JOURNEYS])
async def test_the_counts_are_the_engines(
    engine: Engine, store: SqlStore, clock: ManualClock, content: Content, n: int
) -> None:
    journey = JOURNEYS[n]
    walked = walk(content, journey)
    assert walked.to_breath is not None and walked.to_next_step is not None
    counted = await taps_in_the_engine(engine, store, clock, journey, n)
    assert counted == (walked.to_breath, walked.to_next_step)


def test_a_new_person_breathes_within_two_taps(content: Content) -> None:
    for journey in JOURNEYS:
        if journey.new:
            breath = walk(content, journey).to_breath
            assert breath is not None and breath <= GOAL_BREATH, journey.name


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

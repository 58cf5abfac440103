"""Before the safety questions: what a person never screened may be offered.

A new person gets a next step before the four safety questions (docs/architecture.md,
how an inbound event travels, item 7): only moves that are safe without them (settle
and wait with a check-in, breathe again, or /space, which asks the questions before
its first word). Two halves:
- the content: every step of the pause reachable before its `screen` action is one
  of a reviewed list, and every flow it hands off to asks the questions at its start;
- the engine: the loud path and the middle path walked by a newcomer, tap by tap.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialogs.content import Content
from dialogs.flows.branching import holds
from dialogs.flows.model import ActionStep, BranchStep, HandoffStep
from dialogs.safety.gates import SCREEN, gate_at_start
from dialogs.store import Profile
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.safety.test_paths import profile_of

# Reviewed: each says or asks nothing that reframes push-pull or suggests a move
# toward the partner, so it is safe for someone the screen would send to the danger
# route. A step added to this region fails the test until it is reviewed and listed.
SAFE_BEFORE_THE_SCREEN = frozenset(
    {
        # the opening, the breath and "what helped last time"
        "opening", "ground", "tell_partner",
        "last_breathing", "last_moving", "last_waiting", "last_writing", "last_someone",
        "try_moving", "try_waiting", "try_writing", "try_someone",
        # noticing: a number, what set it off, the pull in the body
        "rate", "by_loudness", "what_happened", "urge", "before_check",
        # the loud path: body first
        "loud", "loud_rerate", "loud_next",
        # the change after breathing, said back
        "breathe", "breathe_again", "change", "came_down", "went_up", "held_steady",
        "after_change",
        # the first move, and settling with a check-in
        "first_move", "settle", "offer_followup",
        "schedule_20m", "schedule_1h", "schedule_evening", "schedule_morning",
        "scheduled", "scheduled_then", "scheduled_quiet", "close",
        # into /space, which asks the questions at its start (checked below)
        "to_space",
    }
)  # fmt: skip
# What must wait for the screen: the check and everything built on it.
REFRAMES = frozenset(
    {
        "check", "fits", "not_fit", "check_by_urge", "reach_by_role", "withdraw_by_role",
        "urge_reach", "urge_withdraw", "urge_mixed", "role_contact", "role_space",
        "move", "write", "write_hold", "talk",
    }
)  # fmt: skip
NEVER_SCREENED = {"screened": "no"}
NEWCOMER_AGREED = Profile(consent_at=datetime(2026, 1, 5, tzinfo=UTC), adult=True)


def before_the_screen(content: Content, flow_id: str) -> tuple[set[str], set[str]]:
    """The steps of `flow_id` a person never screened can reach before its `screen`
    action, and the flows handed off to from them. Branches are followed every way
    they could go, except that one on `screened` goes only where "no" takes it."""
    flow = content.flows[flow_id]
    seen: set[str] = set()
    handoffs: set[str] = set()
    todo = [flow.start_id]
    while todo:
        step_id = todo.pop()
        if step_id in seen:
            continue
        seen.add(step_id)
        step = flow.step(step_id)
        assert step is not None, step_id
        if isinstance(step, ActionStep) and step.do == "screen":
            seen.discard(step_id)  # the screen itself, where the region ends
            continue
        if isinstance(step, HandoffStep):
            handoffs.add(step.flow)
            continue
        if isinstance(step, BranchStep):
            todo += _branch_targets(step)
            continue
        todo += step.targets()
    return seen, handoffs


def _branch_targets(step: BranchStep) -> list[str]:
    targets = []
    for case in step.cases:
        if case.when.var != "screened":
            targets.append(case.next)
        elif holds(case.when, NEVER_SCREENED):
            return [*targets, case.next]  # taken: later cases and `otherwise` are not
    return [*targets, step.otherwise]


def test_only_reviewed_steps_come_before_the_screen(content: Content) -> None:
    reachable, _ = before_the_screen(content, "pause")
    assert not reachable & REFRAMES
    assert reachable == SAFE_BEFORE_THE_SCREEN


def test_every_flow_handed_to_before_the_screen_asks_the_questions_first(
    content: Content,
) -> None:
    _, handoffs = before_the_screen(content, "pause")
    assert handoffs == {"space"}
    for flow_id in handoffs:
        flow = content.flows[flow_id]
        assert not flow.before_gates, flow_id  # nothing of it runs before its gates
        assert gate_at_start(flow, NEWCOMER_AGREED) == SCREEN, flow_id


# ----------------------------------------------------------------- in the engine

SPACE_WORDS = ("need for space into words", "I'll be back", "come back to it")


async def agreed_and_rated(newcomer: Chat, rating: str) -> None:
    await newcomer.command("pause")
    await newcomer.press("Done")
    await newcomer.press("I agree, and I'm 18+")
    await newcomer.press("United States")
    await newcomer.press(rating)


async def loud_path(newcomer: Chat) -> list[str]:
    """A first pause at 9 of 10: the body first, a new number, then "What next?"."""
    await agreed_and_rated(newcomer, "9")
    assert "body first" in texts(newcomer.seen)
    await newcomer.press("Done")
    await newcomer.press("9")
    return [c.label for c in newcomer.buttons()]


async def middle_path(newcomer: Chat) -> list[str]:
    """A first pause at 5 of 10: what set it off, the urge, then the first move."""
    await agreed_and_rated(newcomer, "5")
    await newcomer.press("Silence")
    await newcomer.press("Pull away")
    return [c.label for c in newcomer.buttons()]


@pytest.mark.parametrize("path", [loud_path, middle_path], ids=["loud", "middle"])
async def test_asking_for_space_asks_the_safety_questions_before_any_reframe(
    newcomer: Chat, store: SqlStore, path: object
) -> None:
    assert callable(path)
    labels = await path(newcomer)
    assert "Ask for space, with a time" in labels
    shown = texts(newcomer.seen)
    assert "four quick" not in shown and "activation" not in shown
    out = await newcomer.press("Ask for space, with a time")
    assert "four quick yes-or-no questions" in texts(out)
    assert not any(w in texts(out) for w in SPACE_WORDS)
    for _ in range(3):
        await newcomer.press("No")
    out = await newcomer.press("No")
    # Screened and safe: /space starts from its first word.
    assert "Let's put the need for space into words" in texts(out)
    assert (await profile_of(store, newcomer)).screened is True


@pytest.mark.parametrize("path", [loud_path, middle_path], ids=["loud", "middle"])
async def test_a_yes_there_takes_the_danger_route_and_no_words_for_the_partner(
    newcomer: Chat, store: SqlStore, path: object
) -> None:
    assert callable(path)
    await path(newcomer)
    await newcomer.press("Ask for space, with a time")
    out = await newcomer.press("Yes")
    assert "Is it safe to keep chatting here?" in texts(out)
    assert not any(w in texts(newcomer.seen) for w in SPACE_WORDS)
    assert (await profile_of(store, newcomer)).unsafe is True


async def test_settling_first_needs_no_safety_questions(newcomer: Chat, store: SqlStore) -> None:
    labels = await middle_path(newcomer)
    # The moves that reframe (a calm talk, a message to send) are not offered yet.
    assert labels == [
        "Settle and wait a set time",
        "Ask for space, with a time",
        "Breathe a bit more",
        "Look at what's going on",
    ]
    out = await newcomer.press("Settle and wait a set time")
    assert "Want me to check on you later?" in texts(out)
    await newcomer.press("In 20 minutes")
    shown = texts(newcomer.seen)
    assert "four quick" not in shown and "activation" not in shown
    assert (await profile_of(store, newcomer)).screened is False


async def test_breathing_again_comes_back_to_the_moves_that_need_no_questions(
    newcomer: Chat,
) -> None:
    await middle_path(newcomer)
    await newcomer.press("Breathe a bit more")
    out = await newcomer.press("3")
    assert "From 5 to 3" in texts(out)
    labels = [c.label for c in newcomer.buttons()]
    assert "Look at what's going on" in labels and "Plan a calm talk" not in labels
    assert "four quick" not in texts(newcomer.seen)


async def test_looking_closer_asks_the_questions_then_gives_the_check(
    newcomer: Chat, store: SqlStore
) -> None:
    await middle_path(newcomer)
    out = await newcomer.press("Look at what's going on")
    assert "four quick yes-or-no questions" in texts(out)
    for _ in range(3):
        await newcomer.press("No")
    out = await newcomer.press("No")
    assert "activation, not intention" in texts(out) or "activation, not" in texts(out)
    assert [c.label for c in newcomer.buttons()] == ["It fits", "Not really"]
    out = await newcomer.press("It fits")
    # What it knew before the questions (the urge to pull away) is still there.
    assert "pull away" in texts(out)
    assert "Plan a calm talk" in [c.label for c in newcomer.buttons()]

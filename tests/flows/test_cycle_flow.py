"""/cycle: the five stages, where you two are now, and a suggestion for that stage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts

USER = UserKey("test", "u1")
STAGES = [
    "Approach",
    "Peak closeness",
    "Threshold",
    "Pursuit and withdrawal",
    "Distance and reset",
    "Not sure",
]
# One line of each stage's own suggestion.
SUGGESTION = {
    "Approach": "let the return be warm and unhurried",
    "Peak closeness": "/talk helps you plan that conversation",
    "Threshold": "not a verdict on you",
    "Pursuit and withdrawal": "a pause usually helps more than the next message",
    "Distance and reset": "settle in your own ways",
    "Not sure": "is your first pull toward more contact, or toward more space?",
}


async def test_main_path_stages_then_a_suggestion_then_chemistry(chat: Chat) -> None:
    assert "five stages" in texts(await chat.command("cycle"))
    shown = texts(await chat.press("Show me the stages"))
    out = await chat.press("Go on")
    shown += texts(out)
    for n, name in enumerate(STAGES[:5], start=1):
        assert f"{n}. {name}:" in shown
    assert out[-1].text == "Where are you two right now?"
    assert [c.label for c in chat.buttons()] == STAGES
    shown = texts(await chat.press("Threshold"))
    assert "reaching your limit" in shown and "noticing the dip" in shown
    assert "unpredictably hits harder" not in shown  # behind "Tell me more"
    assert [c.label for c in chat.buttons()] == [
        "Why it feels like chemistry",
        "What it costs over time",
        "Skip",
    ]
    out = await chat.press("Why it feels like chemistry")
    assert "unpredictably hits harder than steady warmth" in texts(out)
    assert "/cycle brings it back" in out[-1].text
    assert not out[-1].choices


@pytest.mark.parametrize("stage", STAGES)
async def test_each_stage_gets_its_own_suggestion_only(chat: Chat, stage: str) -> None:
    await chat.command("cycle")
    await chat.press("I know them")
    shown = texts(await chat.press(stage))
    assert SUGGESTION[stage] in shown
    for other, line in SUGGESTION.items():
        if other != stage:
            assert line not in shown


async def test_typing_a_stage_number_picks_that_stage(chat: Chat) -> None:
    await chat.command("cycle")
    await chat.press("I know them")
    shown = texts(await chat.say("4"))
    assert SUGGESTION["Pursuit and withdrawal"] in shown


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await chat.command("cycle"))
    assert "leaving out the relationship suggestions" in out
    assert "five stages" not in out and "Where are you two" not in out


async def test_what_the_loop_costs_each_side_over_time(chat: Chat) -> None:
    await chat.command("cycle")
    await chat.press("I know them")
    shown = texts(await chat.press("Pursuit and withdrawal"))
    assert "doubting their own worth" not in shown  # only when asked for
    out = await chat.press("What it costs over time")
    shown = texts(out)
    # Both sides, each with its own cost, and no one to blame.
    assert "The one who reaches can start doubting their own worth" in shown
    assert "The one who steps back can grow lonelier" in shown
    assert "No villain" in shown
    assert "/cycle brings it back" in out[-1].text

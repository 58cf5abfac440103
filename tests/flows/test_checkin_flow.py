"""/checkin: how settled today, any push-pull moment, then something small or nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.events import Outbound
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts


async def start_checkin(chat: Chat) -> list[Outbound]:
    """/checkin opens the check-in menu; "Check in now" starts the check-in itself."""
    await chat.command("checkin")
    return await chat.press("Check in now")


USER = UserKey("test", "u1")
HARD = "Sounds like a harder day"
NOTICED = "Thanks for noticing it"
STEADY = "Quieter stretches are worth noticing"


async def test_main_path_to_a_short_reflection_whose_words_are_not_kept(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    out = await start_checkin(chat)
    assert "How settled do you feel today?" in texts(out)
    assert [c.label for c in chat.buttons()] == [str(n) for n in range(11)]
    out = await chat.press("7")
    assert "push-pull moment since we last spoke" in texts(out)
    assert [c.label for c in chat.buttons()] == ["Yes", "No", "Not sure"]
    out = await chat.press("Yes")
    assert NOTICED in texts(out)
    assert [c.label for c in chat.buttons()] == [
        "A one-minute pause",
        "Where are we in the loop?",
        "A short reflection",
        "Nothing now",
    ]
    out = await chat.press("A short reflection")
    assert "what was your first move?" in texts(out)
    assert "I won't keep what you write" in texts(out)
    words = "I kept texting him after he went quiet at dinner"
    out = await chat.say(words)
    shown = texts(out)
    assert "what might your partner's body have been trying to settle" in shown
    assert "/checkin works any day" in out[-1].text
    async with store.session() as s:
        state = await s.load_state(USER, clock.now())
        exported = await s.export_user(USER)
    assert state.flow_id is None and state.variables == {}
    assert words not in repr(exported)
    async with store.engine.connect() as conn:
        kept = [tuple(r) for r in await conn.execute(sql("select node_id, value from journal"))]
    assert ("settled", "7") in kept and ("moment", "yes") in kept
    assert all(words not in str(value) for _, value in kept)


@pytest.mark.parametrize(
    ("rating", "moment", "shown"),
    [
        ("2", "Yes", HARD),
        ("3", "No", HARD),
        ("4", "Yes", NOTICED),
        ("8", "No", STEADY),
        ("5", "Not sure", STEADY),
    ],
)
async def test_the_reply_fits_the_day(chat: Chat, rating: str, moment: str, shown: str) -> None:
    await start_checkin(chat)
    await chat.press(rating)
    out = texts(await chat.press(moment))
    assert shown in out
    for other in {HARD, NOTICED, STEADY} - {shown}:
        assert other not in out


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        ("A one-minute pause", "pause for a minute"),
        ("Where are we in the loop?", "five stages"),
    ],
)
async def test_offers_hand_off_to_pause_and_cycle(chat: Chat, offer: str, expected: str) -> None:
    await start_checkin(chat)
    await chat.press("6")
    await chat.press("No")
    out = texts(await chat.press(offer))
    assert expected in out


async def test_nothing_now_ends_kindly(chat: Chat, store: SqlStore, clock: ManualClock) -> None:
    await start_checkin(chat)
    await chat.say("5")
    await chat.say("not sure")
    out = await chat.say("nothing")
    assert "Thanks for checking in" in texts(out)
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await start_checkin(chat))
    assert "leaving out the relationship suggestions" in out
    assert "How settled" not in out

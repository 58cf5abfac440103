"""/talk: plan a calm talk about the pattern, with a reminder carrying the opener."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")
OPENER = (
    '"Can we talk about something that keeps happening between us? Not the last argument, '
    "the loop we get into. I'd like to understand my part in it.\""
)


async def pending(store: SqlStore, clock: ManualClock) -> list[tuple[str, timedelta]]:
    async with store.session() as s:
        rows = await s.pending_followups(USER)
    return [(f.flow_id, f.due_at - clock.now()) for f in rows]


async def test_main_path_opener_parts_time_and_reminder(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    out = await chat.command("talk")
    shown = texts(out)
    assert "a calm moment, not mid-round" in shown
    assert "not to settle the last fight" in shown
    assert OPENER in [m.text for m in out]
    out = await chat.press("That works for me")
    shown = texts(out)
    assert "names your own part" in shown
    assert "When ___, I tend to ___, because underneath I'm afraid ___." in shown
    out = await chat.press("Show me examples")
    shown = texts(out)
    # A fill-in for each side, with no gendered pronouns, and listening after.
    assert "Someone who reaches might say" in shown
    assert "Someone who steps back" in shown
    assert not re.search(r"\b(he|she|his|her|him)\b", shown, re.IGNORECASE)
    assert "without correcting" in shown
    assert [c.label for c in chat.buttons()] == ["Tonight", "This weekend", "I'll pick a time"]
    await chat.press("Tonight")
    assert [c.label for c in chat.buttons()] == ["In an hour", "In 3 hours", "No thanks"]
    out = await chat.press("In an hour")
    assert "Done, I'll send it at 13:00." in texts(out)
    assert "your own move can still shift the loop" in out[-1].text
    assert await pending(store, clock) == [("talk_reminder", timedelta(hours=1))]

    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(minutes=59))
    assert await dispatcher.run_due() == 0
    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    assert OPENER in [m.text for m in messages]
    assert "its fear" in texts(messages)


async def test_rewording_skipping_examples_and_a_later_reminder(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("talk")
    out = texts(await chat.press("I'd say it differently"))
    assert "your own words will land better than mine" in out
    out = texts(await chat.press("Got it"))
    assert "Someone who reaches" not in out
    assert "When could you have the talk?" in out
    await chat.press("This weekend")
    assert [c.label for c in chat.buttons()] == ["Tomorrow, same time", "In 3 days", "No thanks"]
    await chat.press("In 3 days")
    assert await pending(store, clock) == [("talk_reminder", timedelta(days=3))]


@pytest.mark.parametrize("when", ["Tonight", "I'll pick a time"])
async def test_no_reminder_when_declined(
    chat: Chat, store: SqlStore, clock: ManualClock, when: str
) -> None:
    await chat.command("talk")
    await chat.press("That works for me")
    await chat.press("Got it")
    await chat.press(when)
    out = await chat.press("No thanks")
    assert "I'll send it" not in texts(out)
    assert "doesn't have to go perfectly" in texts(out)
    assert await pending(store, clock) == []


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await chat.command("talk"))
    assert "leaving out the relationship suggestions" in out
    assert "opener" not in out and "Can we talk" not in out


async def test_when_a_partner_will_not_engage(chat: Chat, store: SqlStore) -> None:
    await chat.command("talk")
    out = await chat.press("They won't talk about it")
    shown = texts(out)
    # One person's move still counts; a lasting refusal is information, no verdict.
    assert "One person changing their move still changes the loop" in shown
    assert "that tells you something too" in shown
    assert "yours to weigh" in shown and "/support" in shown
    for verdict in ("leave", "stay with", "break up", "should end"):
        assert verdict not in shown.lower()
    assert not out[-1].choices
    async with store.session() as s:
        assert await s.pending_followups(UserKey("test", "u1")) == []

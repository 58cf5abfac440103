"""talk_reminder: the opener sent back nearer the time of the talk."""

from __future__ import annotations

from datetime import timedelta

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import FollowUpStatus, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")


async def plan_talk_with_reminder_tomorrow(chat: Chat) -> None:
    await chat.command("talk")
    await chat.press("That works for me")
    await chat.press("Got it")
    await chat.press("I'll pick a time")
    await chat.press("Tomorrow, same time")


async def test_the_reminder_repeats_the_opener_and_ends(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await plan_talk_with_reminder_tomorrow(chat)
    opener = next(m.text for m in chat.seen if m.text.startswith('"Can we talk'))
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(days=1))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    assert "the opener you asked me to keep" in messages[0].text
    assert opener in [m.text for m in messages]
    assert "/talk has the rest" in texts(messages)
    assert messages[-1].text == opener  # last, so it is easy to copy
    assert all(not m.choices for m in messages)  # nothing to answer: it ends
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None


async def test_a_reminder_half_a_day_late_is_not_sent(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await plan_talk_with_reminder_tomorrow(chat)
    async with store.session() as s:
        [followup] = await s.pending_followups(USER)
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(days=1, hours=12, seconds=1))
    assert await dispatcher.run_due() == 1
    assert sender.sent == []
    async with store.session() as s:
        row = await s.get_followup(followup.id)
    assert row is not None and row.status is FollowUpStatus.MISSED

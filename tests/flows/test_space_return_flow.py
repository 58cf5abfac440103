"""space_return: the nudge at the time someone said they'd come back."""

from __future__ import annotations

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
NOT_YET = "Still stirred up is okay"
READY = "this may be a good moment to go back"


async def ask_for_space_in_30_minutes(chat: Chat) -> None:
    await chat.command("space")
    await chat.press("In 30 minutes")
    await chat.press("Simple and clear")
    await chat.press("Yes, remind me")


async def deliver(chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock) -> str:
    """Let the reminder come due; what the person sees arrives in their chat."""
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(minutes=30))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    chat.seen.extend(messages)
    return texts(messages)


@pytest.mark.parametrize(
    ("rating", "shown", "hidden"),
    [("2", NOT_YET, READY), ("3", NOT_YET, READY), ("4", READY, NOT_YET), ("9", READY, NOT_YET)],
)
async def test_the_nudge_fits_how_settled_they_feel(
    chat: Chat,
    engine: Engine,
    store: SqlStore,
    clock: ManualClock,
    rating: str,
    shown: str,
    hidden: str,
) -> None:
    await ask_for_space_in_30_minutes(chat)
    arrived = await deliver(chat, engine, store, clock)
    assert "It's the time you said you'd come back" in arrived
    assert "how settled do you feel now?" in arrived
    out = texts(await chat.press(rating))
    assert shown in out and hidden not in out
    assert "easier to trust" in out
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None


async def test_a_reminder_for_someone_flagged_unsafe_since_is_cancelled_quietly(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_space_in_30_minutes(chat)
    async with store.session() as s:
        profile = await s.load_profile(USER)
        await s.save_profile(USER, replace(profile, unsafe=True))
    sender = RecordingSender()
    clock.advance(timedelta(minutes=30))
    assert await Dispatcher(store, engine, {"test": sender}, clock).run_due() == 1
    assert sender.sent == []
    async with store.session() as s:
        assert await s.pending_followups(USER) == []

"""Concurrent events on one store apply one after another: nothing lost, no errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialogs.clock import ManualClock
from dialogs.store import ConversationState, UserKey
from storage import open_store
from tests.conftest import Chat


async def test_concurrent_read_modify_write_loses_nothing(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", clock=ManualClock())
    user = UserKey("test", "same-person")
    now = ManualClock().now()

    async def bump() -> None:
        async with store.session() as s:
            state = await s.load_state(user, now)
            await asyncio.sleep(0)  # give every other task the chance to interleave
            count = int(state.variables.get("n", 0))
            await s.save_state(user, ConversationState("f", "s", {"n": count + 1}), now)

    try:
        await asyncio.gather(*(bump() for _ in range(25)))
        async with store.session() as s:
            assert (await s.load_state(user, now)).variables["n"] == 25
    finally:
        await store.close()


async def test_a_burst_of_events_from_one_person_all_get_answers(chat: Chat) -> None:
    await chat.command("pause")
    replies = await asyncio.gather(*(chat.say("hello?") for _ in range(10)))
    assert all(r and "went wrong" not in r[0].text for r in replies)

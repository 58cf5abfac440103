"""Long polling confirms an update only once it is handled (bot.telegram.confirm): a
process killed while handling it leaves it with Telegram for the next one."""

from __future__ import annotations

import asyncio

import pytest

from dialogs.delivery import Reply
from dialogs.events import Inbound
from tests.telegram.conftest import Harness

SLOW, QUICK = 4801, 4802


async def test_an_update_in_hand_is_not_confirmed_and_not_handled_twice(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tg.fake
    await tg.onboard(SLOW)
    await tg.onboard(QUICK)
    entered, release = asyncio.Event(), asyncio.Event()
    handled: list[str] = []
    real = tg.guide.engine.handle

    async def handle(inbound: Inbound) -> Reply:
        handled.append(inbound.event_id)
        if inbound.address.user_id == str(SLOW):
            entered.set()
            await release.wait()
        return await real(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    slow_update = fake.push_message(SLOW, "/help")
    await asyncio.wait_for(entered.wait(), 5)
    asked_before = len(fake.ok_calls("getUpdates"))
    # While it is in hand, someone else is answered, and every ask keeps it unconfirmed.
    quick = tg.person(QUICK)
    await quick.say("/help", until="Tap a button")
    await fake.wait_for(lambda: len(fake.ok_calls("getUpdates")) > asked_before + 1)
    offsets = [c.params.get("offset") for c in fake.ok_calls("getUpdates")[asked_before:]]
    assert offsets and all(o <= slow_update for o in offsets), offsets
    assert fake.handed_out[slow_update] >= 2  # asked for again, never handled again
    release.set()
    await tg.person(SLOW).replies_after(0, "Tap a button")
    # Handled now: a later ask confirms it.
    await fake.wait_for(
        lambda: any(c.params.get("offset", 0) > slow_update for c in fake.ok_calls("getUpdates"))
    )
    assert handled.count(str(slow_update)) == 1

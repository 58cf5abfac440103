"""One person's flood does not slow anyone else, on the real PTB Application against
the fake Bot API (bot.telegram.processor, bot.person_queue)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from dialogs.content import load_content
from dialogs.events import Inbound, Outbound
from tests.conftest import CONTENT_DIR
from tests.telegram.conftest import Harness, start_harness, stop_harness
from tests.telegram.fake_bot_api import FakeBotAPI

CONTENT = load_content(CONTENT_DIR)
SLOW_DOWN = CONTENT.copy.slow_down
_SOS = CONTENT.commands.get("sos")
assert _SOS is not None and _SOS.flow is not None
# The first words /sos answers with, before any template field.
SOS_REPLY = CONTENT.flows[_SOS.flow].steps[0].text[0].split("{")[0]
CRISIS_REPLY = CONTENT.flows["crisis"].steps[0].text[0].split("{")[0]
FLOODER, OTHER = 6101, 6102


def count_handled(h: Harness, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> Counter[str]:
    """Counts the events the engine is given, per user; `delay` slows each one."""
    handled: Counter[str] = Counter()
    real = h.guide.engine.handle

    async def handle(inbound: Inbound) -> list[Outbound]:
        handled[inbound.address.user_id] += 1
        if delay and inbound.text is not None:
            await asyncio.sleep(delay)
        return await real(inbound)

    monkeypatch.setattr(h.guide.engine, "handle", handle)
    return handled


def texts(fake: FakeBotAPI, chat: int) -> list[str]:
    return [m.get("text", "") for m in fake.bot_messages(chat)]


async def test_300_messages_from_one_person_do_not_delay_anothers_sos(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tg.fake
    await tg.onboard(FLOODER)
    await tg.onboard(OTHER)
    handled = count_handled(tg, monkeypatch)
    counted = tg.guide.engine.handle
    flood_waited: list[bool] = []

    def sos_out() -> bool | None:
        return any(SOS_REPLY in t for t in texts(fake, OTHER)) or None

    async def handle(inbound: Inbound) -> list[Outbound]:
        # The flood is held in the engine until /sos has been answered: were /sos
        # queued behind it, neither would move and the wait below would time out.
        if inbound.address.user_id == str(FLOODER):
            flood_waited.append(not sos_out())
            await fake.wait_for(sos_out, within=20.0)
        return await counted(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    for n in range(300):
        fake.push_message(FLOODER, f"hello again {n}")
    await fake.wait_for(lambda: flood_waited or None)
    fake.push_message(OTHER, "/sos")
    await fake.wait_for(sos_out, within=20.0)
    assert flood_waited[0] is True  # the flood really was waiting on the answer
    # The flood itself: at most the burst (20) went through the engine, one by one,
    # and the person heard once, kindly, that the rest was let go.
    await fake.wait_for(lambda: SLOW_DOWN in texts(fake, FLOODER) or None)
    await asyncio.sleep(0.2)
    assert handled[str(FLOODER)] <= 20
    assert texts(fake, FLOODER).count(SLOW_DOWN) == 1
    processor = tg.adapter._bot_app().update_processor
    assert processor.current_concurrent_updates <= 1


async def test_a_crisis_message_jumps_the_persons_own_queue(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tg.fake
    await tg.onboard(FLOODER)
    order: list[str] = []
    gate = asyncio.Event()
    real = tg.guide.engine.handle

    async def handle(inbound: Inbound) -> list[Outbound]:
        order.append(inbound.text or "")
        if inbound.text == "are you there 0":
            await gate.wait()  # the first message is still being handled...
        return await real(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    for n in range(15):
        fake.push_message(FLOODER, f"are you there {n}")
    await fake.wait_for(lambda: order or None)
    queue = tg.adapter._bot_app().update_processor.queue  # type: ignore[attr-defined]
    await fake.wait_for(lambda: queue.waiting(FLOODER) == 14 or None)
    # ...while fourteen wait behind it, when the crisis message arrives.
    fake.push_message(FLOODER, "I want to kill myself")
    await fake.wait_for(lambda: queue.waiting(FLOODER) == 15 or None)
    gate.set()
    await fake.wait_for(lambda: any(CRISIS_REPLY in t for t in texts(fake, FLOODER)) or None)
    await fake.wait_for(lambda: len(order) >= 3 or None)
    # Taken after the one message running, not after the fourteen waiting.
    assert order[:3] == ["are you there 0", "I want to kill myself", "are you there 1"], order


async def test_a_flooder_after_the_window_is_heard_again(
    fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    from bot.telegram import processor as processor_module

    real_init = processor_module.PerPersonProcessor.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **{**kwargs, "now": lambda: now[0]})

    monkeypatch.setattr(processor_module.PerPersonProcessor, "__init__", init)
    h = await start_harness(fake, monkeypatch, flood_messages=3, flood_seconds=10.0)
    try:
        await h.onboard(FLOODER)
        handled = count_handled(h, monkeypatch)
        for n in range(6):
            fake.push_message(FLOODER, f"one more {n}")
        await fake.wait_for(lambda: SLOW_DOWN in texts(fake, FLOODER) or None)
        # The three taken may still be on their way through the engine on a busy
        # machine: wait for them, then give a fourth the chance to (wrongly) follow.
        await fake.wait_for(lambda: handled[str(FLOODER)] >= 3 or None)
        await asyncio.sleep(0.2)
        assert handled[str(FLOODER)] == 3
        now[0] += 11  # the window has passed: new messages are taken again
        fake.push_message(FLOODER, "/help")
        await fake.wait_for(lambda: handled[str(FLOODER)] == 4 or None)
    finally:
        await stop_harness(h)

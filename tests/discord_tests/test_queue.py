"""One person's flood does not slow anyone else on Discord (bot.discord.queue), with
discord.py's real dispatch under SimCord."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import discord
import pytest

from dialogs.content import load_content
from dialogs.events import Inbound, Outbound
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import SIMULATED, World, texts

pytestmark = SIMULATED
CONTENT = load_content(CONTENT_DIR)
SLOW_DOWN = CONTENT.copy.slow_down
_SOS_FLOW = CONTENT.flows[CONTENT.commands.get("sos").flow]  # type: ignore[union-attr,index]
SOS_REPLY = _SOS_FLOW.steps[0].text[0].split("{")[0]  # type: ignore[union-attr]
CRISIS_REPLY = CONTENT.flows["crisis"].steps[0].text[0].split("{")[0]  # type: ignore[union-attr]


def dms(who: Any) -> list[discord.Message]:
    return [m for m in who.user.dm_channel.history() if m.author.bot]


def flood_dms(world: World, who: Any, texts: list[str]) -> None:
    """DMs from `who`, all at once: created in the simulated Discord without waiting
    for the bot between them (SimCord's own send_dm waits for the bot to settle)."""
    channel = world.env.backend.get_dm_channel(who.id)
    for text in texts:
        world.env.backend.create_message(channel.id, who.id, text)


def instrument(
    world: World, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0
) -> tuple[Counter[str], dict[str, float]]:
    """Counts the engine's events per person, and when each person's reply was last
    handed to Discord (time.perf_counter)."""
    handled: Counter[str] = Counter()
    replied: dict[str, float] = {}
    engine, adapter = world.guide.engine, world.adapter
    real_handle, real_reply = engine.handle, adapter._reply

    async def handle(inbound: Inbound) -> list[Outbound]:
        handled[inbound.address.user_id] += 1
        if delay and inbound.text is not None:
            await asyncio.sleep(delay)
        return await real_handle(inbound)

    async def reply(interaction: discord.Interaction, replies: Any, **kwargs: Any) -> None:
        await real_reply(interaction, replies, **kwargs)
        replied[str(interaction.user.id)] = time.perf_counter()

    monkeypatch.setattr(engine, "handle", handle)
    monkeypatch.setattr(adapter, "_reply", reply)
    return handled, replied


async def test_300_dms_from_one_person_do_not_delay_anothers_sos(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled, replied = instrument(world, monkeypatch)
    # SimCord waits for the bot to go idle after each action: give the flood's tail
    # time on a loaded machine (the /sos answer itself is timed separately below).
    monkeypatch.setattr(world.env, "settle_timeout", 30.0)
    flood_dms(world, world.alice, [f"hello again {n}" for n in range(300)])
    await asyncio.sleep(0)  # the DMs are on their way in
    started = time.perf_counter()
    said = await world.slash(world.bob, "sos")
    answered = replied[str(world.bob.id)] - started
    await world.env.settle()
    print(f"DISCORD_SOS_ANSWERED {answered:.3f}")
    assert SOS_REPLY in texts(said)
    assert answered < 1.0, f"/sos answered after {answered:.2f} s"
    assert handled[str(world.alice.id)] <= 20
    assert texts(dms(world.alice)).count(SLOW_DOWN) == 1


async def test_a_crisis_dm_jumps_the_persons_own_queue(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    gate = asyncio.Event()
    real_handle = world.guide.engine.handle

    async def handle(inbound: Inbound) -> list[Outbound]:
        order.append(inbound.text or "")
        if inbound.text == "are you there 0":
            await gate.wait()  # the first message is still being handled...
        return await real_handle(inbound)

    monkeypatch.setattr(world.guide.engine, "handle", handle)
    flood_dms(world, world.alice, [f"are you there {n}" for n in range(15)])
    await until(lambda: order == ["are you there 0"])
    # ...while fourteen wait behind it, when the crisis message arrives.
    flood_dms(world, world.alice, ["I want to kill myself"])
    await until(lambda: world.adapter.queue.people.waiting(world.alice.id) == 15)
    gate.set()
    await world.env.settle(timeout=30)
    assert order[:3] == ["are you there 0", "I want to kill myself", "are you there 1"], order
    assert len(order) == 16
    assert CRISIS_REPLY in texts(dms(world.alice))


async def until(check: Any, rounds: int = 1000) -> None:
    """Let the event loop run until `check()` holds (no clock involved)."""
    for _ in range(rounds):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_a_flood_of_slash_commands_costs_no_discord_calls_past_the_notice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled, _ = instrument(world, monkeypatch)
    answered = [await world.slash(world.alice, "help") for _ in range(40)]
    assert handled[str(world.alice.id)] == 20
    notices = [m for r in answered for m in r if m.content == SLOW_DOWN]
    assert len(notices) == 1 and notices[0].ephemeral

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
_SOS = CONTENT.commands.get("sos")
assert _SOS is not None and _SOS.flow is not None
SOS_REPLY = CONTENT.flows[_SOS.flow].steps[0].text[0].split("{")[0]
CRISIS_REPLY = CONTENT.flows["crisis"].steps[0].text[0].split("{")[0]


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
    # Alice's flood is held inside the engine until Bob's /sos answer has been handed
    # to Discord: were Bob queued behind Alice, nothing would move and the /sos
    # answer would never come (a deadlock, not a slow machine, fails this test).
    handled, replied = instrument(world, monkeypatch)
    bob = str(world.bob.id)
    sos_answered = asyncio.Event()
    alice_waited: list[bool] = []
    engine, adapter = world.guide.engine, world.adapter
    counted_handle, timed_reply = engine.handle, adapter._reply

    async def handle(inbound: Inbound) -> list[Outbound]:
        if inbound.address.user_id == str(world.alice.id):
            alice_waited.append(not sos_answered.is_set())
            await asyncio.wait_for(sos_answered.wait(), timeout=20)
        return await counted_handle(inbound)

    async def reply(interaction: discord.Interaction, replies: Any, **kwargs: Any) -> None:
        await timed_reply(interaction, replies, **kwargs)
        if bob in replied:
            sos_answered.set()

    monkeypatch.setattr(engine, "handle", handle)
    monkeypatch.setattr(adapter, "_reply", reply)
    monkeypatch.setattr(world.env, "settle_timeout", 30.0)
    flood_dms(world, world.alice, [f"hello again {n}" for n in range(300)])
    await until(lambda: alice_waited)  # the flood is being handled, and held
    said = await world.slash(world.bob, "sos")
    await world.env.settle()
    assert SOS_REPLY in texts(said)
    assert alice_waited[0] is True  # Alice's first DM really was waiting on Bob's answer
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

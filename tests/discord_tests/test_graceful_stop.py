"""A graceful stop on Discord (`DiscordAdapter.stop_receiving`, called by `pausecheck
run` on SIGTERM before the outbox finishes its sends): an interaction taken before it
still gets its reply; one arriving after is told kindly, within Discord's 3 seconds,
to try again, and never reaches the engine, unless it is a crisis or danger signal,
which is answered as ever; sending still works until `stop`.

The engine in flight is slow on SimCord's virtual clock (as in
test_slow_and_failing.py), so it is still running when the stop begins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.discord.intake import Intake
from dialogs.content import load_content
from dialogs.events import Address, Outbound
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import SIMULATED, World, sent_by, texts
from tests.discord_tests.test_queue import CRISIS_REPLY, SOS_REPLY
from tests.discord_tests.test_slow_and_failing import SLOW, slow_engine

pytestmark = SIMULATED
RESTARTING = load_content(CONTENT_DIR).copy.restarting


def bot_dms(who: Any) -> list[str]:
    return [m.content for m in who.user.dm_channel.history() if m.author.bot]


async def test_an_interaction_in_flight_is_answered_and_a_late_one_is_refused_kindly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = slow_engine(world, monkeypatch)
    in_flight = await world.alice.slash(world.channel, "pause")
    assert in_flight.deferred and len(calls) == 1 and in_flight.followups == []

    stopping = asyncio.create_task(world.adapter.stop_receiving())
    await asyncio.sleep(0)
    # Still waiting for alice's event.
    assert not stopping.done()

    late = await world.bob.slash(world.channel, "pause")
    assert late.response is not None and late.response.content == RESTARTING
    assert late.ephemeral and not late.deferred
    assert len(calls) == 1  # bob's never reached the engine

    await world.env.advance_time(SLOW)
    await asyncio.wait_for(stopping, timeout=5)
    assert "pause for a minute" in texts(sent_by(in_flight))

    # Sending still works until `stop` (the outbox finishes its sends then).
    await world.adapter.send(
        Address("discord", str(world.alice.id), str(world.alice.id), is_private=True),
        [Outbound("a check-in")],
    )
    await world.env.settle()
    assert bot_dms(world.alice)[-1] == "a check-in"


async def test_a_button_press_and_a_dm_after_the_stop_are_refused_kindly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = sent_by(await world.alice.slash(world.channel, "pause"))[-1]
    await world.adapter.stop_receiving()
    calls = slow_engine(world, monkeypatch)

    pressed = await world.alice.click(shown, label="Done")
    assert pressed.response is not None and pressed.response.content == RESTARTING
    assert pressed.ephemeral

    await world.bob.send_dm("hello")
    assert bot_dms(world.bob) == [RESTARTING]
    assert calls == []


async def test_a_crisis_signal_after_the_stop_is_answered_as_ever(world: World) -> None:
    # No other worker can answer this interaction or DM: refusing it would leave
    # someone in danger with "try again in a minute".
    await world.adapter.stop_receiving()
    said = await world.bob.slash(world.channel, "sos")
    assert RESTARTING not in texts(sent_by(said))
    assert SOS_REPLY in texts(sent_by(said))

    await world.alice.send_dm("I want to kill myself")
    await world.env.settle()
    answered = bot_dms(world.alice)
    assert RESTARTING not in answered
    assert any(CRISIS_REPLY in text for text in answered)


async def test_the_wait_for_the_events_in_hand_is_bounded() -> None:
    # An event taken whose engine never returns: the stop goes on without it, and
    # says how many it left.
    intake = Intake(grace=0.05)
    with intake.taken():
        assert await asyncio.wait_for(intake.close(), timeout=5) == 1
    assert not intake.open

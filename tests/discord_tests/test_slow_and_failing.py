"""A slow or failing engine behind a slash command or a button press: the person is
acknowledged within Discord's 3 seconds and always hears back, never left on
"thinking..." or on a pressed button with no reply.

The slow engine waits on SimCord's virtual clock (`env.external_wait`), so four
seconds pass without a real four-second sleep: `advance_time(4)` moves the simulated
Discord past its acknowledgement deadline, which an interaction acknowledged only
after the engine had run would miss (Discord answers such a late response with
10062, Unknown Interaction)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dialogs.content import load_content
from dialogs.events import Inbound
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import SIMULATED, World, labels, sent_by, texts, with_buttons

pytestmark = SIMULATED
APOLOGY = load_content(CONTENT_DIR).copy.error_apology
SLOW = 4.0


def slow_engine(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine takes SLOW seconds (simulated) per event; returns the log of calls."""
    calls: list[str] = []
    real = world.guide.engine.handle

    async def handle(inbound: Inbound) -> Any:
        calls.append(inbound.event_id)
        await world.env.external_wait(asyncio.sleep(SLOW), reason="a slow engine")
        return await real(inbound)

    monkeypatch.setattr(world.guide.engine, "handle", handle)
    return calls


def failing_engine(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(inbound: Inbound) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(world.guide.engine, "handle", handle)


async def test_a_slow_engine_behind_a_slash_command_is_acknowledged_then_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = slow_engine(world, monkeypatch)
    result = await world.alice.slash(world.channel, "pause")
    # Acknowledged at once ("thinking..."), the engine still at work.
    assert result.acknowledged and result.deferred and result.ephemeral
    assert len(calls) == 1 and result.followups == []

    await world.env.advance_time(SLOW)
    assert "pause for a minute" in texts(sent_by(result))
    assert all(m.ephemeral for m in sent_by(result))


async def test_a_slow_engine_behind_a_button_is_acknowledged_then_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = with_buttons(await world.slash(world.alice, "pause"))
    calls = slow_engine(world, monkeypatch)
    result = await world.alice.click(shown, label="Done")
    assert result.acknowledged and len(calls) == 1 and result.followups == []

    await world.env.advance_time(SLOW)
    assert "How loud is it inside right now?" in texts(result.followups)
    assert (await world.state(world.alice)).node_id == "rate"


async def test_a_failing_engine_behind_a_slash_command_gets_an_apology(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_engine(world, monkeypatch)
    result = await world.alice.slash(world.channel, "pause")
    said = sent_by(result)
    # The "thinking..." line is replaced by the apology, for her eyes only.
    assert result.response is not None and result.response.content == APOLOGY
    assert texts(said) == APOLOGY and all(m.ephemeral for m in said)
    assert world.channel.history() == []


async def test_a_failing_engine_behind_a_button_gets_an_apology_and_the_buttons_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = with_buttons(await world.slash(world.alice, "pause"))
    failing_engine(world, monkeypatch)
    result = await world.alice.click(shown, label="Done")
    assert texts(result.followups) == APOLOGY
    assert all(m.ephemeral for m in result.followups)
    # Nothing was saved, so the choice can be made again.
    assert result.response is not None and labels(result.response) == [
        "Done",
        "Skip the breathing",
    ]
    monkeypatch.undo()
    again = await world.click(world.alice, result.response, "Done")
    assert "How loud is it inside right now?" in texts(again)


async def test_a_failing_engine_behind_a_dm_gets_an_apology(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_engine(world, monkeypatch)
    await world.alice.send_dm("hello")
    said = [m for m in world.alice.user.dm_channel.history() if m.author.bot]
    assert texts(said) == APOLOGY

"""Buttons outlive the process that sent them, and only work for their person."""

from __future__ import annotations

import discord

from bot.discord.adapter import DiscordAdapter
from dialogs.content import load_content
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import (
    SIMULATED,
    World,
    components,
    labels,
    texts,
    user_key,
    with_buttons,
)

pytestmark = SIMULATED
NOT_YOURS = load_content(CONTENT_DIR).copy.not_your_button


async def test_a_button_pressed_after_a_restart_still_works(world: World) -> None:
    old = with_buttons(await world.slash(world.alice, "pause"))

    # A new process: a new adapter and client over the same store, nothing carried over.
    fresh = DiscordAdapter(world.guide, world.guide.settings, clock=world.clock)
    await world.env.restart_bot(fresh.make_client())
    assert fresh.client is not None and fresh.client is world.env.bot

    said = await world.click(world.alice, old, "Done")
    assert "How loud is it inside right now?" in texts(said)
    assert (await world.state(world.alice)).node_id == "rate"


async def test_a_stale_button_after_a_restart_is_answered_kindly(world: World) -> None:
    first = with_buttons(await world.slash(world.alice, "pause"))
    # An older message that still shows its buttons (copied, since pressing removes them).
    copy = await _public_copy(world, first)
    await world.click(world.alice, first, "Done")
    before = await world.state(world.alice)
    await world.env.restart_bot(
        DiscordAdapter(world.guide, world.guide.settings, clock=world.clock).make_client()
    )

    said = await world.click(world.alice, copy, "Skip the breathing")
    assert "earlier step" in texts(said)
    after = await world.state(world.alice)
    assert (after.node_id, after.turn) == (before.node_id, before.turn)


async def test_a_press_by_someone_else_is_refused_politely_and_changes_nothing(
    world: World,
) -> None:
    mine = with_buttons(await world.slash(world.alice, "pause"))
    before = await world.state(world.alice)
    # Replies are ephemeral, so bob cannot normally see alice's buttons; show him a copy.
    shown = await _public_copy(world, mine)

    result = await world.bob.click(shown, label="Done")
    assert result.ephemeral
    assert result.response is not None and result.response.content == NOT_YOURS
    assert result.followups == []
    assert labels(shown) == ["Done", "Skip the breathing"]  # still there for alice

    after = await world.state(world.alice)
    assert (after.node_id, after.turn, after.variables) == (
        before.node_id,
        before.turn,
        before.variables,
    )
    assert (await world.state(world.bob)).flow_id is None
    async with world.guide.store.session() as s:
        assert await s.pending_followups(user_key(world.bob)) == []
    # alice's own press still works: the refusal used nothing up.
    said = await world.click(world.alice, mine, "Done")
    assert "How loud is it inside right now?" in texts(said)


async def _public_copy(world: World, message: object) -> discord.Message:
    """The same buttons in a message everyone in the channel can see and press."""
    view = discord.ui.View(timeout=None)
    for row in components(message):  # type: ignore[arg-type]
        for c in row["components"]:
            view.add_item(discord.ui.Button(label=c["label"], custom_id=c["custom_id"]))
    view.stop()  # only the registered pattern may answer, as after a restart
    client = world.env.bot
    channel = client.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    return await channel.send("(copy)", view=view)

"""The slash commands Discord gets are the one command list, with its descriptions."""

from __future__ import annotations

import discord

from bot.discord.adapter import DiscordAdapter
from bot.discord.client import GuideClient
from tests.discord_tests.conftest import SIMULATED, World, discord_settings, texts

pytestmark = SIMULATED


def _client(world: World) -> GuideClient:
    # SimCord types the bot it runs as a plain discord.Client; ours carries the tree.
    bot = world.env.bot
    assert isinstance(bot, GuideClient)
    return bot


async def test_every_menu_command_is_synced_with_its_description(world: World) -> None:
    menu = {c.name: c.description for c in world.guide.content.commands.menu()}
    assert {"pause", "role", "cycle", "space", "talk", "checkin", "schedule", "support"} <= set(
        menu
    )
    assert {"sos", "privacy", "export", "forget", "about", "help", "stop"} <= set(menu)

    synced = await _client(world).tree.fetch_commands()  # read back from (simulated) Discord
    assert {c.name: c.description for c in synced} == menu
    assert set(world.alice.available_commands(world.channel)) == set(menu)


async def test_stop_reflect_and_link_take_an_optional_word_and_the_others_take_none(
    world: World,
) -> None:
    for command in await _client(world).tree.fetch_commands():
        if command.name in ("stop", "reflect", "link"):
            [option] = command.options
            assert isinstance(option, discord.app_commands.Argument)
            assert (option.name, option.type, option.required) == (
                "what",
                discord.AppCommandOptionType.string,
                False,
            )
        else:
            assert command.options == [], command.name


async def test_stop_checkins_stops_only_the_checkins(world: World) -> None:
    said = await world.slash(world.alice, "stop", what="checkins")
    assert "no more regular check-ins" in texts(said)
    said = await world.slash(world.alice, "stop")
    assert "Nothing is running right now" in texts(said)


async def test_every_command_answers_in_time_and_only_to_its_person(world: World) -> None:
    for spec in world.guide.content.commands.menu():
        result = await world.alice.slash(world.channel, spec.name)
        assert result.acknowledged and result.ephemeral, spec.name
        assert result.response is not None and result.response.content, spec.name
    assert world.channel.history() == []


async def test_with_a_guild_id_the_commands_are_synced_to_that_guild(world: World) -> None:
    settings = discord_settings(discord_guild_id=world.guild.id)
    fresh = DiscordAdapter(world.guide, settings, clock=world.clock)
    await world.env.restart_bot(fresh.make_client())

    synced = await fresh.client.tree.fetch_commands(guild=discord.Object(world.guild.id))  # type: ignore[union-attr]
    assert {c.name for c in synced} == {c.name for c in world.guide.content.commands.menu()}
    said = await world.slash(world.alice, "pause")
    assert "pause for a minute" in texts(said)


async def test_a_restart_with_the_same_commands_leaves_them_as_discord_has_them(
    world: World,
) -> None:
    """What Discord answers for a command (ids, versions, defaults filled in) counts
    as the same command: a restart does not put the list again."""

    def puts() -> int:
        return sum(1 for r in world.env.http_requests if r.method == "PUT")

    before = puts()
    fresh = DiscordAdapter(world.guide, world.guide.settings, clock=world.clock)
    await world.env.restart_bot(fresh.make_client())
    assert puts() == before
    said = await world.slash(world.alice, "help")
    assert "/pause" in texts(said)

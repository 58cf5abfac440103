"""A simulated Discord around the real adapter, engine, content and store.

SimCord (a pytest plugin) replaces discord.py's two network seams, the REST client and
the gateway, with an in-memory Discord; everything between them is discord.py running
unmodified: the slash command tree, `DynamicItem` dispatch, ephemeral visibility and
the interaction lifecycle (including Discord's 3-second acknowledgement deadline).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import discord
import pytest
import simcord

from bot.app import Guide, open_guide
from bot.config import Settings
from bot.discord.adapter import DiscordAdapter
from dialogs.clock import ManualClock
from dialogs.events import Address
from dialogs.store import ConversationState, Profile, UserKey
from tests.conftest import MEMORY_URL, onboard

# What a message the bot sent looks like to a test: SimCord's result or a plain message.
Sent = simcord.ResponseMessage | discord.Message


def discord_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": MEMORY_URL,
        "timezone": "Europe/London",
        "discord_bot_token": "never-used-offline",
        "discord_guild_id": None,
        "discord_rate": None,
    }
    values.update(changes)
    return Settings(_env_file=None, **values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def guide(clock: ManualClock) -> AsyncIterator[Guide]:
    g = await open_guide(discord_settings(), clock)
    yield g
    await g.close()


@pytest.fixture
async def adapter(guide: Guide, clock: ManualClock) -> DiscordAdapter:
    a = DiscordAdapter(guide, guide.settings, clock=clock)
    await guide.add_platform("discord", a)
    return a


@pytest.fixture
def simcord_bot(adapter: DiscordAdapter) -> discord.Client:
    """The client SimCord runs (its `simcord_env` fixture logs it in and connects it)."""
    return adapter.make_client()


# For every test module: no privileged intent is switched on in the simulated developer
# portal, so connecting fails if the adapter asks for one.
SIMULATED = pytest.mark.simcord(approved_intents=discord.Intents.none())


@dataclass
class World:
    env: simcord.Env
    guide: Guide
    clock: ManualClock
    adapter: DiscordAdapter
    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    alice: simcord.MemberActor
    bob: simcord.MemberActor

    async def slash(
        self, who: simcord.MemberActor, name: str, **options: Any
    ) -> list[simcord.ResponseMessage]:
        """Run a slash command in the server channel; what the bot answered."""
        return sent_by(await who.slash(self.channel, name, **options))

    async def click(self, who: Any, message: Sent, label: str) -> list[simcord.ResponseMessage]:
        """Press a button; the new messages (the pressed one is only edited)."""
        result: simcord.InteractionResult = await who.click(message, label=label)
        return result.followups

    async def state(self, who: Any) -> ConversationState:
        async with self.guide.store.session() as s:
            return await s.load_state(user_key(who), self.clock.now())

    async def profile(self, who: Any) -> Profile:
        async with self.guide.store.session() as s:
            return await s.load_profile(user_key(who))


def user_key(who: Any) -> UserKey:
    return UserKey("discord", str(who.id))


def sent_by(result: simcord.InteractionResult) -> list[simcord.ResponseMessage]:
    """Everything an interaction's answer put on screen: the deferred response (which
    the first follow-up fills in) and the follow-ups after it."""
    first = [result.response] if result.response is not None else []
    return [*first, *result.followups]


def texts(messages: Sequence[Sent]) -> str:
    return "\n".join(m.content for m in messages)


def labels(message: Sent) -> list[str]:
    return [c["label"] for row in components(message) for c in row["components"]]


def components(message: Sent) -> list[dict[str, Any]]:
    if isinstance(message, discord.Message):
        return [c.to_dict() for c in message.components]  # type: ignore[misc]
    return message.components


def with_buttons(messages: Sequence[Sent]) -> Sent:
    for message in reversed(messages):
        if components(message):
            return message
    raise AssertionError(f"no buttons in {texts(messages)!r}")


PAUSE_PATH = [
    ("Done", "How loud is it inside right now?"),
    ("7", "What set it off?"),
    ("Silence", "What does it want to do?"),
    ("Reach out more", "Does that fit, even a little?"),
    ("It fits", "What would help most right now?"),
    ("Settle and wait a set time", "Want me to check on you later?"),
    ("In 20 minutes", "Done, I'll check in at"),
]


async def walk_pause(world: World, who: simcord.MemberActor | None = None) -> list[str]:
    """/pause in the channel, then the buttons down to a follow-up in 20 minutes;
    all that was said."""
    who = who or world.alice
    said = await world.slash(who, "pause")
    seen = [texts(said)]
    for label, expected in PAUSE_PATH:
        said = await world.click(who, with_buttons(said), label)
        assert expected in texts(said), (label, texts(said))
        seen.append(texts(said))
    return seen


@pytest.fixture
async def world(
    simcord_env: simcord.Env, guide: Guide, clock: ManualClock, adapter: DiscordAdapter
) -> World:
    env = simcord_env
    guild = env.create_guild(name="Couples Support")
    channel = guild.create_text_channel("general")
    alice = guild.add_member(env.create_user("alice"))
    bob = guild.add_member(env.create_user("bob"))
    for member in (alice, bob):
        await onboard(guide.store, clock, Address("discord", str(member.id), str(channel.id)))
    return World(env, guide, clock, adapter, guild, channel, alice, bob)

"""The discord.py side of the Discord adapter: the client, its slash command tree and
the choice buttons.

Buttons are `DynamicItem`s registered on the client at every start, so a button on any
message the guide ever sent (before a restart, or weeks ago) is dispatched by pattern:
nothing about a sent message is kept in memory. Two kinds:

- `pc:<user id>:<choice>` on a message for one person: the custom_id names that
  person, so nobody else can press it on their behalf;
- `pg:<choice>` on a post for a whole channel (a group reflection's Join): anyone who
  sees it may press it, and the press is theirs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.discord.identify import IdentifyGate
from bot.discord.render import MAX_BUTTONS, button_label
from bot.discord.sync import sync_if_changed
from dialogs.events import Choice, Command

log = logging.getLogger(__name__)

# Discord allows 100 characters; "pc:" + a snowflake (at most 20 digits) + ":" + a
# Choice.id (at most 64 bytes, the engine's payload limit) is at most 88.
MAX_CUSTOM_ID = 100
CUSTOM_ID_TEMPLATE = r"pc:(?P<user>[0-9]{1,20}):(?P<choice>.+)"
GROUP_ID_TEMPLATE = r"pg:(?P<choice>.+)"


class GuideHandler(Protocol):
    """What the adapter does with what the client receives."""

    async def on_command(self, interaction: discord.Interaction, command: Command) -> None: ...

    async def on_choice(self, interaction: discord.Interaction, choice_id: str) -> None: ...

    async def on_group_choice(self, interaction: discord.Interaction, choice_id: str) -> None: ...

    async def on_foreign_press(self, interaction: discord.Interaction) -> None: ...

    async def on_direct_message(self, message: discord.Message, shard: int = 0) -> None: ...


def custom_id(owner_id: int, choice_id: str) -> str:
    value = f"pc:{owner_id}:{choice_id}"
    if len(value) > MAX_CUSTOM_ID or not re.fullmatch(CUSTOM_ID_TEMPLATE, value):
        raise ValueError(f"choice id does not fit a Discord custom_id: {choice_id!r}")
    return value


class ChoiceButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CUSTOM_ID_TEMPLATE
):
    def __init__(self, owner_id: int, choice_id: str, label: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=button_label(label),
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id(owner_id, choice_id),
            )
        )
        self.owner_id = owner_id
        self.choice_id = choice_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ChoiceButton:
        label = getattr(item, "label", None) or "…"
        return cls(int(match["user"]), match["choice"], label)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_foreign_press(interaction)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_choice(interaction, self.choice_id)


def group_custom_id(choice_id: str) -> str:
    value = f"pg:{choice_id}"
    if len(value) > MAX_CUSTOM_ID or not re.fullmatch(GROUP_ID_TEMPLATE, value):
        raise ValueError(f"choice id does not fit a Discord custom_id: {choice_id!r}")
    return value


class GroupButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=GROUP_ID_TEMPLATE
):
    """A button on a post everyone in a channel sees: whoever presses it is answered,
    privately, as themselves."""

    def __init__(self, choice_id: str, label: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=button_label(label),
                style=discord.ButtonStyle.primary,
                custom_id=group_custom_id(choice_id),
            )
        )
        self.choice_id = choice_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> GroupButton:
        label = getattr(item, "label", None) or "…"
        return cls(match["choice"], label)

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_group_choice(interaction, self.choice_id)


def _handler(interaction: discord.Interaction) -> GuideHandler | None:
    client = interaction.client
    return client.handler if isinstance(client, GuideClient) else None


def choice_view(owner_id: int, choices: Sequence[Choice]) -> discord.ui.View:
    """The buttons for one message, for rendering only.

    The view is stopped before it is sent: discord.py then does not keep it (a
    persistent view would otherwise stay in memory for every message ever sent, and
    an ephemeral one would get a 15-minute timer). Presses are dispatched by the
    registered `ChoiceButton` pattern instead, which also survives restarts.
    """
    if len(choices) > MAX_BUTTONS:
        log.warning("only the first %d of %d buttons fit a message", MAX_BUTTONS, len(choices))
    view = discord.ui.View(timeout=None)
    for choice in choices[:MAX_BUTTONS]:
        view.add_item(ChoiceButton(owner_id, choice.id, choice.label))
    view.stop()
    return view


def group_view(choices: Sequence[Choice]) -> discord.ui.View:
    """The buttons of a post for a whole channel; rendering only, as `choice_view`."""
    if len(choices) > MAX_BUTTONS:
        log.warning("only the first %d of %d buttons fit a message", MAX_BUTTONS, len(choices))
    view = discord.ui.View(timeout=None)
    for choice in choices[:MAX_BUTTONS]:
        view.add_item(GroupButton(choice.id, choice.label))
    view.stop()
    return view


def intents() -> discord.Intents:
    """No privileged intents: slash commands and buttons arrive as interactions, and
    the content of direct messages to the bot needs no message-content intent."""
    chosen = discord.Intents.none()
    chosen.guilds = True  # discord.py's cache of channels and guilds relies on it
    chosen.dm_messages = True  # free text in DMs
    return chosen


class GuideClient(discord.Client):
    """Registers the button pattern and, if they changed, the commands when it logs
    in (`bot.discord.sync`), and hands every slash command, button press and DM to
    the adapter."""

    def __init__(
        self,
        handler: GuideHandler,
        commands: Sequence[app_commands.Command[Any, ..., Any]],
        *,
        guild_id: int | None = None,
        sync: bool = True,
        **options: Any,
    ) -> None:
        # The guide never pings anyone, whatever a template expands to.
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(intents=intents(), **options)
        self.handler = handler
        self.tree = app_commands.CommandTree(self)
        for command in commands:
            self.tree.add_command(command)
        self._guild_id = guild_id
        # One client per shard: the commands are the application's, synced by one.
        self._sync = sync
        # Set by each READY, cleared when this worker closes its gateway
        # (bot.discord.gateway); discord.py's own readiness stays set once reached.
        self.gateway_ready = asyncio.Event()
        # Spaces this bot's IDENTIFYs across workers (bot.discord.identify); None:
        # discord.py's own hook.
        self.identify_gate: IdentifyGate | None = None

    async def setup_hook(self) -> None:
        # Runs inside login, before the gateway connects: every button the guide ever
        # sent works again from the first interaction on.
        self.add_dynamic_items(ChoiceButton, GroupButton)
        if not self._sync:
            return
        guild = None
        if self._guild_id is not None:
            guild = discord.Object(id=self._guild_id)
            # A guild's commands update at once; global ones can take a while to appear.
            self.tree.copy_global_to(guild=guild)
        await sync_if_changed(self.tree, guild)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py's default sleeps 5 s before a reconnect's IDENTIFY, for this
        # client alone; the gate spaces every shard's, on every worker.
        if self.identify_gate is None:
            await super().before_identify_hook(shard_id, initial=initial)
            return
        await self.identify_gate.wait_turn(shard_id or 0)

    async def on_ready(self) -> None:
        self.gateway_ready.set()

    @property
    def shard(self) -> int:
        """The gateway shard this client connects as (0 when unsharded)."""
        return self.shard_id or 0

    async def on_message(self, message: discord.Message) -> None:
        await self.handler.on_direct_message(message, self.shard)


def is_dm(interaction: discord.Interaction) -> bool:
    channel = interaction.channel
    return channel is not None and channel.type is discord.ChannelType.private

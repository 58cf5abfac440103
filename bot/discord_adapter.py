"""The guide on Discord (discord.py 2.x): slash commands, buttons and DMs, as a thin
adapter over the engine.

- Slash commands and button presses are interactions. Each is acknowledged first
  (Discord allows 3 seconds), then the engine runs and its replies go out as the
  interaction's follow-ups. In a server channel every reply is ephemeral: only the
  person who asked sees it, whatever the flow is about.
- Free text is accepted in DMs, where the bot may read message content without the
  privileged intent. Its replies, like check-ins, go out by DM through `send`.
- `send` (the outbox's way out, for follow-ups and DM replies) always writes to the
  person's DMs, never to a channel: a check-in is personal. Closed DMs raise
  `RecipientUnreachable`; the next time the person uses a command in a server, they
  are told once how to open their DMs again.

Nothing about a conversation is kept here: every event goes to the engine, and
buttons are matched by pattern (see `bot.discord_client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import discord

from bot.app import Guide, SetupError
from bot.config import Settings
from bot.console import parse_line
from bot.discord_client import GuideClient, choice_view, is_dm
from bot.discord_commands import build_commands
from bot.discord_render import Part, parts
from dialogs.clock import Clock, SystemClock
from dialogs.dispatcher import NotSent, RecipientUnreachable, Sender
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.store import UserKey
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

NAME = "discord"
# "Cannot send messages to this user": DMs closed, the bot blocked, or no server shared.
CANNOT_MESSAGE_USER = 50007


class DiscordAdapter:
    name = NAME

    def __init__(
        self,
        guide: Guide,
        settings: Settings,
        *,
        clock: Clock | None = None,
        ready_timeout: float = 60.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._guide = guide
        self._settings = settings
        self._clock = clock or SystemClock()
        self._ready_timeout = ready_timeout
        self._client_options = dict(client_options or {})
        self._client: GuideClient | None = None
        self._connection: asyncio.Task[None] | None = None

    @property
    def client(self) -> GuideClient | None:
        return self._client

    def make_client(self) -> GuideClient:
        """A new client, which this adapter then sends through. `start` makes one and
        connects it; tests hand it to a simulated Discord instead."""
        commands = build_commands(self._guide.content.commands.menu(), self.on_command)
        self._client = GuideClient(
            self, commands, guild_id=self._settings.discord_guild_id, **self._client_options
        )
        return self._client

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Log in (which syncs the slash commands and registers the buttons), connect
        in a background task, and return once Discord says the bot is ready."""
        token = self._settings.discord_bot_token
        if token is None:
            raise SetupError("DISCORD_BOT_TOKEN is not set")
        client = self.make_client()
        try:
            await self._log_in(client, token.get_secret_value())
            await self._connect(client)
        except BaseException:
            # `pausecheck run` only stops adapters that started: leave nothing behind.
            await self.stop()
            raise
        log.info("discord ready as %s", client.user)

    async def _log_in(self, client: GuideClient, token: str) -> None:
        try:
            await client.login(token)
        except discord.LoginFailure as exc:
            raise SetupError(
                "Discord refused DISCORD_BOT_TOKEN; copy it again from the Bot page of the "
                "developer portal"
            ) from exc
        except discord.HTTPException as exc:
            hint = (
                " (is the bot in that server, invited with the applications.commands scope?)"
                if self._settings.discord_guild_id is not None
                else ""
            )
            raise SetupError(f"Discord refused to log in or sync commands: {exc}{hint}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise SetupError(f"could not reach Discord: {exc}") from exc

    async def _connect(self, client: GuideClient) -> None:
        connection = self._connection = asyncio.create_task(
            client.connect(), name="discord-gateway"
        )
        connection.add_done_callback(_connection_ended)
        ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
        try:
            done, _ = await asyncio.wait(
                {connection, ready},
                timeout=self._ready_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        if ready in done:
            return
        if connection in done:
            failure = None if connection.cancelled() else connection.exception()
            raise SetupError(f"could not connect to Discord: {failure}") from failure
        raise SetupError(f"Discord was not ready within {self._ready_timeout:g} s")

    async def stop(self) -> None:
        client, connection = self._client, self._connection
        self._client = self._connection = None
        if client is not None:
            await client.close()
        if connection is not None:
            if not connection.done():
                connection.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connection

    # ------------------------------------------------------------- sending by DM

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """Deliver to the person's DMs (follow-ups, and replies to what they wrote in
        DMs). Raises `RecipientUnreachable` when Discord will not let us."""
        client = self._client
        if client is None or client.is_closed():
            raise NotSent("the Discord client is not running")
        owner = int(address.user_id)
        try:
            channel = await client.create_dm(discord.Object(id=owner))
            for message in messages:
                for part in parts(message):
                    await channel.send(**_message_kwargs(part, owner))
        except discord.Forbidden as exc:
            if exc.code == CANNOT_MESSAGE_USER:
                raise RecipientUnreachable(f"code {exc.code}") from exc
            raise
        except discord.NotFound as exc:
            # The account is gone (unknown user or channel): as unreachable as it gets.
            raise RecipientUnreachable(f"code {exc.code}") from exc

    def _interactive(self) -> Sender:
        outbox = self._guide.outboxes.get(NAME)
        return outbox.interactive if outbox is not None else self

    # ------------------------------------------------------------- what people do

    async def on_command(self, interaction: discord.Interaction, command: Command) -> None:
        dm = is_dm(interaction)
        # Acknowledge first: the engine may take longer than Discord's 3 seconds.
        await interaction.response.defer(ephemeral=not dm, thinking=True)
        replies = await self._handle(interaction, dm, command=command)
        if not replies:
            # A redelivered event: nothing to say, so take away the "thinking" line.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            return
        await self._reply(interaction, replies, ephemeral=not dm)

    async def on_choice(self, interaction: discord.Interaction, choice_id: str) -> None:
        dm = is_dm(interaction)
        # The acknowledgement also takes the buttons off the message they were on: a
        # choice is made once (a stale press would only be answered kindly anyway).
        await interaction.response.edit_message(view=None)
        replies = await self._handle(interaction, dm, choice=choice_id)
        await self._reply(interaction, replies, ephemeral=not dm)

    async def on_foreign_press(self, interaction: discord.Interaction) -> None:
        log.info("button pressed by someone it was not for user=%s", _who(interaction.user))
        await interaction.response.send_message(
            self._guide.content.copy.not_your_button, ephemeral=True
        )

    async def on_direct_message(self, message: discord.Message) -> None:
        if (
            message.author.bot
            or message.guild is not None
            or message.channel.type is not discord.ChannelType.private
            or message.type not in (discord.MessageType.default, discord.MessageType.reply)
        ):
            return
        text, command = parse_line(message.content)
        address = Address(NAME, str(message.author.id), str(message.channel.id), is_private=True)
        at = self._clock.now()
        if command is not None:
            inbound = Inbound(address, str(message.id), at, command=command)
        else:
            inbound = Inbound(address, str(message.id), at, text=text)
        replies = await self._guide.engine.handle(inbound)
        if not replies:
            return
        try:
            await self._interactive().send(address, replies)
        except Exception:
            log.warning("DM reply not delivered user=%s", _who(message.author), exc_info=True)

    # ------------------------------------------------------------- the engine

    async def _handle(
        self,
        interaction: discord.Interaction,
        dm: bool,
        *,
        command: Command | None = None,
        choice: str | None = None,
    ) -> list[Outbound]:
        address = Address(
            NAME, str(interaction.user.id), str(interaction.channel_id), is_private=dm
        )
        # Read before the engine runs: writing to the guide clears the mark.
        notice = [] if dm else await self._dms_closed_notice(address)
        inbound = Inbound(
            address, str(interaction.id), self._clock.now(), command=command, choice=choice
        )
        return [*notice, *await self._guide.engine.handle(inbound)]

    async def _dms_closed_notice(self, address: Address) -> list[Outbound]:
        async with self._guide.store.session() as session:
            profile = await session.load_profile(UserKey(NAME, address.user_id))
        if profile.unreachable_at is None:
            return []
        return [Outbound(self._guide.content.copy.discord_dms_closed, private_only=True)]

    async def _reply(
        self, interaction: discord.Interaction, replies: Sequence[Outbound], *, ephemeral: bool
    ) -> None:
        owner = interaction.user.id
        try:
            for message in replies:
                for part in parts(message):
                    await interaction.followup.send(
                        ephemeral=ephemeral, **_message_kwargs(part, owner)
                    )
        except discord.HTTPException:
            log.warning("reply not delivered user=%s", _who(interaction.user), exc_info=True)


def _message_kwargs(part: Part, owner: int) -> dict[str, Any]:
    """Keyword arguments for `Messageable.send` and `Webhook.send` alike (both treat
    a missing argument differently from None, so only what is there is passed)."""
    kwargs: dict[str, Any] = {"content": part.content}
    if part.choices:
        kwargs["view"] = choice_view(owner, part.choices)
    if part.attachment is not None:
        data = io.BytesIO(part.attachment.data)
        kwargs["file"] = discord.File(data, filename=part.attachment.filename)
    if part.image is not None and part.image.startswith(("https://", "http://")):
        # Discord shows a picture from a URL only; there is no local file to upload.
        kwargs["embed"] = discord.Embed().set_image(url=part.image)
    return kwargs


def _connection_ended(task: asyncio.Task[None]) -> None:
    # discord.py reconnects by itself; it gives up only on what a restart cannot fix
    # (a revoked token, intents not allowed), which must not pass silently.
    if not task.cancelled() and task.exception() is not None:
        log.error("the Discord connection ended", exc_info=task.exception())


def _who(user: discord.abc.User) -> str:
    return user_ref(NAME, str(user.id))

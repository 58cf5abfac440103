"""The guide on Discord (discord.py 2.x): slash commands, buttons and DMs, as a thin
adapter over the engine.

- Slash commands and button presses are interactions. Each is acknowledged first
  (Discord allows 3 seconds), then the engine runs and its replies go out as the
  interaction's follow-ups; if that fails, a short apology does, so nobody is left
  on "thinking...". In a server channel every reply is ephemeral: only the person
  who asked sees it, whatever the flow is about.
- Free text is accepted in DMs, where the bot may read message content without the
  privileged intent. Its replies, like check-ins, go out by DM through `send`.
- `send` (the outbox's way out, for follow-ups and DM replies) writes to the person's
  DMs: a check-in is personal. Opening DMs too fast (40003) leaves the message
  for later (`bot.discord.dms`). Closed DMs raise `RecipientUnreachable`; the next time
  the person uses a command in a server, they are told once how to open their DMs
  again. The one exception is a group reflection: a message whose `Outbound.to` is a
  group address is posted in that channel (or its thread) for everyone, and only
  those messages are; see `bot.discord.reflection`.
- Messages the engine addresses elsewhere (`Outbound.to`: group posts, prompts to each
  participant) go out after the reply, each run on its own and best effort: one
  participant with closed DMs stops neither the others nor the reply.

Nothing about a conversation is kept here: every event goes to the engine, and
buttons are matched by pattern (see `bot.discord.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import discord

from bot.app import Guide, SetupError
from bot.config import Settings
from bot.console import parse_line
from bot.discord.client import GuideClient, choice_view, group_view, is_dm
from bot.discord.commands import build_commands
from bot.discord.dms import DmOpener
from bot.discord.gateway import ClientGateway
from bot.discord.identify import identify_gate
from bot.discord.intake import EVENT_GRACE, Intake
from bot.discord.lease import GatewayKeeper, LeaseHolder, Timing, gateway_lease, holder_name
from bot.discord.queue import DiscordQueue
from bot.discord.reflection import (
    is_facilitator,
    is_guild_member,
    moved_to_thread,
    open_thread,
)
from bot.discord.render import Part, parts
from dialogs.clock import Clock, SystemClock
from dialogs.delivery import Delivered, Misaddressed, Reply
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.flows.commands import Action
from dialogs.followups.dispatcher import NotSent, RecipientUnreachable, Sender
from dialogs.reflection.group import is_reflection_payload
from dialogs.routing import Run, by_destination
from dialogs.store import OutboundRow, OutboundStatus, UserKey
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

NAME = "discord"
# "Cannot send messages to this user": DMs closed, the bot blocked, or no server shared.
CANNOT_MESSAGE_USER = 50007


class DiscordAdapter:
    name = NAME
    # `send` says which messages Discord accepted (the outbox marks their rows).
    tracks_delivery = True

    def __init__(
        self,
        guide: Guide,
        settings: Settings,
        *,
        clock: Clock | None = None,
        ready_timeout: float = 60.0,
        client_options: Mapping[str, Any] | None = None,
        lease: LeaseHolder | None = None,
        timing: Timing | None = None,
        event_grace: float = EVENT_GRACE,
    ) -> None:
        self._guide = guide
        self._settings = settings
        self._clock = clock or SystemClock()
        self._ready_timeout = ready_timeout
        self._client_options = dict(client_options or {})
        self._client: GuideClient | None = None
        self._dms = DmOpener(self._clock)
        # Shard 0's gateway lease: stored on PostgreSQL, always held on SQLite, unless
        # given. Every shard has its own (`gateway_lease`).
        self._lease = lease
        self._timing = timing or Timing()
        # One keeper per shard, each with its own client; shard 0's client is also
        # the one everything is sent through (REST works without a gateway).
        self._keepers: dict[int, GatewayKeeper] = {}
        self._shard_clients: dict[int, GuideClient] = {}
        # Open until a graceful stop (`stop_receiving`); counts the events in hand.
        self._intake = Intake(event_grace)
        self.queue = DiscordQueue(
            guide.screen,
            guide.content.copy.slow_down,
            burst=settings.flood_messages,
            window=settings.flood_seconds,
        )

    @property
    def client(self) -> GuideClient | None:
        return self._client

    def make_client(self, shard: int = 0) -> GuideClient:
        """A new client for one gateway shard. Shard 0's is the one this adapter sends
        through and the one that syncs the slash commands. `start` makes one per
        shard and connects those whose lease this worker holds; tests hand one to a
        simulated Discord instead."""
        commands = build_commands(self._guide.content.commands.menu(), self.on_command)
        options = dict(self._client_options)
        count = self._settings.discord_shards
        if count > 1:
            options.update(shard_id=shard, shard_count=count)
        client = GuideClient(
            self,
            commands,
            guild_id=self._settings.discord_guild_id,
            sync=shard == 0,
            **options,
        )
        if shard == 0:
            self._client = client
            # Only a server's members may join its reflection.
            self._guide.members[NAME] = self._is_guild_member
        else:
            self._shard_clients[shard] = client
        return client

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Log in (which registers the buttons and syncs the slash commands if they
        changed, never failing over them), one client per shard
        (`PAUSECHECK_DISCORD_SHARDS`), then keep each shard's gateway lease
        (`bot.discord.lease`): return once every shard's first attempt is over, the
        shards this worker holds ready, the others held by other workers (this one
        stands by to take them over). Sending goes through shard 0's client, by REST,
        whichever shards this worker holds."""
        token = self._settings.discord_bot_token
        if token is None:
            raise SetupError("DISCORD_BOT_TOKEN is not set")
        shards = range(self._settings.discord_shards)
        try:
            clients = [self.make_client(shard) for shard in shards]
            for client in clients:
                await self._log_in(client, token.get_secret_value())
            # One gate for all this worker's shards, spacing their IDENTIFYs with
            # every other worker's (bot.discord.identify).
            gate = identify_gate(self._guide.store, holder_name(), self._timing.identify_every)
            for shard, client in zip(shards, clients, strict=True):
                client.identify_gate = gate
                gateway = ClientGateway(client, ready_timeout=self._ready_timeout)
                lease = self._lease if shard == 0 and self._lease is not None else None
                lease = lease or gateway_lease(self._guide.store, self._timing, shard)
                self._keepers[shard] = GatewayKeeper(lease, gateway, self._timing)
            # Each shard's first attempt at once: a gateway that cannot open fails
            # the start, as with one shard.
            await asyncio.gather(*(keeper.start() for keeper in self._keepers.values()))
        except BaseException:
            # `pausecheck run` only stops adapters that started: leave nothing behind.
            await self.stop()
            raise
        held = self.held_shards()
        user = clients[0].user
        if held == list(shards):
            log.info("discord ready as %s, holding the gateway (shards %s)", user, held)
        else:
            log.info(
                "discord logged in as %s, holding gateway shards %s of %d; other workers "
                "hold the rest, this one stands by to take them over",
                user,
                held,
                len(shards),
            )

    def _in_tenure(self, what: str, shard: int) -> bool:
        """False for an event that came through a shard's gateway after this worker's
        lease on it ran out (bot.discord.lease): another worker may hold that shard
        and get the same event, so this one leaves it alone."""
        keeper = self._keepers.get(shard)
        if keeper is None or keeper.in_tenure():
            return True
        log.warning(
            "a %s arrived on shard %d after this worker's lease ran out; left alone", what, shard
        )
        return False

    @property
    def holds_gateway(self) -> bool:
        """This worker holds the gateway of at least one shard, open under its lease
        (for health checks)."""
        return bool(self.held_shards())

    def held_shards(self) -> list[int]:
        """The shards whose gateway is open here under their lease."""
        return [shard for shard, keeper in self._keepers.items() if keeper.holding]

    async def _log_in(self, client: GuideClient, token: str) -> None:
        try:
            await client.login(token)
        except discord.LoginFailure as exc:
            raise SetupError(
                "Discord refused DISCORD_BOT_TOKEN; copy it again from the Bot page of the "
                "developer portal"
            ) from exc
        except discord.HTTPException as exc:
            # The command sync inside login never raises (bot.discord.sync).
            raise SetupError(f"Discord refused to log in: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise SetupError(f"could not reach Discord: {exc}") from exc

    async def stop_receiving(self) -> None:
        """Take no new events and let those in hand finish (up to `event_grace`
        seconds), their replies included; sending still works, and the gateway stays
        connected, so the outbox can finish its sends before `stop` (a graceful stop,
        bot/cli.py). An event arriving from now on is answered with a short "I'm
        restarting, send it again" rather than left to time out."""
        await self._intake.close()

    async def _refused(self, interaction: discord.Interaction, *, urgent: bool) -> bool:
        """True (after the kind refusal) once `stop_receiving` was called: the engine
        is not run, and the answer is immediate, within Discord's 3 seconds. A
        crisis or danger signal (`urgent`) is never refused: it is answered as ever,
        while the stop waits (no other worker can answer this interaction)."""
        if self._intake.open or urgent:
            return False
        log.info("interaction refused while stopping user=%s", _who(interaction.user))
        try:
            await interaction.response.send_message(
                self._guide.content.copy.restarting, ephemeral=True
            )
        except discord.HTTPException:
            log.info("refusal not delivered user=%s", _who(interaction.user))
        return True

    async def stop(self) -> None:
        keepers = list(self._keepers.values())
        clients = [c for c in (self._client, *self._shard_clients.values()) if c is not None]
        self._client = None
        self._keepers, self._shard_clients = {}, {}
        # Each gateway first, then its lease: another worker may take over at once.
        await asyncio.gather(*(keeper.stop() for keeper in keepers))
        for client in clients:
            await client.close()

    # ------------------------------------------------------------- sending

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None:
        """Deliver to the person's DMs (follow-ups, and replies to what they wrote in
        DMs), or, for a group address, post in that channel. A message's own `to`
        wins over `address`; a reply without one for a server channel (an
        interaction's ephemeral answer re-sent by the outbox after a crash) goes to
        the person's DMs, never to the channel. Raises `RecipientUnreachable` when
        Discord will not let us write to the person; messages for other addresses
        are best effort. `delivered` hears the index of each message sent."""
        if any((m.to or address).platform != NAME for m in messages):
            # Another platform's ids mean nothing here: never guess a channel.
            raise Misaddressed("not a Discord address")
        client = self._running_client()
        for destination, run in _runs(address, messages):
            try:
                await self._send_run(client, destination, run, delivered)
            except NotSent:
                raise
            except Exception as exc:
                if destination == _reply_address(address):
                    raise
                _not_delivered(destination, exc)

    def requests_for(self, address: Address, messages: Sequence[Outbound]) -> int:
        """The requests `send` will make to Discord for these messages, which its
        global limit counts (the outbox charges them, bot/outbox.py): one per part
        (a long text is split), one more to open a person's DM channel discord.py
        does not hold (it keeps the 128 most recent), one per thread opened."""
        client = self._client
        count = 0
        for destination, run in _runs(address, messages):
            if destination.is_private and not _dm_open(client, destination.user_id):
                count += 1
            for _, message in run:
                count += len(parts(message))
                if message.thread is not None and not destination.is_private:
                    count += 1
        return count

    def _running_client(self) -> GuideClient:
        client = self._client
        if client is None or client.is_closed():
            raise NotSent("the Discord client is not running")
        return client

    async def _send_run(
        self,
        client: GuideClient,
        destination: Address,
        run: Sequence[tuple[int, Outbound]],
        delivered: Delivered | None = None,
    ) -> None:
        messages = [message for _, message in run]
        indices = [index for index, _ in run]
        if destination.is_private:
            await self._send_dm(client, destination, messages, delivered, indices)
        else:
            await self._post(client, destination, messages, delivered, indices)

    async def _send_dm(
        self,
        client: GuideClient,
        address: Address,
        messages: Sequence[Outbound],
        delivered: Delivered | None = None,
        indices: Sequence[int] = (),
    ) -> None:
        owner = int(address.user_id)
        try:
            channel = await self._dms.open(client, owner)
            for n, message in enumerate(messages):
                for part in parts(message):
                    await channel.send(**_message_kwargs(part, owner))
                if delivered is not None:
                    delivered(indices[n] if indices else n)
        except discord.Forbidden as exc:
            if exc.code == CANNOT_MESSAGE_USER:
                raise RecipientUnreachable(f"code {exc.code}") from exc
            raise
        except discord.NotFound as exc:
            # The account is gone (unknown user or channel): as unreachable as it gets.
            raise RecipientUnreachable(f"code {exc.code}") from exc

    async def _post(
        self,
        client: GuideClient,
        address: Address,
        messages: Sequence[Outbound],
        delivered: Delivered | None = None,
        indices: Sequence[int] = (),
    ) -> str:
        """Post for everyone in a channel (a group reflection). A message that asks
        for a thread gets one, and what follows goes there. Returns the id of the
        channel or thread posted in last."""
        channel = await _channel(client, int(address.chat_id))
        where = address.chat_id
        for n, message in enumerate(messages):
            sent: discord.Message | None = None
            for part in parts(message):
                sent = await channel.send(**_message_kwargs(part, None))
            if delivered is not None:
                delivered(indices[n] if indices else n)
            if message.thread is None or sent is None:
                continue
            thread = await open_thread(channel, sent, message.thread)
            if thread is None:
                continue
            if await self._guide.engine.move_reflection(NAME, where, str(thread.id)):
                channel, where = thread, str(thread.id)
            else:
                log.info("a thread was opened for a reflection no longer running")
        return where

    async def deliver(self, runs: Sequence[Run], reply: Reply | None = None) -> None:
        """The messages for other addresses, after an interaction or a DM: each run
        best effort, its outbox rows (from `reply`) through the delivery. The run that
        opens a thread is posted here directly (the thread starts from the posted
        message, which the outbox does not hand back), and the runs after it for the
        same channel go to the thread; their rows are marked once posted."""
        moved: dict[str, str] = {}
        for destination, run in runs:
            rows = reply.rows_for(run) if reply is not None else None
            redirected = not destination.is_private and destination.chat_id in moved
            if redirected:
                destination = replace(destination, chat_id=moved[destination.chat_id])
                run = [replace(m, to=destination) for m in run]
            try:
                if not destination.is_private and any(m.thread for m in run):
                    where = await self._post(self._running_client(), destination, run)
                    if where != destination.chat_id:
                        moved[destination.chat_id] = where
                    await self._mark_sent(rows)
                elif rows and not redirected:
                    await self._guide.delivery.send(rows)
                else:
                    await self._interactive().send(destination, run)
                    await self._mark_sent(rows)
            except NotSent:
                raise
            except Exception as exc:
                _not_delivered(destination, exc)

    async def _mark_sent(self, rows: Sequence[OutboundRow] | None) -> None:
        if rows:
            await self._guide.delivery.mark(rows, OutboundStatus.SENT)

    def _interactive(self) -> Sender:
        outbox = self._guide.outboxes.get(NAME)
        return outbox.interactive if outbox is not None else self

    async def _is_guild_member(self, chat_id: str, user_id: str) -> bool:
        return await is_guild_member(self._running_client(), chat_id, user_id)

    # ------------------------------------------------------------- what people do

    # Each goes through the person's queue (bot.discord.queue): acknowledged at once,
    # handled in that person's turn, dropped past their burst cap.

    async def on_command(self, interaction: discord.Interaction, command: Command) -> None:
        urgent = self.queue.urgent(command=command)
        if not self._in_tenure("command", _shard(interaction)) or await self._refused(
            interaction, urgent=urgent
        ):
            return
        dm = is_dm(interaction)

        async def work() -> None:
            replies = await self._handle_or_apologise(interaction, dm, command=command)
            if replies is not None:
                await self._answer(interaction, replies, ephemeral=not dm, deferred=True)

        with self._intake.taken():
            await self.queue.interaction(
                interaction,
                # Acknowledge first: the engine may take longer than Discord's 3 seconds.
                ack=lambda: interaction.response.defer(ephemeral=not dm, thinking=True),
                work=work,
                urgent=urgent,
            )

    async def on_choice(self, interaction: discord.Interaction, choice_id: str) -> None:
        urgent = self.queue.urgent(choice=choice_id)
        if not self._in_tenure("button press", _shard(interaction)) or await self._refused(
            interaction, urgent=urgent
        ):
            return
        dm = is_dm(interaction)

        async def work() -> None:
            replies = await self._handle_or_apologise(
                interaction, dm, choice=choice_id, restore_buttons=True
            )
            if replies is not None:
                await self._answer(interaction, replies, ephemeral=not dm, deferred=False)

        with self._intake.taken():
            await self.queue.interaction(
                interaction,
                # The acknowledgement also takes the buttons off the message they were on:
                # a choice is made once (a stale press would only be answered kindly anyway).
                ack=lambda: interaction.response.edit_message(view=None),
                work=work,
                urgent=urgent,
            )

    async def on_group_choice(self, interaction: discord.Interaction, choice_id: str) -> None:
        """A button on a post the whole channel sees (Join): the press is answered
        for the presser alone, and the post keeps its buttons for everyone else."""
        urgent = self.queue.urgent(choice=choice_id)
        if not self._in_tenure("button press", _shard(interaction)) or await self._refused(
            interaction, urgent=urgent
        ):
            return
        dm = is_dm(interaction)

        async def work() -> None:
            replies = await self._handle_or_apologise(interaction, dm, choice=choice_id)
            if replies is not None:
                await self._answer(interaction, replies, ephemeral=not dm, deferred=True)

        with self._intake.taken():
            await self.queue.interaction(
                interaction,
                ack=lambda: interaction.response.defer(ephemeral=not dm, thinking=True),
                work=work,
                urgent=urgent,
            )

    async def on_foreign_press(self, interaction: discord.Interaction) -> None:
        if not self._in_tenure("button press", _shard(interaction)):
            return
        log.info("button pressed by someone it was not for user=%s", _who(interaction.user))
        await interaction.response.send_message(
            self._guide.content.copy.not_your_button, ephemeral=True
        )

    async def on_direct_message(self, message: discord.Message, shard: int = 0) -> None:
        if not self._in_tenure("direct message", shard):
            return
        if (
            message.author.bot
            or message.guild is not None
            or message.channel.type is not discord.ChannelType.private
            or message.type not in (discord.MessageType.default, discord.MessageType.reply)
        ):
            return
        text, command = parse_line(message.content)
        urgent = self.queue.urgent(command=command, text=None if command else text)
        if not self._intake.open and not urgent:
            await self._refuse_dm(message)
            return
        address = Address(NAME, str(message.author.id), str(message.channel.id), is_private=True)
        at = self._clock.now()
        if command is not None:
            inbound = Inbound(address, str(message.id), at, command=command)
        else:
            inbound = Inbound(address, str(message.id), at, text=text)

        async def work() -> None:
            try:
                replies = await self._guide.engine.handle(inbound)
            except Exception:
                log.exception("event failed kind=dm user=%s", _who(message.author))
                await self._dm_reply(message, address, [Outbound(self._apology())])
                return
            here, elsewhere = by_destination(replies)
            rows = replies.rows_for(here)
            if rows:
                await self._guide.delivery.send(rows)
            elif here:
                await self._dm_reply(message, address, here)
            await self.deliver(elsewhere, replies)

        notice = [Outbound(self._guide.content.copy.slow_down)]
        with self._intake.taken():
            await self.queue.direct_message(
                message.author.id,
                work=work,
                notify=lambda: self._dm_reply(message, address, notice),
                urgent=urgent,
            )

    async def _refuse_dm(self, message: discord.Message) -> None:
        """A DM that came after `stop_receiving`: the kind refusal, straight to the
        channel it came from (the outbox may be finishing already)."""
        log.info("direct message refused while stopping user=%s", _who(message.author))
        try:
            await message.channel.send(content=self._guide.content.copy.restarting)
        except discord.HTTPException:
            log.info("refusal not delivered user=%s", _who(message.author))

    async def _dm_reply(
        self, message: discord.Message, address: Address, replies: Sequence[Outbound]
    ) -> None:
        try:
            await self._interactive().send(address, replies)
        except Exception:
            log.warning("DM reply not delivered user=%s", _who(message.author), exc_info=True)

    # ------------------------------------------------------------- the engine

    async def _handle_or_apologise(
        self,
        interaction: discord.Interaction,
        dm: bool,
        *,
        command: Command | None = None,
        choice: str | None = None,
        restore_buttons: bool = False,
    ) -> Reply | None:
        """`_handle`, or, if it fails, a short apology and None. The interaction was
        acknowledged before the engine ran, so without an answer the person would
        sit on "thinking..." (or on a pressed button) for ever. Nothing was saved,
        so a pressed message gets its buttons back to be pressed again."""
        try:
            return await self._handle(interaction, dm, command=command, choice=choice)
        except Exception:
            kind = "command" if command is not None else "choice"
            log.exception("event failed kind=%s user=%s", kind, _who(interaction.user))
        if restore_buttons:
            await _restore_buttons(interaction)
        try:
            await interaction.followup.send(self._apology(), ephemeral=not dm)
        except discord.HTTPException:
            log.warning("apology not delivered user=%s", _who(interaction.user), exc_info=True)
        return None

    def _apology(self) -> str:
        return self._guide.content.copy.error_apology

    async def _handle(
        self,
        interaction: discord.Interaction,
        dm: bool,
        *,
        command: Command | None = None,
        choice: str | None = None,
    ) -> Reply:
        chat = str(interaction.channel_id)
        if not dm and self._about_reflection(command, choice):
            chat = await moved_to_thread(interaction, self._guide.store, NAME) or chat
        address = Address(NAME, str(interaction.user.id), chat, is_private=dm)
        # Read before the engine runs: writing to the guide clears the mark.
        notice = [] if dm else await self._dms_closed_notice(address)
        inbound = Inbound(
            address,
            str(interaction.id),
            self._clock.now(),
            command=command,
            choice=choice,
            facilitator=(
                not dm and is_facilitator(interaction, self._settings.discord_facilitator_role)
            ),
        )
        return (await self._guide.engine.handle(inbound)).after(notice)

    def _about_reflection(self, command: Command | None, choice: str | None) -> bool:
        if choice is not None:
            return is_reflection_payload(choice) or choice.startswith("/reflect ")
        spec = self._guide.content.commands.get(command.name) if command is not None else None
        return spec is not None and spec.action is Action.REFLECT

    async def _dms_closed_notice(self, address: Address) -> list[Outbound]:
        async with self._guide.store.session() as session:
            profile = await session.load_profile(UserKey(NAME, address.user_id))
        if profile.unreachable_at is None:
            return []
        return [Outbound(self._guide.content.copy.discord_dms_closed, private_only=True)]

    async def _answer(
        self,
        interaction: discord.Interaction,
        replies: Reply,
        *,
        ephemeral: bool,
        deferred: bool,
    ) -> None:
        """The reply to the person who acted, then what goes elsewhere."""
        here, elsewhere = by_destination(replies)
        if here:
            await self._reply(interaction, here, ephemeral=ephemeral, stored=replies)
        elif deferred:
            # Nothing to say to them (a redelivered event, or only posts elsewhere):
            # take away the "thinking" line.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await self.deliver(elsewhere, replies)

    async def _reply(
        self,
        interaction: discord.Interaction,
        messages: Sequence[Outbound],
        *,
        ephemeral: bool,
        stored: Reply | None = None,
    ) -> None:
        """As the interaction's follow-ups, marking each stored message once Discord
        took it. One that could not be sent stays pending: the outbox's sweep sends it
        later, to the person's DMs (see `send`)."""
        owner = interaction.user.id
        sent: list[OutboundRow] = []
        try:
            for message in messages:
                for part in parts(message):
                    await interaction.followup.send(
                        ephemeral=ephemeral, **_message_kwargs(part, owner)
                    )
                row = stored.row_of(message) if stored is not None else None
                if row is not None:
                    sent.append(row)
        except discord.HTTPException:
            log.warning("reply not delivered user=%s", _who(interaction.user), exc_info=True)
        finally:
            await self._mark_sent(sent)


def _message_kwargs(part: Part, owner: int | None) -> dict[str, Any]:
    """Keyword arguments for `Messageable.send` and `Webhook.send` alike (both treat
    a missing argument differently from None, so only what is there is passed).
    `owner` is the person the buttons are for; None for a post anyone may press."""
    kwargs: dict[str, Any] = {"content": part.content}
    if owner is None:
        # A post everyone in a channel sees (a group reflection): what a person shared
        # is quoted there, so no Markdown of theirs is rendered (a masked link, a
        # spoiler, a heading) and no link unfurls into an embed.
        kwargs["content"] = discord.utils.escape_markdown(part.content)
        kwargs["suppress_embeds"] = True
    if part.choices:
        kwargs["view"] = (
            group_view(part.choices) if owner is None else choice_view(owner, part.choices)
        )
    if part.attachment is not None:
        # An image file is shown in the message itself; its description is the alt
        # text screen readers say.
        data = io.BytesIO(part.attachment.data)
        kwargs["file"] = discord.File(
            data, filename=part.attachment.filename, description=part.attachment.description
        )
    if part.image is not None and part.image.startswith(("https://", "http://")):
        # Discord shows a picture from a URL only; there is no local file to upload.
        kwargs["embed"] = discord.Embed().set_image(url=part.image)
    return kwargs


def _runs(
    address: Address, messages: Sequence[Outbound]
) -> list[tuple[Address, list[tuple[int, Outbound]]]]:
    """Consecutive messages for one destination, with their indices, in order: a
    message's `to` wins over `address`, and a message without one for a server
    channel goes to the person's DMs (`_reply_address`)."""
    runs: list[tuple[Address, list[tuple[int, Outbound]]]] = []
    for index, message in enumerate(messages):
        destination = message.to or _reply_address(address)
        if runs and runs[-1][0] == destination:
            runs[-1][1].append((index, message))
        else:
            runs.append((destination, [(index, message)]))
    return runs


def _reply_address(address: Address) -> Address:
    """Where a message without its own `to` goes. One for a person in a server
    channel (an interaction's reply) was only ever an ephemeral answer, so anything
    sent later goes to their DMs; one for the channel itself (no person: a group
    reflection's post) is posted there."""
    if address.is_private or not address.user_id:
        return address
    return replace(address, chat_id=address.user_id, is_private=True)


async def _channel(client: GuideClient, channel_id: int) -> discord.abc.Messageable:
    channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        raise LookupError(f"channel {channel_id} takes no messages")
    return channel


def _dm_open(client: GuideClient | None, user_id: str) -> bool:
    """discord.py holds this person's DM channel: sending needs no request to open it."""
    if client is None or not user_id.isdigit():
        return False
    return client._connection._get_private_channel_by_user(int(user_id)) is not None


def _not_delivered(destination: Address, exc: Exception) -> None:
    if destination.is_private:
        log.info(
            "not delivered to a participant user=%s error=%s",
            user_ref(NAME, destination.user_id),
            type(exc).__name__,
        )
    else:
        log.warning(
            "not posted in a group channel=%s error=%s",
            destination.chat_id,
            type(exc).__name__,
            exc_info=not isinstance(exc, discord.HTTPException),
        )


async def _restore_buttons(interaction: discord.Interaction) -> None:
    """Put back the buttons the press took off its message (see `on_choice`)."""
    message = interaction.message
    if message is None or not message.components:
        return
    view = discord.ui.View.from_message(message, timeout=None)
    view.stop()  # rendering only: presses are dispatched by pattern (bot.discord.client)
    try:
        await interaction.edit_original_response(view=view)
    except discord.HTTPException:
        log.info("buttons not restored after a failed press")


def _shard(interaction: discord.Interaction) -> int:
    """The shard whose gateway brought this interaction."""
    client = interaction.client
    return client.shard if isinstance(client, GuideClient) else 0


def _who(user: discord.abc.User) -> str:
    return user_ref(NAME, str(user.id))

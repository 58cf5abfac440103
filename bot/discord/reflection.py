"""What a group reflection needs from Discord: who may facilitate, and a thread.

- A facilitator (`Inbound.facilitator`) is a member with Manage Server or Manage
  Messages in the channel where they act, or with the role set in
  `PAUSECHECK_DISCORD_FACILITATOR_ROLE`. Discord resolves the member's permissions for
  that channel in the interaction itself, so nothing is fetched.
- The opening post (`Outbound.thread`) gets a public thread of its own, where the
  rest of the reflection is posted, so the channel keeps one message about it. A
  channel where the bot may not open threads, or may not send messages in them,
  keeps getting the posts instead (both permissions are checked before opening).
- Only members of the server may join (`is_guild_member`): a join from outside the
  channel (a DM with a forwarded token) is checked against the guild.
- Once moved, the reflection belongs to the thread, but people still act from the
  channel (the Join post and the facilitator's panel are there, and `/reflect end`
  is naturally typed there). Such a reflection event from the channel is handed to
  the engine as from the thread (`moved_to_thread`, from the session's own record
  of where it started), so it finds the reflection, archived thread or not.
"""

from __future__ import annotations

import logging

import discord

from dialogs.store import Store

log = logging.getLogger(__name__)

# Discord's limit for a thread's name.
MAX_THREAD_NAME = 100


def is_facilitator(interaction: discord.Interaction, role_id: int | None) -> bool:
    """Whether the person acting may run a group reflection in this channel."""
    if interaction.guild_id is None:
        return False
    permissions = interaction.permissions
    if permissions.administrator or permissions.manage_guild or permissions.manage_messages:
        return True
    member = interaction.user
    return (
        role_id is not None
        and isinstance(member, discord.Member)
        and any(role.id == role_id for role in member.roles)
    )


def thread_name(name: str) -> str:
    name = " ".join(name.split()) or "Reflection"
    return name if len(name) <= MAX_THREAD_NAME else name[: MAX_THREAD_NAME - 1] + "…"


async def open_thread(
    channel: discord.abc.Messageable, message: discord.Message, name: str
) -> discord.Thread | None:
    """A public thread started from `message`, or None where there can be none (the
    post is already in a thread, or the bot may not create threads there)."""
    if not isinstance(channel, discord.TextChannel):
        return None
    me = channel.guild.me
    allowed = channel.permissions_for(me) if me is not None else discord.Permissions.none()
    if not (allowed.create_public_threads and allowed.send_messages_in_threads):
        # A thread the bot could open but not post in would swallow every later
        # post: ask first, and stay in the channel.
        log.warning(
            "may not open a thread or post in one; posting in the channel instead "
            "channel=%s create_public_threads=%s send_messages_in_threads=%s",
            channel.id,
            allowed.create_public_threads,
            allowed.send_messages_in_threads,
        )
        return None
    try:
        return await message.create_thread(name=thread_name(name))
    except discord.HTTPException as exc:
        log.warning(
            "could not open a thread; posting in the channel instead channel=%s status=%s code=%s",
            channel.id,
            exc.status,
            exc.code,
        )
        return None


async def moved_to_thread(
    interaction: discord.Interaction, store: Store, platform: str
) -> str | None:
    """The id of the thread where a reflection started in this channel now runs, if
    the interaction comes from that channel. The session keeps where it started, so
    this holds once Discord has archived the thread too (an archived thread is no
    longer among the channel's threads)."""
    channel = interaction.channel
    if not isinstance(channel, discord.TextChannel):
        return None
    async with store.session() as session:
        found = await session.open_reflection_in(platform, str(channel.id))
    if found is None or found.chat_id == str(channel.id):
        return None
    return found.chat_id


async def is_guild_member(client: discord.Client, chat_id: str, user_id: str) -> bool:
    """Whether the person is a member of the server the channel (or thread) is in.
    Fetched by REST when not cached, which needs no privileged intent. Any doubt is
    False."""
    try:
        channel = client.get_channel(int(chat_id)) or await client.fetch_channel(int(chat_id))
        guild = getattr(channel, "guild", None)
        if not isinstance(guild, discord.Guild):
            return False
        if guild.get_member(int(user_id)) is not None:
            return True
        await guild.fetch_member(int(user_id))
        return True
    except (discord.NotFound, discord.Forbidden):
        return False
    except (discord.HTTPException, ValueError) as exc:
        log.warning("guild membership unknown error=%s", type(exc).__name__)
        return False

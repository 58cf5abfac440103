"""Telegram updates as the engine's `Inbound` events, and which updates to ignore.

Pure functions of the update and the bot's own identity, so every rule here (whose
chat a button press belongs to, which group messages are for us) is tested without a
network. Nothing is remembered between updates.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import Chat, Message, MessageEntity, Update, User

from bot.telegram.text import fits_callback_data
from dialogs.events import Address, Command, Inbound

PLATFORM = "telegram"

# "/name", "/name@bot", then arguments. Telegram command names are 1-32 of a-z, 0-9, _
# (people may type capitals; the engine's names are lower case).
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is (from getMe at start): the only thing the adapter keeps."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    mention: str | None
    args: tuple[str, ...]


def parse_command(text: str) -> ParsedCommand | None:
    """`/stop checkins` or `/pause@guide_bot` as a command; None for anything else,
    including text that merely starts with a slash ("/ sigh", "/usr/bin")."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name, mention, rest = match.groups()
    return ParsedCommand(name.casefold(), mention, tuple((rest or "").split()))


def address_of(user: User, chat: Chat) -> Address:
    return Address(PLATFORM, str(user.id), str(chat.id), chat.type == Chat.PRIVATE)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def message_inbound(update: Update, me: BotIdentity, known: Container[str]) -> Inbound | None:
    """A new message as an Inbound, or None when it is not for the guide: edits, channel
    posts, other bots, and in groups anything but a command for us, a message that
    mentions us (when Telegram delivers one) or a reply to us."""
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    user, chat = message.from_user, message.chat
    text = message.text if message.text is not None else (message.caption or "")
    command = parse_command(text) if message.text is not None else None
    if command is not None and not _mentions_us_or_nobody(command, me):
        return None
    if chat.type == Chat.PRIVATE:
        if chat.id != user.id:
            return None
    elif chat.type in (Chat.GROUP, Chat.SUPERGROUP):
        said = _said_to_us(message, me)
        if command is None and said is not None:
            # "@guide_bot pause" gets the answer "/pause@guide_bot" would; a bare
            # mention, that of "/help@guide_bot"; anything else is text said to us.
            text, asked = said
            command = mention_command(asked, me, known)
        if command is None and said is None and not _replies_to_us(message, me):
            return None
        # A bare command in a group may be meant for another bot there: answer the
        # ones the guide knows, and leave "/roll" to whoever owns it.
        if command is not None and command.mention is None and command.name not in known:
            return None
    else:
        return None
    address = address_of(user, chat)
    event_id, at = str(update.update_id), _utc(message.date)
    if command is not None:
        # "/start <payload>" from a deep link arrives as Command("start", (payload,)).
        return Inbound(address, event_id, at, command=Command(command.name, command.args))
    # Free text, or an empty text for a sticker or photo without a caption: the engine
    # answers that kindly instead of the person hearing nothing.
    return Inbound(address, event_id, at, text=text)


def _mentions_us_or_nobody(command: ParsedCommand, me: BotIdentity) -> bool:
    return command.mention is None or command.mention.casefold() == me.username.casefold()


def _said_to_us(message: Message, me: BotIdentity) -> tuple[str, str] | None:
    """For a message that mentions the bot (an @username, or a mention of its account):
    its text with the mention taken out, and what it asks of the bot (the words after
    the mention, else those before); None when it does not mention us."""
    if message.text is None:
        return None
    mentions = message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    for entity, shown in mentions.items():
        ours = (
            entity.type == MessageEntity.TEXT_MENTION
            and entity.user is not None
            and entity.user.id == me.id
        ) or shown.casefold() == f"@{me.username}".casefold()
        if ours:
            before, _, after = message.text.partition(shown)
            before, after = before.strip(_PUNCTUATION), after.strip(_PUNCTUATION)
            return " ".join(p for p in (before, after) if p), after or before
    return None


def mention_command(said: str, me: BotIdentity, known: Container[str]) -> ParsedCommand | None:
    """What a message that mentions the bot asks for, as the command addressed to it:
    "pause" or "/pause" as /pause, nothing at all as /help; None for other text."""
    words = said.split()
    if not words:
        return ParsedCommand("help", me.username, ())
    name = words[0].removeprefix("/").rstrip(",:;.!?").casefold()
    if name in known:
        return ParsedCommand(name, me.username, tuple(words[1:]))
    return None


_PUNCTUATION = " \t\n,:;"


def _replies_to_us(message: Message, me: BotIdentity) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == me.id


def callback_inbound(update: Update, now: datetime) -> Inbound | None:
    """A button press as an Inbound, or None when it cannot be this person's own:
    no message (inline mode), data too long to be ours, or a private chat that is not
    the presser's (a replayed or forged press must never act as someone else)."""
    query = update.callback_query
    if query is None or query.data is None or query.message is None:
        return None
    chat = query.message.chat
    if chat.type == Chat.PRIVATE and chat.id != query.from_user.id:
        return None
    if chat.type not in (Chat.PRIVATE, Chat.GROUP, Chat.SUPERGROUP):
        return None
    if not fits_callback_data(query.data):
        return None
    # A callback query carries no time of its own; the moment it arrives stands in.
    return Inbound(address_of(query.from_user, chat), str(update.update_id), now, choice=query.data)


def kind_of(inbound: Inbound) -> str:
    """The event kind for logs: never the text itself."""
    if inbound.command is not None:
        return "command"
    return "choice" if inbound.choice is not None else "text"

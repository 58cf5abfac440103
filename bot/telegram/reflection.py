"""Group reflections on Telegram: who may facilitate, and delivery to other chats.

The engine decides who may do what; the adapter only tells it whether the person is
an admin of the group (`Inbound.facilitator`), asked with getChatMember for exactly the
events that need it: a `/reflect` command or a reflection button pressed in a group.

A reflection's messages may go to other chats than the one being answered
(`Outbound.to`): posts in the group and each participant's private prompts. Those are
delivered run by run, best effort: one person who blocked the bot never holds back the
group, the others, or the reply itself. Only `NotSent` (shutting down) stops it.

An admin posting as the group ("Remain anonymous") reaches bots as GroupAnonymousBot,
so the bot cannot tell who it is. Such a `/reflect` gets a short note instead of a
session nobody could steer; nothing reaches the engine under the shared identity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, Chat, ChatMember, Update
from telegram.error import TelegramError

from bot.telegram.retry import RetryPolicy, with_retries
from bot.telegram.text import first_sentence
from bot.telegram.updates import BotIdentity, address_of, parse_command
from dialogs.events import Address, Inbound, Outbound
from dialogs.followups.dispatcher import NotSent
from dialogs.routing import Run

log = logging.getLogger(__name__)

REFLECT_COMMAND = "reflect"
PRESS_PREFIXES = ("rf:", f"/{REFLECT_COMMAND}")
# The user Telegram shows for a message an admin sent anonymously, as the group.
GROUP_ANONYMOUS_BOT = 1087968824
ADMIN_STATUSES = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})
_GROUPS = (Chat.GROUP, Chat.SUPERGROUP)

Send = Callable[[Address, Sequence[Outbound]], Awaitable[None]]


def needs_facilitator_check(inbound: Inbound) -> bool:
    """A `/reflect` command or a reflection button (facilitator controls, the picker)
    in a group: the only events for which the adapter asks Telegram about admins."""
    if inbound.address.is_private:
        return False
    if inbound.command is not None:
        return inbound.command.name == REFLECT_COMMAND
    return inbound.choice is not None and inbound.choice.startswith(PRESS_PREFIXES)


async def is_chat_admin(bot: Bot, chat_id: int, user_id: int, retry: RetryPolicy) -> bool:
    """True when Telegram says the person owns or administers the chat. Any doubt
    (an anonymous sender, an API error) is False: the engine then refuses politely."""
    if user_id == GROUP_ANONYMOUS_BOT:
        return False
    try:
        member = await with_retries(
            lambda: bot.get_chat_member(chat_id, user_id), retry, what="getChatMember"
        )
    except TelegramError as exc:
        log.warning("chat member status unknown error=%s", type(exc).__name__)
        return False
    return member.status in ADMIN_STATUSES


async def is_chat_member(bot: Bot, chat_id: int, user_id: int, retry: RetryPolicy) -> bool:
    """True when Telegram says the person is in the group now (owner, admin, member,
    or restricted but still a member): only they may join its reflection. Any doubt
    is False. Raises nothing."""
    try:
        member = await with_retries(
            lambda: bot.get_chat_member(chat_id, user_id), retry, what="getChatMember"
        )
    except TelegramError as exc:
        log.warning("chat membership unknown error=%s", type(exc).__name__)
        return False
    if member.status in (*ADMIN_STATUSES, ChatMember.MEMBER):
        return True
    return member.status == ChatMember.RESTRICTED and bool(getattr(member, "is_member", False))


def refusal_toast(inbound: Inbound, replies: Sequence[Outbound], refusal: str | None) -> str | None:
    """The toast for a reflection button in a group that the engine refused (someone
    who is not facilitating pressed Next), or None. Shown only to the presser: the
    group gets no post, and the facilitator's buttons stay where they are."""
    if refusal is None or inbound.address.is_private or inbound.choice is None:
        return None
    if not inbound.choice.startswith(PRESS_PREFIXES):
        return None
    if any(reply.text == refusal and reply.to is None for reply in replies):
        return first_sentence(refusal)
    return None


def anonymous_reflect(update: Update, me: BotIdentity) -> Address | None:
    """Where to answer a `/reflect` sent by an anonymous admin in a group (which
    `message_inbound` ignores, as it comes from a bot), or None for anything else."""
    message = update.message
    if message is None or message.text is None or message.chat.type not in _GROUPS:
        return None
    sender = message.from_user
    anonymous = message.sender_chat is not None or (
        sender is not None and sender.id == GROUP_ANONYMOUS_BOT
    )
    if not anonymous or sender is None:
        return None
    command = parse_command(message.text)
    if command is None or command.name != REFLECT_COMMAND:
        return None
    if command.mention is not None and command.mention.casefold() != me.username.casefold():
        return None
    return address_of(sender, message.chat)


async def send_runs(
    send: Send,
    runs: Sequence[Run],
    *,
    what: str,
    together: bool = True,
    reply: Run | None = None,
) -> None:
    """Deliver each run to its own address, best effort, in order; then `reply`, the
    answer in the chat being answered, whose own failure is raised.

    `together` queues everything at once, in order (the outbox keeps that order and
    paces each chat); otherwise each waits for the one before. A failed run is logged
    by kind only, never with the address or text. `NotSent` is raised after the others
    were given their chance."""
    queued = [*runs, reply] if reply is not None else list(runs)
    if not queued:
        return
    results: list[BaseException | None] = []
    if together:
        # One flat gather: its tasks take their first step, and so join the queue,
        # in this order.
        results = await asyncio.gather(
            *(send(address, run) for address, run in queued), return_exceptions=True
        )
    else:
        for address, run in queued:
            try:
                await send(address, run)
                results.append(None)
            except Exception as exc:
                results.append(exc)
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise result
    if reply is not None and isinstance(results[-1], BaseException):
        raise results[-1]
    shutting_down: NotSent | None = None
    for (address, _), result in zip(runs, results, strict=False):
        if isinstance(result, NotSent):
            shutting_down = result
        elif isinstance(result, BaseException):
            log.info(
                "not delivered to another chat what=%s private=%s error=%s",
                what,
                address.is_private,
                type(result).__name__,
            )
    if shutting_down is not None:
        raise shutting_down

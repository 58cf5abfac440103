"""The engine's `Outbound` messages as Telegram posts: split, with keyboards, and with
personal content kept out of groups.

A group never sees a message marked `private_only` (every personal flow, safety replies
included, and exports): in its place goes one short neutral note with a "Continue
privately" button, a deep link that opens the private chat with the bot. A bot cannot
write first to someone who never started it, so the person has to take that step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.text import fits_callback_data, split_text
from dialogs.events import Address, Attachment, Choice, Outbound

log = logging.getLogger(__name__)

# The adapter's own words: the platform's way of saying "not here", not guide content.
_NOT_HERE = "That part is personal, so I'll keep it out of the group."
GROUP_NOTICE = f"{_NOT_HERE} Tap below to carry on with me in a private chat."
GROUP_NOTICE_NO_LINK = f"{_NOT_HERE} Message me directly to carry on."
CONTINUE_LABEL = "Continue privately"
# What the deep link's /start carries: the engine receives Command("start", ("group",)).
DEEP_LINK_PAYLOAD = "group"
# Labels this short (the 0-10 scale) share a row; longer ones get a row each.
_SHORT_LABEL = 4
_SHORT_PER_ROW = 6


@dataclass(frozen=True, slots=True)
class Post:
    """One Bot API call's worth: a text message (maybe with buttons), a document, or
    a photo (an image attachment, shown in the chat rather than as a file)."""

    text: str = ""
    keyboard: InlineKeyboardMarkup | None = None
    document: Attachment | None = None
    photo: Attachment | None = None


def is_private_chat(address: Address) -> bool:
    """Private only if Telegram says so: a private chat's id is the person's own id.

    The dispatcher marks every follow-up address private, even one planned from a
    group, so the flag alone would let a check-in land in a group chat.
    """
    return address.is_private and address.chat_id == address.user_id


def deep_link(bot_username: str, payload: str = DEEP_LINK_PAYLOAD) -> str:
    return f"https://t.me/{bot_username}?start={payload}"


def keyboard(
    choices: Sequence[Choice], *, private: bool = True, bot_username: str | None = None
) -> InlineKeyboardMarkup | None:
    usable = []
    for choice in choices:
        if choice.start_payload and bot_username and not private:
            # A press in a group cannot be answered privately (a bot cannot write
            # first to someone): the button opens the private chat instead, and the
            # guide receives `/start <start_payload>` there. In a private chat the
            # ordinary button works and needs no detour.
            usable.append(
                InlineKeyboardButton(
                    choice.label, url=deep_link(bot_username, choice.start_payload)
                )
            )
        # Content check proves payloads fit; a button Telegram would refuse would cost
        # the whole message, so it is dropped (typing the answer still works).
        elif fits_callback_data(choice.id):
            usable.append(InlineKeyboardButton(choice.label, callback_data=choice.id))
        else:
            log.warning("button dropped: callback data over 64 bytes")
    if not usable:
        return None
    short = all(len(button.text) <= _SHORT_LABEL for button in usable)
    per_row = _SHORT_PER_ROW if short else 1
    rows = [usable[i : i + per_row] for i in range(0, len(usable), per_row)]
    return InlineKeyboardMarkup(rows)


def group_notice(bot_username: str | None) -> Post:
    if not bot_username:
        return Post(GROUP_NOTICE_NO_LINK)
    button = InlineKeyboardButton(CONTINUE_LABEL, url=deep_link(bot_username))
    return Post(GROUP_NOTICE, InlineKeyboardMarkup([[button]]))


def render(messages: Sequence[Outbound], *, private: bool, bot_username: str | None) -> list[Post]:
    """The posts for `messages` in a private chat or a group, in order."""
    posts: list[Post] = []
    noticed = False
    for message in messages:
        more, noticed = render_one(
            message, private=private, bot_username=bot_username, noticed=noticed
        )
        posts.extend(more)
    return posts


def render_one(
    message: Outbound, *, private: bool, bot_username: str | None, noticed: bool = False
) -> tuple[list[Post], bool]:
    """The posts for one message, and whether a group has now had its note about
    personal content (`noticed`: one note per reply is enough)."""
    if message.private_only and not private:
        # Nothing of the message itself goes out.
        return ([] if noticed else [group_notice(bot_username)]), True
    posts: list[Post] = []
    pieces = split_text(message.text)
    markup = keyboard(message.choices, private=private, bot_username=bot_username)
    if markup is not None and not pieces:
        pieces = ["…"]  # buttons need a message to sit on
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        posts.append(Post(piece, markup if last else None))
    if message.attachment is not None and message.attachment.is_image:
        posts.append(Post(photo=message.attachment))
    elif message.attachment is not None:
        posts.append(Post(document=message.attachment))
    return posts, noticed

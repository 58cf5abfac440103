"""Which updates become which inbound events (no network: PTB objects from JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telegram import Bot, Update

from bot.telegram.render import is_private_chat, keyboard, render
from bot.telegram.updates import BotIdentity, callback_inbound, message_inbound, parse_command
from dialogs.events import Address, Choice, Command, Inbound, Outbound
from tests.telegram.fake_bot_api import BOT_ID, BOT_USERNAME, DEFAULT_TOKEN, FakeBotAPI

ME = BotIdentity(BOT_ID, BOT_USERNAME)
KNOWN = {"start", "pause", "help"}
BOT = Bot(DEFAULT_TOKEN)


def update(body: dict[str, Any], update_id: int = 7) -> Update:
    parsed = Update.de_json({"update_id": update_id, **body}, BOT)
    assert parsed is not None
    return parsed


def test_commands_parse_with_mentions_and_arguments() -> None:
    parsed = parse_command("/Stop@Guide_Bot checkins now")
    assert parsed is not None
    assert (parsed.name, parsed.mention, parsed.args) == ("stop", "Guide_Bot", ("checkins", "now"))
    assert parse_command("/ sigh") is None and parse_command("/usr/bin/env") is None


def test_a_private_message_keeps_its_id_time_and_address() -> None:
    fake = FakeBotAPI()
    inbound = message_inbound(
        update(fake.message_update(5, "hello", date=1_700_000_000)), ME, KNOWN
    )
    assert inbound is not None
    assert inbound.address == Address("telegram", "5", "5", True)
    assert inbound.event_id == "7" and inbound.text == "hello"
    assert inbound.at == datetime.fromtimestamp(1_700_000_000, UTC)


def test_deep_link_start_carries_its_payload() -> None:
    inbound = message_inbound(update(FakeBotAPI().message_update(5, "/start group")), ME, KNOWN)
    assert inbound is not None and inbound.command == Command("start", ("group",))


def test_group_messages_only_when_addressed_to_the_bot() -> None:
    fake = FakeBotAPI()

    def inbound_for(text: str, **kwargs: Any) -> object:
        body = fake.message_update(5, text, chat_id=-9, chat_type="group", **kwargs)
        return message_inbound(update(body), ME, KNOWN)

    assert inbound_for("just chatting") is None
    assert inbound_for("/roll") is None  # not one of ours, and not addressed to us
    assert inbound_for("/pause@other_bot") is None
    addressed = inbound_for(f"/pause@{BOT_USERNAME}")
    plain = inbound_for("/pause")
    for inbound in (addressed, plain):
        assert getattr(inbound, "command", None) == Command("pause")
        assert getattr(inbound, "address", None) == Address("telegram", "5", "-9", False)
    fake.messages[-9] = {1: {"message_id": 1, "date": 0, "chat": fake.chat(-9)}}
    fake.messages[-9][1]["from"] = fake.bot_user()
    reply = inbound_for("thanks", reply_to=1)
    assert getattr(reply, "text", None) == "thanks"
    fake.messages[-9][1]["from"] = fake.user(6)
    assert inbound_for("thanks", reply_to=1) is None  # a reply to someone else


def test_a_press_in_someone_elses_private_chat_is_refused() -> None:
    fake = FakeBotAPI()
    fake.messages[5] = {1: {"message_id": 1, "date": 0, "chat": fake.chat(5), "text": "q"}}
    now = datetime.now(UTC)
    own = callback_inbound(update(fake.callback_update(5, 1, "pause:rate:7:2")), now)
    assert own is not None and own.choice == "pause:rate:7:2" and own.at == now
    assert callback_inbound(update(fake.callback_update(6, 1, "x", chat_id=5)), now) is None
    assert callback_inbound(update(fake.callback_update(5, 1, "é" * 33)), now) is None


def test_private_content_never_renders_in_a_group() -> None:
    messages = [
        Outbound("Here's what I can do", choices=(Choice("/pause", "Start a pause"),)),
        Outbound("Your answers so far", private_only=True),
        Outbound("More of them", private_only=True),
    ]
    group = render(messages, private=False, bot_username=BOT_USERNAME)
    assert [p.text.split(",")[0] for p in group] == [
        "Here's what I can do",
        "That part is personal",
    ]
    assert len(render(messages, private=True, bot_username=BOT_USERNAME)) == 3
    # A follow-up planned from a group comes back marked private: the chat id decides.
    assert not is_private_chat(Address("telegram", "5", "-9", True))


def test_short_labels_share_rows_and_oversized_data_is_dropped() -> None:
    scale = keyboard([Choice(f"p:s:{n}:1", str(n)) for n in range(11)])
    assert scale is not None and [len(r) for r in scale.inline_keyboard] == [6, 5]
    assert keyboard([Choice("x" * 65, "Too long")]) is None


def test_a_mention_in_a_group_is_the_command_addressed_to_the_bot() -> None:
    fake = FakeBotAPI()

    def said(text: str, **kwargs: Any) -> Inbound | None:
        body = fake.message_update(5, text, chat_id=-9, chat_type="supergroup", **kwargs)
        return message_inbound(update(body), ME, KNOWN)

    by_command = said(f"/pause@{BOT_USERNAME} now")
    assert by_command is not None and by_command.command == Command("pause", ("now",))
    for text in (f"@{BOT_USERNAME} pause now", f"hey @{BOT_USERNAME}, /pause now"):
        inbound = said(text)
        assert inbound is not None and inbound.command == by_command.command, text
    bare = said(f"@{BOT_USERNAME}")
    assert bare is not None and bare.command == Command("help")
    # Anything else said to the bot is text, the mention taken out (and screened).
    plain = said(f"@{BOT_USERNAME.upper()} what is this")
    assert plain is not None and plain.text == "what is this"
    # Another bot's mention, or none at all, is not for us.
    assert said("@someone_else_bot pause") is None
    assert said("pause now, everyone") is None

"""Groups: the bot answers only what is addressed to it, and nothing personal shows."""

from __future__ import annotations

from typing import Any

from tests.telegram.conftest import Harness
from tests.telegram.fake_bot_api import BOT_USERNAME

ME = 4301
GROUP = -100777


def group_calls(h: Harness) -> list[Any]:
    return [c for c in h.fake.calls if c.chat_id == GROUP]


def button_urls(message: dict[str, Any]) -> list[str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b["url"] for row in rows for b in row if "url" in b]


async def test_chatter_and_other_bots_commands_are_ignored(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    for text in ("anyone up for lunch?", "/pause@some_other_bot", "/roll 2d6"):
        tg.fake.push_message(ME, text, chat_id=GROUP, chat_type="supergroup")
    # Updates from one person are handled in order, so once this answer is in, the
    # three before it were seen and ignored.
    out = await me.say(f"/help@{BOT_USERNAME}", until="start a pause now")
    assert len(out) == len(me.seen())
    assert {c.method for c in group_calls(tg)} <= {"sendMessage", "sendChatAction"}


async def test_a_personal_flow_asked_for_in_a_group_moves_to_a_private_chat(
    tg: Harness,
) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    out = await me.say("/pause", until="private chat", chat_type="group")
    [notice] = out
    assert button_urls(notice) == [f"https://t.me/{BOT_USERNAME}?start=group"]
    said_in_group = " ".join(str(c.params) for c in group_calls(tg))
    for private_words in ("pause for a minute", "Breathe in", "Done"):
        assert private_words not in said_in_group
    assert not tg.fake.ok_calls("sendDocument")


async def test_a_crisis_reply_in_a_group_shows_nothing_personal(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    await me.say("/help", until="start a pause now", chat_type="group")
    bot_message = me.seen()[-1]["message_id"]
    out = await me.say(
        "honestly i just want to kill myself", until="private chat", reply_to=bot_message
    )
    assert len(out) == 1 and button_urls(out[0])
    said_in_group = " ".join(str(c.params) for c in group_calls(tg))
    assert "988" not in said_in_group and "Thank you for telling me" not in said_in_group
    # The signal itself was taken seriously: the engine recorded it.
    assert (await tg.profile(ME)).crisis_at is not None


async def test_export_in_a_group_sends_no_file(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    await me.say(f"/export@{BOT_USERNAME}", until="private chat", chat_type="group")
    assert not tg.fake.ok_calls("sendDocument")


async def test_a_followup_planned_from_a_group_shows_only_the_note_there(tg: Harness) -> None:
    from datetime import timedelta

    from dialogs.store import FollowUpRequest, UserKey

    await tg.onboard(ME)
    async with tg.guide.store.session() as s:
        await s.schedule_followup(
            UserKey("telegram", str(ME)),
            FollowUpRequest(
                flow_id="followup",
                chat_id=str(GROUP),
                due_at=tg.clock.now(),
                expires_at=tg.clock.now() + timedelta(hours=6),
                dedupe_key="from-the-group",
            ),
        )
    assert await tg.guide.dispatcher.run_due() == 1
    [note] = await tg.person(ME, GROUP).replies_after(0, "private chat")
    assert button_urls(note)
    assert "checking in" not in " ".join(str(c.params) for c in group_calls(tg))


async def test_a_message_that_mentions_the_bot_gets_the_commands_answer(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    by_command = await me.say(f"/help@{BOT_USERNAME}", until="start a pause now")
    by_mention = await me.say(f"@{BOT_USERNAME} help", until="start a pause now")
    assert [m["text"] for m in by_mention] == [m["text"] for m in by_command]
    # A bare mention is asked for help too; "pause" moves to a private chat as /pause does.
    bare = await me.say(f"@{BOT_USERNAME}", until="start a pause now")
    assert [m["text"] for m in bare] == [m["text"] for m in by_command]
    [notice] = await me.say(f"hey @{BOT_USERNAME}, pause", until="private chat")
    assert button_urls(notice) == [f"https://t.me/{BOT_USERNAME}?start=group"]


async def test_a_mention_with_words_of_distress_is_screened_like_any_text(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME, GROUP)
    [note] = await me.say(
        f"@{BOT_USERNAME} honestly i just want to kill myself", until="private chat"
    )
    assert button_urls(note)
    assert (await tg.profile(ME)).crisis_at is not None

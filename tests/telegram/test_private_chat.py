"""Private chats, end to end: PTB polls the fake, the real engine answers."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text as sql

from dialogs.events import Inbound
from dialogs.store import FollowUpStatus, UserKey
from tests.telegram.conftest import Harness

ME = 4201


def texts(messages: list[dict[str, object]]) -> str:
    return "\n".join(str(m.get("text", "")) for m in messages)


async def test_command_menu_is_registered_at_start(tg: Harness) -> None:
    expected = [
        {"command": c.name, "description": c.description} for c in tg.guide.content.commands.menu()
    ]
    assert tg.fake.commands == expected
    assert [c.method for c in tg.fake.ok_calls("setMyCommands")] == ["setMyCommands"]


async def test_pause_flow_with_buttons_then_the_followup_arrives(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME)
    first = await me.say("/pause", until="Breathe in")
    assert "Let's pause for a minute" in texts(first)
    # The answer was ready at once: no "typing" call spent on it.
    assert tg.fake.ok_calls("sendChatAction", ME) == []
    await me.press("Done", until="How loud is it inside")
    await me.press("7", until="What set it off?")
    await me.press("Silence", until="What does it want to do?")
    check = await me.press("Reach out more", until="Does that fit")
    assert "their activation, not their intention" in texts(check)
    note = await me.press("It fits", until="What would help most")
    assert "safety through closeness" in texts(note)
    await me.press("Settle and wait a set time", until="check on you later")
    done = await me.press("In 20 minutes", until="/pause")
    assert "Done, I'll check in at" in texts(done)
    state = await tg.state(ME)
    assert state.flow_id is None
    # No button is left to press anywhere in the chat.
    assert all("reply_markup" not in m for m in me.seen()[:-1])

    tg.clock.advance(timedelta(minutes=21))
    before = len(me.seen())
    assert await tg.guide.dispatcher.run_due() == 1
    hello = await me.replies_after(before, "checking in like you asked")
    assert [b["text"] for b in hello[-1]["reply_markup"]["inline_keyboard"][0]] == ["Better"]
    async with tg.guide.store.session() as s:
        assert await s.pending_followups(UserKey("telegram", str(ME))) == []
    await me.press("Better", until="How loud is it inside now")


async def test_a_stale_press_is_recorded_a_toast_before_the_toast_is_answered(
    tg: Harness,
) -> None:
    # The toast may take long (retries, a 429's wait): all that while, the stale
    # note's rows must not look like a reply left unsent, or the sweep posts them.
    await tg.onboard(ME)
    me = tg.person(ME)
    await me.say("/pause", until="Breathe in")
    breathe, done = me.button("Done")
    await me.press("Done", until="How loud")
    sent_before = len(tg.fake.ok_calls("sendMessage"))
    tg.fake.hold("answerCallbackQuery", accept=False)
    tg.fake.push_callback(ME, breathe["message_id"], done, chat_id=ME)
    await tg.fake.wait_for(lambda: tg.fake.holding)
    async with tg.guide.store.engine.connect() as connection:
        fates = await connection.execute(
            sql("select status, reason from outbound where status != 'sent'")
        )
        assert [tuple(row) for row in fates] == [("superseded", "toast")] * 2
    tg.clock.advance(timedelta(minutes=1))
    assert await tg.guide.delivery.resend_unsent() == 0
    tg.fake.release()
    await tg.fake.wait_for(lambda: tg.fake.ok_calls("answerCallbackQuery"))
    assert len(tg.fake.ok_calls("sendMessage")) == sent_before


async def test_pause_flow_with_typed_answers(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME)
    await me.say("/pause", until="Breathe in")
    await me.say("done", until="How loud")
    await me.say("7/10", until="What set it off?")
    await me.say("silense", until="What does it want to do?")
    await me.say("pull away", until="Does that fit")
    out = await me.say("1", until="What would help most")
    assert "calm through less input" in texts(out)
    await me.say("write a message", until="Write what you'd want to send")
    draft = "I can't believe you left again and didn't say anything"
    await me.say(draft, until="check on you later")
    await me.say("no thanks", until="it counts")
    assert (await tg.state(ME)).flow_id is None
    # Nothing the person typed is ever echoed back by the bot.
    assert not any(draft in str(c.params) for c in tg.fake.calls if c.method != "getUpdates")


async def test_stale_and_forged_presses_are_answered_and_change_nothing(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await tg.onboard(ME)
    await tg.onboard(ME + 1)
    me, other = tg.person(ME), tg.person(ME + 1)
    await me.say("/pause", until="Breathe in")
    breathe, done = me.button("Done")
    await me.press("Done", until="How loud")
    scale, _ = me.button("7")
    # The other person is at the first step of their own pause, in their own chat.
    await other.say("/pause", until="Breathe in")
    _, theirs = other.button("Done")
    before_state = await tg.state(ME)
    other_before = await tg.state(ME + 1)
    reached: list[str] = []
    real_handle = tg.guide.engine.handle

    async def handle(inbound: Inbound) -> Any:
        reached.append(inbound.address.user_id)
        return await real_handle(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    sent_before = len(tg.fake.ok_calls("sendMessage"))
    edits_before = len(tg.fake.ok_calls("editMessageText"))

    presses = [
        # A replay of the press already made (an old step's payload).
        (ME, breathe["message_id"], done),
        # Tampered data on the current question: the right step, a turn never shown.
        (ME, scale["message_id"], "pause:rate:7:zzz"),
        # Not a payload at all, and too long for Telegram's 64 bytes.
        (ME, scale["message_id"], "x" * 80),
        # Someone else pressing a button in this person's private chat, with data
        # that is valid for their own conversation: it must not act for them here
        # (their next question would land in this chat).
        (ME + 1, scale["message_id"], theirs),
    ]
    for user_id, message_id, data in presses:
        answers = len(tg.fake.ok_calls("answerCallbackQuery"))
        tg.fake.push_callback(user_id, message_id, data, chat_id=ME)
        answer = await tg.fake.wait_for(
            lambda n=answers: tg.fake.ok_calls("answerCallbackQuery")[n:]  # type: ignore[misc]
        )
        assert "earlier step" in answer[0].params.get("text", ""), (user_id, data)

    assert await tg.state(ME) == before_state
    assert await tg.state(ME + 1) == other_before
    # The adapter refused the other person's press itself: only this person's
    # replayed and tampered presses reached the engine.
    assert reached == [str(ME), str(ME)]
    assert len(tg.fake.ok_calls("sendMessage")) == sent_before
    assert len(tg.fake.ok_calls("editMessageText")) == edits_before
    # The engine's stored "that was an earlier step" replies were said as toasts
    # instead: recorded so, and never left for the resend sweep.
    async with tg.guide.store.engine.connect() as connection:
        fates = await connection.execute(
            sql("select status, reason from outbound where status != 'sent'")
        )
        # Two presses reached the engine (the note and the question again, each); the
        # other two were refused before it.
        assert [tuple(row) for row in fates] == [("superseded", "toast")] * 4
    tg.clock.advance(timedelta(minutes=1))
    assert await tg.guide.delivery.resend_unsent() == 0
    # The real question still has its buttons and still works.
    await me.press("7", until="What set it off?")


async def test_export_sends_a_json_document(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME)
    await me.say("/export", until="delete all of it with /forget")
    [call] = tg.fake.ok_calls("sendDocument", ME)
    upload = call.params["document"]
    assert upload["filename"] == "pausecheck-export.json"
    assert json.loads(upload["data"])  # the file holds the person's data as JSON
    assert [m for m in me.seen() if "document" in m]


async def test_deep_link_start_reaches_the_engine_with_its_payload(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialogs.content import load_content
    from dialogs.events import Command
    from tests.conftest import CONTENT_DIR

    content = load_content(CONTENT_DIR)
    assert content.reflection_copy is not None
    seen: list[Inbound] = []
    real = tg.guide.engine.handle

    async def handle(inbound: Inbound) -> object:
        seen.append(inbound)
        return await real(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    await tg.onboard(ME)
    me = tg.person(ME)
    # "Continue privately" in a group opens this chat with /start group: the start
    # flow, from its first words, in the private chat.
    out = await me.say("/start group", until="Where would you like to begin?")
    assert seen[-1].command == Command("start", ("group",))
    assert out[0]["text"].startswith("Hi, I'm Pausecheck, an automated guide.")
    assert (await tg.state(ME)).flow_id == "start"
    # A reflection's Join link carries its token; one that names no reflection is
    # answered as such, which only the payload can tell.
    await me.say("/start rf_nosuchtoken", until=content.reflection_copy.ended)
    assert seen[-1].command == Command("start", ("rf_nosuchtoken",))


async def test_long_text_is_split_into_messages_on_sentence_boundaries(tg: Harness) -> None:
    from dialogs.events import Outbound
    from tests.telegram.conftest import address

    sentence = "This sentence is one of many in a long reply. "
    text = sentence * 200  # about 9,400 characters
    await tg.adapter.send(address(ME), [Outbound(text.strip())])
    sent = tg.fake.ok_calls("sendMessage", ME)
    assert len(sent) == 3
    assert all(len(c.params["text"]) <= 4096 for c in sent)
    assert all(c.params["text"].endswith("reply.") for c in sent)
    assert " ".join(c.params["text"] for c in sent) == text.strip()


async def test_a_failed_reply_is_logged_without_text_and_followed_by_an_apology(
    tg: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await tg.onboard(ME)
    tg.fake.fail(400, methods=["sendMessage"], times=1)
    caplog.set_level(logging.INFO)
    out = await tg.person(ME).say("/help", until="Sorry, something went wrong")
    assert out[-1]["text"].startswith("Sorry, something went wrong")
    failure = [r for r in caplog.records if "telegram update failed" in r.getMessage()]
    assert failure and "kind=command" in failure[0].getMessage()
    assert str(ME) not in failure[0].getMessage()  # a hashed reference, never the id
    assert all("/help" not in r.getMessage() for r in caplog.records)


async def test_blocked_user_is_marked_unreachable_and_the_dispatcher_goes_on(
    tg: Harness,
) -> None:
    from dialogs.store import FollowUpRequest

    blocked, other = ME, ME + 1
    for user_id in (blocked, other):
        await tg.onboard(user_id)
        async with tg.guide.store.session() as s:
            await s.schedule_followup(
                UserKey("telegram", str(user_id)),
                FollowUpRequest(
                    flow_id="followup",
                    chat_id=str(user_id),
                    due_at=tg.clock.now(),
                    expires_at=tg.clock.now() + timedelta(hours=6),
                    dedupe_key=f"test:{user_id}",
                ),
            )
    tg.fake.block(blocked)
    assert await tg.guide.dispatcher.run_due() == 2
    assert "checking in" in texts(tg.person(other).seen())
    assert tg.person(blocked).seen() == []
    assert [c.status for c in tg.fake.calls if c.chat_id == blocked] == [403]
    assert (await tg.profile(blocked)).unreachable_at == tg.clock.now()
    assert (await tg.profile(other)).unreachable_at is None
    async with tg.guide.store.session() as s:
        blocked_row = await s.get_followup(1)
    # The follow-up ran; its message is recorded as dropped, not retried.
    assert blocked_row is not None and blocked_row.status is FollowUpStatus.SENT
    async with tg.guide.store.engine.connect() as connection:
        fate = await connection.execute(
            sql("select status, reason from outbound where recipient = :who"), {"who": str(ME)}
        )
        assert [tuple(row) for row in fate] == [("dropped", "unreachable")]
    # Writing again clears the mark, as the engine promises.
    tg.fake.blocked.clear()
    await tg.person(blocked).say("/help", until="")
    assert (await tg.profile(blocked)).unreachable_at is None

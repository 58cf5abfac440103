"""The engine end to end on the real content, store and safety screen."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.due import DueStatus
from dialogs.engine import Engine
from dialogs.events import Address, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import ConversationState, FollowUpStatus, UserKey
from storage import SqlStore
from tests.conftest import Chat, make_engine, onboard, texts

USER = UserKey("test", "u1")


async def state_of(store: SqlStore, clock: ManualClock, user: UserKey = USER) -> ConversationState:
    async with store.session() as s:
        return await s.load_state(user, clock.now())


async def walk_pause_to_move(chat: Chat) -> None:
    await chat.command("pause")
    await chat.press("Done")
    await chat.press("7")
    await chat.press("Silence")
    await chat.press("Reach out more")
    await chat.press("It fits")


async def ask_for_followup_in_20_minutes(chat: Chat) -> None:
    await walk_pause_to_move(chat)
    await chat.press("Settle and wait a set time")
    await chat.press("In 20 minutes")


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[Address, list[Outbound]]] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.append((address, list(messages)))


async def test_pause_flow_with_buttons_reaches_the_end_and_schedules_a_followup(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    first = await chat.command("pause")
    assert "pause for a minute" in texts(first)
    assert [c.label for c in chat.buttons()] == ["Done", "Skip the breathing"]
    rate = await chat.press("Done")
    assert "0 is calm, 10" in texts(rate)
    assert [c.label for c in chat.buttons()] == [str(n) for n in range(11)]
    await chat.press("7")
    await chat.press("Silence")
    check = await chat.press("Reach out more")
    assert "activation, not their intention" in texts(check)
    assert check[-1].text == "Does that fit, even a little?"
    shown = texts(await chat.press("It fits"))
    assert "safety through closeness" in shown
    assert "calm through less input" not in shown
    settle = await chat.press("Settle and wait a set time")
    assert "anything but the phone" in texts(settle)
    done = await chat.press("In 20 minutes")
    assert "Done, I'll check in at 12:20." in texts(done)
    assert "/pause" in done[-1].text
    state = await state_of(store, clock)
    assert state.flow_id is None and state.variables == {}
    async with store.session() as s:
        pending = await s.pending_followups(USER)
    assert [(f.flow_id, f.due_at - clock.now()) for f in pending] == [
        ("followup", timedelta(minutes=20))
    ]


async def test_pause_flow_typed_answers_by_number_label_and_close_spelling(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("pause")
    await chat.say("done")
    await chat.say("7/10")
    out = await chat.say("silense")  # misspelt label
    assert "What does it want to do?" in texts(out)
    out = await chat.say("pull away")
    assert "activation, not their intention" in texts(out)
    out = await chat.say("1")  # "It fits"
    assert "calm through less input" in texts(out)
    out = await chat.say("write a message")
    assert "Write what you'd want to send" in texts(out)
    out = await chat.say("I can't believe you left again and didn't say anything")
    assert "let it sit" in texts(out)
    out = await chat.say("no thanks")
    assert "it counts" in texts(out)
    async with store.session() as s:
        assert await s.pending_followups(USER) == []


async def test_unmatched_text_at_what_happened_chooses_something_else(chat: Chat) -> None:
    await chat.command("pause")
    await chat.say("done")
    await chat.say("6")
    out = await chat.say("she rolled her eyes at dinner")
    assert "What does it want to do?" in texts(out)


async def test_unmatched_text_asks_again_with_the_same_buttons(chat: Chat) -> None:
    await chat.command("pause")
    await chat.say("done")
    await chat.say("6")
    await chat.say("a tone")
    before = chat.buttons()
    out = await chat.say("purple elephant")
    assert "Which of these fits best?" in out[0].text
    assert "didn't" not in texts(out)
    assert out[-1].choices == before


async def test_scale_rejects_out_of_range_kindly(chat: Chat) -> None:
    await chat.command("pause")
    await chat.say("done")
    out = await chat.say("42")
    assert "A number from 0 to 10" in out[0].text
    assert [c.label for c in out[-1].choices] == [str(n) for n in range(11)]


async def test_role_of_urge_changes_the_copy(chat: Chat) -> None:
    await chat.command("pause")
    await chat.press("Done")
    await chat.press("4")
    await chat.press("Distance")
    await chat.press("Both at once")
    out = await chat.press("It fits")
    assert "Mixed or unclear urges" in texts(out)


async def test_stale_button_changes_nothing(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("pause")
    old_done = chat.button("Done")
    await chat.press("Done")
    before = await state_of(store, clock)
    out = await chat.send(choice=old_done.id)
    assert "earlier step" in out[0].text
    assert [c.label for c in out[-1].choices] == [str(n) for n in range(11)]
    after = await state_of(store, clock)
    assert (after.node_id, after.turn, after.variables) == (
        before.node_id,
        before.turn,
        before.variables,
    )


@pytest.mark.parametrize(
    "payload", ["garbage", "pause:ground:done", "pause:ground:done:zzzzzzzz", "x:y:z:1", ":::", "/"]
)
async def test_forged_payloads_change_nothing(
    chat: Chat, store: SqlStore, clock: ManualClock, payload: str
) -> None:
    await chat.command("pause")
    before = await state_of(store, clock)
    out = await chat.send(choice=payload)
    assert "earlier step" in out[0].text
    after = await state_of(store, clock)
    assert (after.node_id, after.turn) == (before.node_id, before.turn)


async def test_button_of_an_ended_flow_is_stale(chat: Chat) -> None:
    await chat.command("help")
    old = chat.button("Not now")
    await chat.press("Not now")
    out = await chat.send(choice=old.id)
    assert "earlier step" in out[0].text


async def test_same_event_twice_is_handled_once(
    engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    from dialogs.events import Command

    address = Address("test", "u1", "c1")
    await onboard(store, clock, address)
    await engine.handle(Inbound(address, "p", clock.now(), text="hi"))
    start = Inbound(address, "dup-1", clock.now(), command=Command("pause"))
    out1 = await engine.handle(start)
    state1 = await state_of(store, clock)
    assert "pause for a minute" in texts(out1)
    assert (state1.flow_id, state1.node_id) == ("pause", "ground")
    # Redelivered, or another body under an id already handled: nothing happens.
    out2 = await engine.handle(start)
    out3 = await engine.handle(Inbound(address, "dup-1", clock.now(), command=Command("stop")))
    state2 = await state_of(store, clock)
    assert out2 == [] and out3 == []
    assert state2 == state1
    done = Inbound(address, "dup-2", clock.now(), text="done")
    await engine.handle(done)
    await engine.handle(done)
    async with store.session() as s:
        state = await s.load_state(USER, clock.now())
    assert state.node_id == "rate"


async def test_restart_resumes_at_the_same_step(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    first = make_engine(content, store, clock, safety_screen, resources)
    chat = Chat(first, clock=clock)
    await onboard(store, clock, chat.address)
    await walk_pause_to_move(chat)
    # A new engine over the same store is what a restarted process has.
    second = make_engine(content, store, clock, safety_screen, resources)
    greeting = await second.greet(chat.address)
    assert "Here's where we left off" in greeting[0].text
    assert "What would help most right now?" in greeting[-1].text
    chat2 = Chat(second, clock=clock)
    out = await chat2.say("plan a calm talk")
    assert "talk about the loop" in texts(out)


async def test_first_greeting_says_what_it_is_and_offers_a_pause_at_once(
    engine: Engine,
) -> None:
    out = await engine.greet(Address("test", "new", "new"))
    assert "automated guide" in texts(out)
    # Help first: one tap to the breathing; the agreement comes when the pause goes on.
    assert out[-1].choices[0].label == "Take a pause now"


async def test_changed_flow_falls_back_to_its_start_with_an_apology(
    chat: Chat, store: SqlStore, clock: ManualClock, content: Content
) -> None:
    await chat.command("pause")
    async with store.session() as s:
        await s.save_state(
            USER,
            ConversationState("pause", "step_removed_in_an_update", {}, 5, "old-version", "c1"),
            clock.now(),
        )
    out = await chat.say("done")
    assert "lost my place" in out[0].text
    assert "pause for a minute" in texts(out)
    state = await state_of(store, clock)
    assert (state.node_id, state.content_version) == ("ground", content.versions["pause"])


async def test_changed_flow_keeps_going_when_the_step_still_fits(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("pause")
    async with store.session() as s:
        st = await s.load_state(USER, clock.now())
        await s.save_state(
            USER,
            ConversationState(st.flow_id, st.node_id, st.variables, st.turn, "old-version", "c1"),
            clock.now(),
        )
    out = await chat.say("done")
    assert "lost my place" not in texts(out)
    assert "0 is calm" in texts(out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "came through empty"),
        ("   \t ", "came through empty"),
        ("\x00\x07\x1b", "came through empty"),
        ("🙂🙂🙂", "Which of these fits best?"),
    ],
)
async def test_odd_input_mid_flow_gets_a_kind_answer_and_the_question_again(
    chat: Chat, text: str, expected: str
) -> None:
    await chat.command("pause")
    out = await chat.say(text)
    assert expected in out[0].text
    assert [c.label for c in out[-1].choices] == ["Done", "Skip the breathing"]


async def test_ten_thousand_characters_are_kept_to_the_step_limit(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await walk_pause_to_move(chat)
    await chat.say("write a message to send later")
    out = await chat.say("a" * 10_000)
    assert "kept the first 1000 characters" in out[0].text
    assert "let it sit" in texts(out)


async def test_long_text_at_a_choice_step_is_not_matched(chat: Chat) -> None:
    await chat.command("pause")
    out = await chat.say("done " * 2000)
    # Someone pouring it out is thanked, not told they were not understood.
    assert "Thank you for telling me that" in out[0].text
    assert [c.label for c in out[-1].choices] == ["Done", "Skip the breathing"]


async def test_unknown_command_gets_pointed_to_help(chat: Chat) -> None:
    out = await chat.command("dance")
    assert out[0].text == "I don't know /dance. /help lists what I can do."


async def test_text_with_no_flow_running_offers_the_idle_menu(chat: Chat) -> None:
    out = await chat.say("hello?")
    assert "Want to start one?" in out[0].text
    assert [c.label for c in out[0].choices] == ["Start a pause", "What can you do?"]
    started = await chat.press("Start a pause")
    assert "pause for a minute" in texts(started)


async def test_stop_ends_the_flow_and_cancels_followups_when_told_to(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await walk_pause_to_move(chat)
    await chat.press("Settle and wait a set time")
    await chat.press("In an hour")
    await chat.command("pause")
    out = await chat.command("stop")
    assert "Also cancel my check on how you're doing" in out[0].text
    state = await state_of(store, clock)
    assert state.flow_id is None
    await chat.press("Yes, cancel")
    async with store.session() as s:
        assert await s.pending_followups(USER) == []
    again = await chat.command("stop")
    assert "Nothing is running" in again[0].text


async def test_crisis_text_mid_flow_is_answered_first_with_resources_and_no_reframe(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("pause")
    await chat.press("Done")
    out = await chat.say("honestly i just want to kill myself")
    shown = texts(out)
    assert "988" in shown
    assert "Are you safe right now?" in shown
    assert "activation" not in shown
    state = await state_of(store, clock)
    # The crisis flow hands over to its own safety check after the helplines.
    assert state.flow_id == "crisis_check"


async def test_crisis_in_command_arguments_is_screened_too(chat: Chat) -> None:
    out = await chat.command("pause", "i", "want", "to", "die")
    assert "Are you safe right now?" in texts(out)


async def test_danger_text_routes_to_the_danger_flow(chat: Chat) -> None:
    out = await chat.say("I'm scared of him, he hit me last night")
    first = texts(out)
    # The first reply already names who to call, before the safe-to-chat question.
    assert "1-800-799-7233" in first and "call 911" in first
    assert first.index("1-800-799-7233") < first.index("Is it safe to keep chatting here?")
    out = await chat.press("It's safe to chat")
    assert "isn't a push-pull pattern" in texts(out)


async def test_not_safe_repeats_the_emergency_number_in_one_short_message(chat: Chat) -> None:
    await chat.say("he punches walls when he's angry and I'm scared")
    out = await chat.press("Not safe right now")
    assert len(out) == 1
    assert "call 911" in out[0].text and len(out[0].text) <= 160


async def test_sos_works_from_any_state(chat: Chat) -> None:
    await walk_pause_to_move(chat)
    out = await chat.command("sos")
    assert "call 911" in texts(out)
    out = await chat.press("Thoughts of suicide or self-harm")
    assert "988" in texts(out)


async def test_followup_is_delivered_when_due_and_not_before(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(minutes=19))
    assert await dispatcher.run_due() == 0
    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_due() == 1
    [(address, messages)] = sender.sent
    assert address == Address("test", "u1", "c1", True)
    assert "checking in like you asked" in texts(messages)
    chat.seen.extend(messages)  # what the person now sees in their chat
    out = await chat.press("Better")
    assert "How loud is it inside now" in texts(out)
    await chat.press("3")
    out = await chat.press("Moving my body")
    assert "New moves usually come before new feelings" in texts(out)
    assert await dispatcher.run_due() == 0


async def test_followup_waits_while_the_person_is_mid_flow(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=19))
    await chat.command("pause")  # busy again when it comes due
    clock.advance(timedelta(minutes=1))
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    assert await dispatcher.run_due() == 1
    assert sender.sent == []
    state = await state_of(store, clock)
    assert (state.flow_id, state.node_id) == ("pause", "ground")
    await chat.command("stop")
    await chat.press("Yes, cancel")  # cancels it, as /stop's question promises
    clock.advance(timedelta(minutes=10))
    assert await dispatcher.run_due() == 0
    assert sender.sent == []


async def test_postponed_followup_arrives_after_the_flow_ends(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=19))
    await chat.command("help")
    clock.advance(timedelta(minutes=1))
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    await dispatcher.run_due()
    assert sender.sent == []
    await chat.press("Not now")  # help ends
    clock.advance(timedelta(minutes=10))
    assert await dispatcher.run_due() == 1
    assert "checking in" in texts(sender.sent[0][1])


async def test_followup_late_beyond_its_limit_is_recorded_as_missed(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    async with store.session() as s:
        [followup] = await s.pending_followups(USER)
    clock.advance(timedelta(minutes=20) + timedelta(hours=6, seconds=1))
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    assert await dispatcher.run_due() == 1
    assert sender.sent == []
    async with store.session() as s:
        row = await s.get_followup(followup.id)
    assert row is not None and row.status is FollowUpStatus.MISSED


async def test_followups_for_a_platform_without_a_sender_are_left_alone(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(hours=1))
    dispatcher = Dispatcher(store, engine, {"other": RecordingSender()}, clock)
    assert await dispatcher.run_due() == 0
    async with store.session() as s:
        assert len(await s.pending_followups(USER)) == 1


async def test_start_due_skips_a_followup_that_is_not_claimed(
    engine: Engine, store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    async with store.session() as s:
        [followup] = await s.pending_followups(USER)
    outcome = await engine.start_due(followup)
    assert outcome.status is DueStatus.SKIPPED


async def test_evening_followup_is_at_seven_local_time(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    from datetime import UTC, datetime

    clock.set(datetime(2026, 7, 1, 12, 0, tzinfo=UTC))  # 13:00 in London (BST)
    await walk_pause_to_move(chat)
    await chat.press("Settle and wait a set time")
    await chat.press("This evening")
    async with store.session() as s:
        [followup] = await s.pending_followups(USER)
    assert followup.due_at == datetime(2026, 7, 1, 18, 0, tzinfo=UTC)


async def test_a_store_failure_gets_an_apology_not_silence(
    chat: Chat, store: SqlStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    @asynccontextmanager
    async def database_gone() -> AsyncIterator[object]:
        # What the driver raises when the server went away (either backend).
        raise OperationalError("BEGIN", None, ConnectionError("server closed the connection"))
        yield  # pragma: no cover

    monkeypatch.setattr(store, "session", database_gone)
    with caplog.at_level(logging.ERROR):
        out = await chat.say("hello")
    assert "something went wrong on my side" in out[0].text
    assert "hello" not in caplog.text

"""/stop: ends the running flow at once, and asks before cancelling anything planned,
naming each with its time. A promise to a partner ("I'll be back at 21:40") is never
cancelled by stopping a flow unless the person says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialogs.clock import ManualClock
from dialogs.store import FollowUp, FollowUpRequest, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts

USER = UserKey("test", "u1")
# 20:00 in London (winter): the evening, outside quiet hours.
EVENING = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)


async def pending(store: SqlStore) -> list[FollowUp]:
    async with store.session() as s:
        return await s.pending_followups(USER)


async def promise_to_be_back_in_an_hour(chat: Chat) -> None:
    await chat.command("space")
    await chat.press("In an hour")
    await chat.press("Simple and clear")
    await chat.press("Yes, remind me")


async def test_stop_keeps_a_space_return_reminder_until_the_person_says(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await promise_to_be_back_in_an_hour(chat)
    [reminder] = await pending(store)
    assert reminder.flow_id == "space_return"
    await chat.command("pause")
    out = await chat.command("stop")
    assert texts(out) == "Stopped. Also cancel your reminder to go back at 21:00?"
    assert [c.label for c in chat.buttons()] == ["Yes, cancel", "No, keep"]
    # Stopping the pause changed nothing planned, and the pause is over.
    assert [f.id for f in await pending(store)] == [reminder.id]
    async with store.session() as s:
        assert (await s.load_state(USER, clock.now())).flow_id is None

    out = await chat.press("No, keep")
    assert "Kept" in texts(out)
    assert [f.id for f in await pending(store)] == [reminder.id]

    await chat.command("stop")
    out = await chat.press("Yes, cancel")
    assert texts(out).startswith("Cancelled your reminder to go back at 21:00.")
    assert await pending(store) == []


async def test_every_planned_message_is_named_in_the_order_it_comes(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await promise_to_be_back_in_an_hour(chat)
    await chat.command("pause")
    for label in ("Done", "7", "Silence", "Reach out more", "It fits"):
        await chat.press(label)
    await chat.press("Settle and wait a set time")
    await chat.press("In 20 minutes")
    out = await chat.command("stop")
    assert texts(out) == (
        "Nothing is running right now. Also cancel my check on how you're doing at 20:20"
        " and your reminder to go back at 21:00?"
    )
    await chat.say("yes")  # typed works as well as the button
    assert await pending(store) == []


async def test_yes_cancels_only_what_the_question_named(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await promise_to_be_back_in_an_hour(chat)
    await chat.command("stop")
    # Planned after the question was asked (by another worker, say): not named, so
    # its yes does not cancel it.
    async with store.session() as s:
        await s.schedule_followup(
            USER,
            FollowUpRequest(
                flow_id="followup",
                chat_id="c1",
                due_at=clock.now() + timedelta(hours=2),
                expires_at=clock.now() + timedelta(hours=8),
                dedupe_key="later",
            ),
        )
    [_, later] = await pending(store)
    out = await chat.press("Yes, cancel")
    assert "your reminder to go back" in texts(out) and "check on how" not in texts(out)
    assert [f.id for f in await pending(store)] == [later.id]


async def test_an_old_question_changes_nothing(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await promise_to_be_back_in_an_hour(chat)
    await chat.command("stop")
    question = chat.button("Yes, cancel")
    await chat.command("pause")
    await chat.press("Done")
    out = await chat.send(choice=question.id)
    assert "earlier step" in texts(out)
    assert len(await pending(store)) == 1


async def test_a_recurring_checkin_stays_and_has_its_own_button(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(EVENING)
    await chat.command("checkin")
    await chat.press("Every day")
    await chat.press("09:00")
    [checkin] = await pending(store)
    assert checkin.kind == "checkin"
    out = await chat.command("stop")
    assert texts(out) == (
        "Nothing is running right now. Your regular check-in stays (next tomorrow at 09:00)."
    )
    assert [c.label for c in chat.buttons()] == ["Stop check-ins"]
    assert len(await pending(store)) == 1
    out = await chat.press("Stop check-ins")
    assert "no more regular check-ins" in texts(out)
    assert await pending(store) == []


async def test_stop_with_nothing_planned_says_so(chat: Chat) -> None:
    await chat.command("pause")
    out = await chat.command("stop")
    assert texts(out).startswith("Stopped. Nothing else will happen")
    again = await chat.command("stop")
    assert "Nothing is running right now" in texts(again)

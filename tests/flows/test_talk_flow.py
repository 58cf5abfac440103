"""/talk: plan a calm talk about the pattern, with a reminder carrying the opener."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.followups.dispatcher import Dispatcher
from dialogs.payloads import decode_payload, encode_payload
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")
OPENER = (
    '"Can we talk about something that keeps happening between us? Not the last argument, '
    "the loop we get into. I'd like to understand my part in it.\""
)


async def pending(store: SqlStore, clock: ManualClock) -> list[tuple[str, timedelta]]:
    async with store.session() as s:
        rows = await s.pending_followups(USER)
    return [(f.flow_id, f.due_at - clock.now()) for f in rows]


async def test_main_path_opener_parts_time_and_reminder(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    out = await chat.command("talk")
    shown = texts(out)
    assert "a calm moment, not mid-round" in shown
    assert "not to settle the last fight" in shown
    assert OPENER in [m.text for m in out]
    out = await chat.press("That works for me")
    shown = texts(out)
    assert "names your own part" in shown
    assert "When ___, I tend to ___, because underneath I'm afraid ___." in shown
    out = await chat.press("Show me examples")
    shown = texts(out)
    # A fill-in for each side, with no gendered pronouns, and listening after.
    assert "Someone who reaches might say" in shown
    assert "Someone who steps back" in shown
    assert not re.search(r"\b(he|she|his|her|him)\b", shown, re.IGNORECASE)
    assert "without correcting" in shown
    assert [c.label for c in chat.buttons()] == ["Tonight", "This weekend", "I'll pick a time"]
    await chat.press("Tonight")
    assert [c.label for c in chat.buttons()] == ["In an hour", "In 3 hours", "No thanks"]
    out = await chat.press("In an hour")
    assert "Done, I'll send it at 13:00." in texts(out)
    assert "your own move can still shift the loop" in out[-1].text
    assert await pending(store, clock) == [("talk_reminder", timedelta(hours=1))]

    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(minutes=59))
    assert await dispatcher.run_due() == 0
    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    assert OPENER in [m.text for m in messages]
    assert "its fear" in texts(messages)


async def test_rewording_skipping_examples_and_a_later_reminder(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("talk")
    out = texts(await chat.press("I'd say it differently"))
    assert "your own words will land better than mine" in out
    out = texts(await chat.press("Got it"))
    assert "Someone who reaches" not in out
    assert "When could you have the talk?" in out
    await chat.press("I'll pick a time")
    assert [c.label for c in chat.buttons()] == ["Tomorrow, same time", "In 3 days", "No thanks"]
    await chat.press("In 3 days")
    assert await pending(store, clock) == [("talk_reminder", timedelta(days=3))]


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """January 2026 in the person's zone (London, UTC then): the 5th is a Monday."""
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


async def to_when(chat: Chat) -> list[str]:
    await chat.command("talk")
    await chat.press("That works for me")
    await chat.press("Got it")
    return [c.label for c in chat.buttons()]


@pytest.mark.parametrize("hour", [10, 20, 23])
async def test_on_a_sunday_this_weekend_is_not_offered_the_next_one_is(
    chat: Chat, store: SqlStore, clock: ManualClock, hour: int
) -> None:
    clock.set(local(11, hour))  # Sunday
    offered = await to_when(chat)
    assert "This weekend" not in offered
    assert offered[-2:] == ["Next weekend", "I'll pick a time"]
    # A button for "This weekend" from another day is not taken on a Sunday.
    turn = decode_payload(chat.buttons()[0].id)
    assert turn is not None
    out = await chat.send(choice=encode_payload(replace(turn, option="weekend")))
    assert "earlier step" in texts(out)
    await chat.press("Next weekend")
    # Saturday is next week's; Sunday morning would be a week away, not "at the weekend".
    assert [c.label for c in chat.buttons()] == ["Saturday morning", "No thanks"]
    out = await chat.press("Saturday morning")
    assert "Done, I'll send it on Sat 17 Jan at 09:00." in texts(out)
    assert await pending(store, clock) == [("talk_reminder", local(17, 9) - clock.now())]


@pytest.mark.parametrize(
    ("day", "offered", "press", "said", "due"),
    [
        # Monday to Friday: either weekend morning, this week's.
        (
            5,
            ["Saturday morning", "Sunday morning"],
            "Sunday morning",
            "on Sun 11 Jan",
            local(11, 9),
        ),
        (9, ["Saturday morning", "Sunday morning"], "Saturday morning", "tomorrow", local(10, 9)),
        # Saturday: only Sunday is still ahead (a "Saturday" reminder would be a week on).
        (10, ["Sunday morning"], "Sunday morning", "tomorrow", local(11, 9)),
    ],
)
async def test_this_weekend_reminders_name_the_day_and_come_before_it_ends(
    chat: Chat,
    store: SqlStore,
    clock: ManualClock,
    day: int,
    offered: list[str],
    press: str,
    said: str,
    due: datetime,
) -> None:
    clock.set(local(day, 23, 30))
    assert "This weekend" in await to_when(chat)
    await chat.press("This weekend")
    assert [c.label for c in chat.buttons()] == [*offered, "No thanks"]
    out = await chat.press(press)
    assert f"Done, I'll send it {said} at 09:00." in texts(out)
    assert await pending(store, clock) == [("talk_reminder", due - clock.now())]


@pytest.mark.parametrize(
    ("now", "said"),
    [(local(6, 1), "at 09:00"), (local(5, 23, 30), "tomorrow at 09:00")],
)
async def test_late_at_night_a_later_reminder_is_the_morning_not_two_mornings_on(
    chat: Chat, store: SqlStore, clock: ManualClock, now: datetime, said: str
) -> None:
    clock.set(now)
    offered = await to_when(chat)
    assert "Tonight" not in offered
    await chat.press("I'll pick a time")
    labels = [c.label for c in chat.buttons()]
    # "Same time" tomorrow would be in quiet hours, moved to 08:00 a day later.
    assert "Tomorrow, same time" not in labels and "Tomorrow morning" in labels
    out = await chat.press("Tomorrow morning")
    assert f"Done, I'll send it {said}." in texts(out)
    assert "quiet hours" not in texts(out)
    assert await pending(store, clock) == [("talk_reminder", local(6, 9) - now)]


async def test_in_the_evening_a_reminder_tonight_comes_before_quiet_hours(
    chat: Chat, clock: ManualClock
) -> None:
    clock.set(local(5, 19, 30))
    await to_when(chat)
    await chat.press("Tonight")
    # 22:30 would be in quiet hours: the reminder would come the next morning.
    assert [c.label for c in chat.buttons()] == ["In an hour", "No thanks"]


@pytest.mark.parametrize("when", ["Tonight", "I'll pick a time"])
async def test_no_reminder_when_declined(
    chat: Chat, store: SqlStore, clock: ManualClock, when: str
) -> None:
    await chat.command("talk")
    await chat.press("That works for me")
    await chat.press("Got it")
    await chat.press(when)
    out = await chat.press("No thanks")
    assert "I'll send it" not in texts(out)
    assert "doesn't have to go perfectly" in texts(out)
    assert await pending(store, clock) == []


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), unsafe=True))
    out = texts(await chat.command("talk"))
    assert "leaving out the relationship suggestions" in out
    assert "opener" not in out and "Can we talk" not in out


async def test_when_a_partner_will_not_engage(chat: Chat, store: SqlStore) -> None:
    await chat.command("talk")
    out = await chat.press("They won't talk about it")
    shown = texts(out)
    # One person's move still counts; a lasting refusal is information, no verdict.
    assert "One person changing their move still changes the loop" in shown
    assert "that tells you something too" in shown
    assert "yours to weigh" in shown and "/support" in shown
    for verdict in ("leave", "stay with", "break up", "should end"):
        assert verdict not in shown.lower()
    assert not out[-1].choices
    async with store.session() as s:
        assert await s.pending_followups(UserKey("test", "u1")) == []

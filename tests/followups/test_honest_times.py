"""Say what will happen: the confirmation after a follow-up is planned names when it
will really come (quiet hours included, and why), and time choices fit the person's
local hour (no "This evening" after midnight)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.flows.model import ChoiceStep
from dialogs.followups.dispatcher import Dispatcher
from dialogs.payloads import decode_payload, encode_payload
from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender, walk_pause_to_move

USER = UserKey("test", "u1")
LONDON = ZoneInfo("Europe/London")  # the person's zone in these tests (UTC in January)


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


async def due_times(store: SqlStore) -> list[datetime]:
    async with store.session() as s:
        return [f.due_at for f in await s.pending_followups(USER)]


async def to_the_followup_offer(chat: Chat) -> list[str]:
    await walk_pause_to_move(chat)
    await chat.press("Settle and wait a set time")
    return [c.label for c in chat.buttons()]


async def test_at_1am_the_choices_fit_the_hour_and_the_confirmation_says_08_00(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(1, 0))
    offered = await to_the_followup_offer(chat)
    assert "This evening" not in offered
    assert offered == ["In 20 minutes", "In an hour", "Tomorrow morning", "No thanks"]
    out = await chat.press("In 20 minutes")
    said = texts(out)
    assert "That's in your quiet hours, so I'll check in at 08:00, after them" in said
    assert "/quiet" in said
    assert "I'll check in then" not in said
    # What it said is what is stored, and what /schedule shows.
    assert await due_times(store) == [at(8, 0)]
    listed = await chat.command("schedule")
    assert "08:00" in texts(listed)


async def test_in_the_evening_the_confirmation_names_the_time(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(20, 0))
    offered = await to_the_followup_offer(chat)
    assert "This evening" not in offered  # 19:00 has passed
    out = await chat.press("In 20 minutes")
    assert "Done, I'll check in at 20:20." in texts(out)
    assert "quiet hours" not in texts(out)
    assert await due_times(store) == [at(20, 20)]


async def test_late_evening_moves_to_tomorrow_and_says_so(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(21, 50))
    await to_the_followup_offer(chat)
    out = await chat.press("In 20 minutes")
    assert "so I'll check in tomorrow at 08:00, after them" in texts(out)
    assert await due_times(store) == [at(8, 0, day=11)]


async def test_in_the_morning_this_evening_is_offered_and_confirmed(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(10, 0))
    offered = await to_the_followup_offer(chat)
    assert "This evening" in offered and "Tomorrow morning" in offered
    out = await chat.press("This evening")
    assert "Done, I'll check in at 19:00." in texts(out)


async def test_at_1am_a_hidden_choice_can_be_neither_typed_nor_pressed(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(9, 30))
    await to_the_followup_offer(chat)
    assert "This evening" in [c.label for c in chat.buttons()]  # shown in the morning
    await chat.press("No thanks")
    clock.set(at(1, 0, day=11))
    await to_the_followup_offer(chat)
    # After midnight it is neither offered, nor taken when pressed (a forged or old
    # client's button), nor chosen by typing it: the person sees what fits now.
    turn = decode_payload(chat.buttons()[0].id)
    assert turn is not None
    out = await chat.send(choice=encode_payload(replace(turn, option="evening")))
    assert "earlier step" in texts(out)
    out = await chat.say("this evening")
    assert "This evening" not in [c.label for c in chat.buttons()]
    assert await due_times(store) == []
    # Numbers count what is shown: the third button at 1am is "Tomorrow morning".
    out = await chat.say("3")
    assert "check in at 09:00" in texts(out)


async def test_space_reminder_moved_by_quiet_hours_says_when(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(21, 30))
    await chat.command("space")
    assert "This evening, at 8" not in [c.label for c in chat.buttons()]
    await chat.press("In an hour")
    await chat.press("Simple and clear")
    out = await chat.press("Yes, remind me")
    assert "so I'll nudge you tomorrow at 08:00, after them; change that with /quiet" in texts(out)
    assert await due_times(store) == [at(8, 0, day=11)]


async def test_no_quiet_hours_no_move(chat: Chat, store: SqlStore, clock: ManualClock) -> None:
    clock.set(at(12, 0))
    await chat.command("quiet")
    await chat.press("No quiet hours")
    clock.set(at(1, 0, day=11))
    await to_the_followup_offer(chat)
    out = await chat.press("In 20 minutes")
    assert "Done, I'll check in at 01:20." in texts(out)


def test_a_choice_with_nothing_to_tap_at_some_hour_is_refused() -> None:
    step = {
        "id": "when",
        "kind": "choice",
        "text": "When?",
        "options": [
            {"id": "eve", "label": "This evening", "hours": [5, 17], "next": "x"},
            {"id": "late", "label": "Tonight", "hours": [18, 23], "next": "x"},
        ],
    }
    with pytest.raises(ValidationError, match="no option is offered at 00:00"):
        ChoiceStep.model_validate(step)
    step["options"][1]["hours"] = [17, 5]  # type: ignore[index]
    ChoiceStep.model_validate(step)


# ----------------------------------------------------------------- the day of the week


@pytest.mark.parametrize(
    ("zone", "weekend"), [("Europe/London", False), ("Pacific/Auckland", True)]
)
async def test_the_day_is_the_persons_own(
    chat: Chat, store: SqlStore, clock: ManualClock, zone: str, weekend: bool
) -> None:
    # Sunday 20:00 in London is already Monday 09:00 in Auckland: a new week there.
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), zone=zone))
    clock.set(at(20, 0, day=11))
    await chat.command("talk")
    await chat.press("That works for me")
    await chat.press("Got it")
    offered = [c.label for c in chat.buttons()]
    assert ("This weekend" in offered) is weekend
    assert ("Next weekend" in offered) is not weekend


def test_days_are_checked_like_hours() -> None:
    step = {
        "id": "when",
        "kind": "choice",
        "text": "When?",
        "options": [
            {"id": "wknd", "label": "This weekend", "days": ["mon", "fri"], "next": "x"},
            {"id": "now", "label": "Now", "hours": [8, 20], "next": "x"},
        ],
    }
    with pytest.raises(ValidationError, match="no option is offered on Tuesday at 00:00"):
        ChoiceStep.model_validate(step)
    step["options"][1]["days"] = ["tue", "wed", "thu", "sat", "sun"]  # type: ignore[index]
    step["options"][1]["hours"] = None  # type: ignore[index]
    ChoiceStep.model_validate(step)
    step["options"][0]["days"] = ["mon", "mon"]  # type: ignore[index]
    with pytest.raises(ValidationError, match="names a day twice"):
        ChoiceStep.model_validate(step)
    step["options"][0]["days"] = []  # type: ignore[index]
    with pytest.raises(ValidationError, match="at least 1 item"):
        ChoiceStep.model_validate(step)


# ----------------------------------------------------------------- a check-in's snooze


async def checkin_arrives(chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock) -> None:
    """A one-off check-in (as a snooze plans it) arrives now: outside quiet hours."""
    async with store.session() as s:
        await s.schedule_followup(
            USER,
            FollowUpRequest(
                "checkin_due", "c1", clock.now(), clock.now() + timedelta(hours=6), "k"
            ),
        )
    sender = RecordingSender()
    assert await Dispatcher(store, engine, {"test": sender}, clock).run_due() == 1
    chat.seen.extend(sender.sent[0][1])


async def test_a_checkin_snoozed_in_the_day_comes_tomorrow_same_time(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(at(18, 0))
    await checkin_arrives(chat, engine, store, clock)
    labels = [c.label for c in chat.buttons()]
    assert "Tomorrow" in labels and "Tomorrow morning" not in labels
    out = await chat.press("Tomorrow")
    assert "Okay, I'll ask again tomorrow at 18:00." in texts(out)
    assert await due_times(store) == [at(18, 0, day=11)]


@pytest.mark.parametrize(
    ("now", "said"),
    [(at(1, 0, day=11), "at 09:00"), (at(23, 30), "tomorrow at 09:00")],
)
async def test_a_checkin_snoozed_late_at_night_comes_the_next_morning(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock, now: datetime, said: str
) -> None:
    # It arrived at 21:45; the person answers late. A day on from 23:30 is in quiet
    # hours and would come at 08:00 two mornings away; from 01:00, the next night.
    clock.set(at(21, 45))
    await checkin_arrives(chat, engine, store, clock)
    clock.set(now)
    stale = await chat.press("Tomorrow")
    assert "earlier step" in texts(stale)
    labels = [c.label for c in chat.buttons()]
    assert "Tomorrow" not in labels and "Tomorrow morning" in labels
    out = await chat.press("Tomorrow morning")
    assert f"Okay, I'll ask again {said}." in texts(out)
    assert "quiet hours" not in texts(out)
    assert await due_times(store) == [at(9, 0, day=11)]


@pytest.mark.parametrize("now", [at(1, 0, day=11), at(23, 30)])
async def test_typing_tomorrow_late_at_night_means_the_morning(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock, now: datetime
) -> None:
    clock.set(at(21, 45))
    await checkin_arrives(chat, engine, store, clock)
    clock.set(now)
    out = await chat.say("tomorrow")
    assert "I'll ask again" in texts(out) and "09:00" in texts(out)
    assert await due_times(store) == [at(9, 0, day=11)]

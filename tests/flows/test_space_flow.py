"""/space: a ready-to-send message with a return time, and a reminder at that time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")

ROLE_CONTACT = "If you usually move toward contact"
ROLE_SPACE = "keeps it from feeling like loss to your partner"
ROLE_ANY = "silence can sound like"


async def set_profile(store: SqlStore, **changes: object) -> None:
    async with store.session() as s:
        current = await s.load_profile(USER)
        await s.save_profile(USER, replace(current, **changes))  # type: ignore[arg-type]


async def pending(store: SqlStore, clock: ManualClock) -> list[tuple[str, timedelta]]:
    async with store.session() as s:
        rows = await s.pending_followups(USER)
    return [(f.flow_id, f.due_at - clock.now()) for f in rows]


async def test_main_path_composes_the_message_and_the_reminder_arrives(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    out = await chat.command("space")
    shown = texts(out)
    assert "put the need for space into words" in shown
    assert ROLE_ANY in shown
    assert [c.label for c in chat.buttons()] == [
        "In 30 minutes",
        "In an hour",
        "This evening, at 8",
        "Tomorrow",
        "Another time",
        "Could I stay a little instead?",
    ]
    out = await chat.press("In an hour")
    assert "How would you like it to sound?" in texts(out)
    out = await chat.press("Simple and clear")
    composed = [m.text for m in out]
    # The message to send stands alone, so it can be copied as it is.
    assert (
        "I'm getting overwhelmed and need a little time. I'll come back to it in an hour."
        in composed
    )
    assert "Copy it and change any word that isn't you" in texts(out)
    assert "coming back then, even just to say you need longer" in texts(out)
    assert [c.label for c in chat.buttons()] == ["Yes, remind me", "No thanks"]
    out = await chat.press("Yes, remind me")
    assert "Done, I'll nudge you at 13:00." in texts(out)
    assert "/space is here for next time" in out[-1].text
    assert await pending(store, clock) == [("space_return", timedelta(hours=1))]

    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.advance(timedelta(minutes=59))
    assert await dispatcher.run_due() == 0
    clock.advance(timedelta(minutes=1))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    assert "It's the time you said you'd come back" in texts(messages)
    assert [c.label for c in messages[-1].choices] == [str(n) for n in range(11)]


@pytest.mark.parametrize(
    ("label", "phrase", "due"),
    [
        ("In 30 minutes", "in 30 minutes", timedelta(minutes=30)),
        ("In an hour", "in an hour", timedelta(hours=1)),
        # The clock starts at 12:00 on 5 January: London is on UTC, 8 pm is 8 hours on.
        ("This evening, at 8", "this evening at 8", timedelta(hours=8)),
        ("Tomorrow", "tomorrow", timedelta(days=1)),
    ],
)
async def test_each_return_time_is_in_the_message_and_the_reminder(
    chat: Chat, store: SqlStore, clock: ManualClock, label: str, phrase: str, due: timedelta
) -> None:
    assert clock.now() == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    await chat.command("space")
    await chat.press(label)
    out = await chat.press("Very short")
    assert f"Need a little time to settle. I'll come back to it {phrase}." in [m.text for m in out]
    await chat.press("Yes, remind me")
    assert await pending(store, clock) == [("space_return", due)]


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # After midnight "tomorrow" means after sleep: 09:00 the same day, 8 hours on.
        (datetime(2026, 1, 6, 1, 0, tzinfo=UTC), datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
        (datetime(2026, 1, 5, 23, 30, tzinfo=UTC), datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
    ],
)
async def test_late_at_night_tomorrow_is_the_morning_and_kept_then(
    chat: Chat, store: SqlStore, clock: ManualClock, now: datetime, due: datetime
) -> None:
    clock.set(now)
    await chat.command("space")
    labels = [c.label for c in chat.buttons()]
    # Not "Tomorrow" a day on (after midnight, the next night), nor "This evening".
    assert "Tomorrow" not in labels and "This evening, at 8" not in labels
    await chat.press("Tomorrow morning")
    out = await chat.press("Very short")
    said = [m.text for m in out]
    assert "Need a little time to settle. I'll come back to it tomorrow morning." in said
    out = await chat.press("Yes, remind me")
    assert "Done, I'll nudge you" in texts(out) and "09:00" in texts(out)
    assert "quiet hours" not in texts(out)
    assert await pending(store, clock) == [("space_return", due - now)]


async def test_warm_tone_and_a_time_in_their_own_words(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("space")
    out = await chat.press("Another time")
    assert "How would you say the time to your partner?" in texts(out)
    await chat.say("after dinner")
    out = await chat.press("Warm")
    shown = texts(out)
    assert "I care about this, and about us" in shown
    assert "I'll come back to it after dinner." in shown
    # No reminder for a time the guide can't know; the conversation (and the words
    # typed) is gone once the flow ends.
    assert "a phone alarm can help you keep it" in shown
    assert "Want a nudge" not in shown
    assert await pending(store, clock) == []
    async with store.session() as s:
        state = await s.load_state(USER, clock.now())
    assert state.flow_id is None and state.variables == {}


async def test_no_reminder_when_declined(chat: Chat, store: SqlStore, clock: ManualClock) -> None:
    await chat.command("space")
    await chat.say("30 minutes")
    await chat.say("simple")
    out = await chat.say("no")
    assert "I'll nudge you" not in texts(out)
    assert await pending(store, clock) == []


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        ("contact", ROLE_CONTACT, (ROLE_SPACE, ROLE_ANY)),
        ("space", ROLE_SPACE, (ROLE_CONTACT, ROLE_ANY)),
        ("both", ROLE_ANY, (ROLE_CONTACT, ROLE_SPACE)),
        (None, ROLE_ANY, (ROLE_CONTACT, ROLE_SPACE)),
    ],
)
async def test_one_line_follows_the_role_from_the_profile(
    chat: Chat, store: SqlStore, role: str | None, shown: str, hidden: tuple[str, ...]
) -> None:
    await set_profile(store, role=role)
    out = texts(await chat.command("space"))
    assert shown in out
    for other in hidden:
        assert other not in out
    assert "When will you come back?" in out


async def test_someone_flagged_unsafe_gets_the_unsafe_flow_instead(
    chat: Chat, store: SqlStore
) -> None:
    await set_profile(store, unsafe=True)
    out = texts(await chat.command("space"))
    assert "leaving out the relationship suggestions" in out
    for own in ("need for space", "When will you come back", ROLE_ANY):
        assert own not in out


async def test_the_one_who_withdraws_may_stay_a_little_and_say_so(chat: Chat) -> None:
    await chat.command("space")
    assert "Could I stay a little instead?" in [c.label for c in chat.buttons()]
    out = await chat.press("Could I stay a little instead?")
    shown = texts(out)
    assert "stay a few minutes past the urge to go" in shown
    assert "say what's happening instead of going quiet" in shown
    assert "I'm still here" in shown
    # Then back to choosing a time, with nothing lost: space stays a good move.
    assert out[-1].text.startswith("When will you come back?")
    await chat.press("In an hour")
    out = await chat.press("Simple and clear")
    assert "I'll come back to it in an hour." in texts(out)

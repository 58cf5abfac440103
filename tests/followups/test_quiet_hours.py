"""Quiet hours hold on every path that sets or moves a due time: the boundaries of
`after_quiet_hours` to the minute, across midnight and daylight saving, and the
dispatcher's postponement of a follow-up that finds the person mid-flow."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.followups.times import DEFAULT_QUIET, after_quiet_hours
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender, ask_for_followup_in_20_minutes

LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
NIGHT = (time(22, 0), time(8, 0))
USER = UserKey("test", "u1")


def london(y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON).astimezone(UTC)


# ----------------------------------------------------------------- the boundaries


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # The minute before the start is outside; the start minute is inside.
        ((21, 59), None),
        ((22, 0), (1, 8, 0)),
        ((23, 59), (1, 8, 0)),
        # Across midnight: the small hours are inside, and end the same morning.
        ((0, 0), (0, 8, 0)),
        ((3, 30), (0, 8, 0)),
        # The minute before the end is inside; the end minute is outside.
        ((7, 59), (0, 8, 0)),
        ((8, 0), None),
        ((12, 0), None),
    ],
)
def test_the_default_window_to_the_minute(
    local: tuple[int, int], expected: tuple[int, int, int] | None
) -> None:
    due = london(2026, 1, 10, *local)
    moved = after_quiet_hours(due, LONDON, *NIGHT)
    if expected is None:
        assert moved == due
    else:
        days, hour, minute = expected
        assert moved == london(2026, 1, 10 + days, hour, minute)


def test_the_default_window_is_ten_at_night_to_eight_in_the_morning() -> None:
    assert DEFAULT_QUIET == NIGHT


def test_a_window_within_one_day_and_no_window_at_all() -> None:
    afternoon = (time(13, 0), time(15, 30))
    assert after_quiet_hours(london(2026, 1, 10, 12, 59), LONDON, *afternoon) == london(
        2026, 1, 10, 12, 59
    )
    assert after_quiet_hours(london(2026, 1, 10, 13, 0), LONDON, *afternoon) == london(
        2026, 1, 10, 15, 30
    )
    assert after_quiet_hours(london(2026, 1, 10, 15, 29), LONDON, *afternoon) == london(
        2026, 1, 10, 15, 30
    )
    assert after_quiet_hours(london(2026, 1, 10, 23, 0), LONDON, *afternoon) == london(
        2026, 1, 10, 23, 0
    )
    # Equal start and end: no quiet hours.
    off = (time(22, 0), time(22, 0))
    assert after_quiet_hours(london(2026, 1, 10, 23, 0), LONDON, *off) == london(2026, 1, 10, 23, 0)


def test_seconds_past_the_start_are_inside_and_the_end_is_exact() -> None:
    due = london(2026, 1, 10, 21, 59) + timedelta(seconds=59, microseconds=999_999)
    assert after_quiet_hours(due, LONDON, *NIGHT) == due
    inside = london(2026, 1, 10, 22, 0) + timedelta(microseconds=1)
    assert after_quiet_hours(inside, LONDON, *NIGHT) == london(2026, 1, 11, 8, 0)


def test_the_window_is_the_persons_own_zone() -> None:
    # One instant: 23:00 in London is 10:00 the next day in Sydney (summer there).
    instant = london(2026, 1, 10, 23, 0)
    assert after_quiet_hours(instant, LONDON, *NIGHT) == london(2026, 1, 11, 8, 0)
    assert after_quiet_hours(instant, SYDNEY, *NIGHT) == instant
    # And 21:00 in London is 08:00 in Sydney: the end minute, outside.
    assert after_quiet_hours(london(2026, 1, 10, 21, 0), SYDNEY, *NIGHT) == london(
        2026, 1, 10, 21, 0
    )


def test_the_end_is_local_across_a_daylight_saving_change() -> None:
    # London springs forward at 01:00 GMT on 29 March 2026: the night is an hour
    # shorter, and 08:00 local is 07:00 UTC.
    moved = after_quiet_hours(london(2026, 3, 28, 23, 0), LONDON, *NIGHT)
    assert moved == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert moved.astimezone(LONDON).hour == 8
    # And falls back on 25 October: 08:00 local is 08:00 UTC again.
    moved = after_quiet_hours(london(2026, 10, 24, 23, 0), LONDON, *NIGHT)
    assert moved == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    # Both 01:30s of the repeated hour are inside the night.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 01:30 GMT
    for due in (first, second):
        assert after_quiet_hours(due, LONDON, *NIGHT) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_an_end_the_clocks_skip_comes_right_after_the_gap() -> None:
    # Quiet until 01:30, a time London does not have on 29 March 2026.
    window = (time(0, 0), time(1, 30))
    moved = after_quiet_hours(london(2026, 3, 29, 0, 45), LONDON, *window)
    assert moved == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 BST
    assert moved > london(2026, 3, 29, 0, 45)


# ----------------------------------------------------------------- paths that move a due time


def dispatcher(
    store: SqlStore, engine: Engine, clock: ManualClock
) -> tuple[Dispatcher, list[tuple[Address, list[Outbound]]]]:
    sender = RecordingSender()
    return Dispatcher(store, engine, {"test": sender}, clock), sender.sent


async def due_times(store: SqlStore) -> list[datetime]:
    async with store.session() as s:
        return [f.due_at for f in await s.pending_followups(USER)]


async def plan(store: SqlStore, due: datetime, limit: timedelta) -> None:
    async with store.session() as s:
        await s.schedule_followup(
            USER, FollowUpRequest("followup", "c1", due, due + limit, f"k-{due.isoformat()}")
        )


async def statuses(store: SqlStore) -> list[str]:
    async with store.engine.connect() as conn:
        return [r[0] for r in await conn.execute(sql("select status from followups order by id"))]


async def test_a_followup_postponed_for_a_busy_person_keeps_out_of_quiet_hours(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(london(2026, 1, 10, 21, 44))
    await chat.command("pause")  # mid-flow when it comes due
    await plan(store, london(2026, 1, 10, 21, 50), timedelta(hours=24))
    clock.set(london(2026, 1, 10, 21, 55))
    run, sent = dispatcher(store, engine, clock)
    assert await run.run_due() == 1
    assert sent == []
    # Ten minutes later would be 22:05, inside the night: it waits for the morning.
    assert await due_times(store) == [london(2026, 1, 11, 8, 0)]
    for at in ((22, 5), (22, 40), (23, 59)):
        clock.set(london(2026, 1, 10, *at))
        assert await run.run_due() == 0
    clock.set(london(2026, 1, 11, 7, 59))
    assert await run.run_due() == 0
    clock.set(london(2026, 1, 11, 8, 0))
    assert await run.run_due() == 1
    assert "checking in like you asked" in texts(sent[0][1])


async def test_postponed_past_its_limit_by_the_night_it_is_missed_at_once(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(london(2026, 1, 10, 21, 25))
    await ask_for_followup_in_20_minutes(chat)  # due 21:45, at most 6 hours late
    assert await due_times(store) == [london(2026, 1, 10, 21, 45)]
    clock.set(london(2026, 1, 10, 21, 44))
    await chat.command("pause")
    clock.set(london(2026, 1, 10, 21, 55))
    run, sent = dispatcher(store, engine, clock)
    assert await run.run_due() == 1
    # 08:00 is past its limit: recorded missed now, not listed as planned, never sent.
    assert await statuses(store) == ["missed"]
    assert await due_times(store) == []
    clock.set(london(2026, 1, 10, 22, 40))
    assert await run.run_due() == 0
    assert sent == []


async def test_a_busy_postponement_in_daytime_is_ten_minutes(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(london(2026, 1, 10, 12, 0))
    await ask_for_followup_in_20_minutes(chat)
    clock.set(london(2026, 1, 10, 12, 19))
    await chat.command("pause")
    clock.set(london(2026, 1, 10, 12, 20))
    run, sent = dispatcher(store, engine, clock)
    assert await run.run_due() == 1
    assert sent == []
    assert await due_times(store) == [london(2026, 1, 10, 12, 30)]


async def test_a_followup_that_comes_due_late_inside_quiet_hours_waits_for_their_end(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await plan(store, london(2026, 1, 10, 21, 40), timedelta(hours=24))
    # The guide was down from 21:39 to 23:00: the 21:40 follow-up is late, at night.
    clock.set(london(2026, 1, 10, 23, 0))
    run, sent = dispatcher(store, engine, clock)
    assert await run.run_due() == 1
    assert sent == []
    assert await due_times(store) == [london(2026, 1, 11, 8, 0)]
    clock.set(london(2026, 1, 11, 8, 0))
    assert await run.run_due() == 1
    assert "checking in like you asked" in texts(sent[0][1])


async def test_a_person_without_quiet_hours_is_not_held(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("quiet")
    await chat.press("No quiet hours")
    clock.set(london(2026, 1, 10, 23, 0))
    await ask_for_followup_in_20_minutes(chat)
    clock.set(london(2026, 1, 10, 23, 19))
    await chat.command("pause")
    clock.set(london(2026, 1, 10, 23, 20))
    run, sent = dispatcher(store, engine, clock)
    assert await run.run_due() == 1
    assert sent == []
    assert await due_times(store) == [london(2026, 1, 10, 23, 30)]
    clock.set(london(2026, 1, 10, 23, 30))
    await chat.command("stop")  # the flow ends, and /stop asks about the follow-up
    await chat.press("Yes, cancel")
    assert await run.run_due() == 0


async def test_in_demo_mode_the_postponement_shrinks_and_night_is_not_checked_at_sending(
    chat: Chat,
    store: SqlStore,
    clock: ManualClock,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    demo = Engine(
        content,
        store,
        clock,
        safety_screen,
        lambda signal, country: resource_text(resources, signal, country),
        timezone=LONDON,
        delay_scale=60,
    )
    clock.set(london(2026, 1, 10, 12, 0))
    await chat.command("pause")
    await plan(store, london(2026, 1, 10, 12, 0), timedelta(hours=24))
    run = Dispatcher(store, demo, {"test": RecordingSender()}, clock)
    assert await run.run_due() == 1
    assert await due_times(store) == [london(2026, 1, 10, 12, 0) + timedelta(seconds=10)]
    # A demo's due times were moved out of the night before the wait shrank.
    await chat.command("stop")
    await chat.press("Yes, cancel")
    await plan(store, london(2026, 1, 10, 23, 0), timedelta(hours=24))
    clock.set(london(2026, 1, 10, 23, 0))
    sender = RecordingSender()
    assert await Dispatcher(store, demo, {"test": sender}, clock).run_due() == 1
    assert "checking in like you asked" in texts(sender.sent[0][1])

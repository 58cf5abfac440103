"""/insights through the engine, and the weekly insight through the dispatcher."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.delivery import Delivery
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.followups.weekly_insight import INSIGHT_KIND
from dialogs.insights import drawing
from dialogs.insights.chart import Chart
from dialogs.store import FollowUpStatus, UserKey
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")
# The chat fixture's clock starts on Monday 5 January 2026, 12:00 UTC; London is on
# GMT then, so local times equal UTC.
MONDAY = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def journal(store: SqlStore, *rows: tuple[timedelta, str, str, str, str]) -> None:
    async with store.session() as s:
        for ago, flow, step, kind, value in rows:
            await s.append_journal(USER, MONDAY - ago, flow, step, kind, value)


async def two_pauses(store: SqlStore) -> None:
    await journal(
        store,
        (timedelta(days=3), "pause", "rate", "rating", "8"),
        (timedelta(days=3) - timedelta(minutes=5), "pause", "breathe_again", "rating", "3"),
        (timedelta(days=1), "pause", "rate", "rating", "6"),
    )


async def set_profile(store: SqlStore, **changes: object) -> None:
    async with store.session() as s:
        current = await s.load_profile(USER)
        await s.save_profile(USER, replace(current, **changes))  # type: ignore[arg-type]


async def planned(store: SqlStore) -> list[tuple[str, str, datetime]]:
    async with store.session() as s:
        return [(f.flow_id, f.kind, f.due_at) for f in await s.pending_followups(USER)]


async def test_insights_sends_the_words_with_a_chart_and_offers_a_weekly_look(
    chat: Chat, store: SqlStore
) -> None:
    await two_pauses(store)
    out = await chat.command("insights")
    [summary, offer] = out
    # Friday 2nd and Sunday 4th, in the week of 29 December; none yet this week.
    assert summary.text.splitlines()[1] == "Pauses: 2, about 1 a week."
    assert "Too early to see a trend" in summary.text
    assert summary.private_only
    assert summary.attachment is not None and summary.attachment.media_type == "image/png"
    assert summary.attachment.data.startswith(b"\x89PNG")
    # Owed like any reply: both messages are outbox rows, and the rows carry the
    # picture already drawn, so the first send does not draw it again.
    assert [row.message for row in out.rows] == list(out)
    assert "once a week" in offer.text
    assert [c.label for c in offer.choices] == ["Yes, weekly", "No thanks"]

    out = await chat.press("Yes, weekly")
    assert "Sunday at 18:00" in texts(out)
    # No check-in set: Sunday 18:00, local.
    assert await planned(store) == [
        ("insights_due", INSIGHT_KIND, datetime(2026, 1, 11, 18, 0, tzinfo=UTC))
    ]
    # /schedule lists it, with a button to cancel it.
    listed = await chat.command("schedule")
    assert "Sun 11 Jan, 18:00: Your weekly insight" in texts(listed)
    # Asked again, it says so instead of offering twice.
    out = await chat.command("insights")
    assert "Your weekly look is on" in out[-1].text
    assert len(await planned(store)) == 1


async def test_no_pauses_is_a_kind_word_without_a_chart_or_an_offer(
    chat: Chat, store: SqlStore
) -> None:
    await journal(store, (timedelta(days=1), "checkin", "settled", "rating", "6"))
    [only] = await chat.command("insights")
    assert "Nothing to show yet" in only.text
    assert only.attachment is None and only.chart is None
    assert only.choices == ()
    assert await planned(store) == []


async def test_insights_reads_no_one_else_s_journal(chat: Chat, store: SqlStore) -> None:
    async with store.session() as s:
        await s.append_journal(UserKey("test", "u2"), MONDAY, "pause", "rate", "rating", "9")
    [only] = await chat.command("insights")
    assert "Nothing to show yet" in only.text


async def test_the_weekly_look_comes_at_the_check_in_time_out_of_quiet_hours(
    chat: Chat, store: SqlStore
) -> None:
    await two_pauses(store)
    # A weekly check-in on Wednesday at 21:00; quiet hours from 20:30.
    await set_profile(
        store,
        checkin_cadence="weekly",
        checkin_weekday=2,
        checkin_time="21:00",
        quiet_start="20:30",
        quiet_end="07:30",
    )
    await chat.command("insights")
    await chat.press("Yes, weekly")
    # 21:00 on Wednesday is inside quiet hours: it moves to their end, 07:30 Thursday.
    assert await planned(store) == [
        ("insights_due", INSIGHT_KIND, datetime(2026, 1, 8, 7, 30, tzinfo=UTC))
    ]


async def test_the_weekly_look_moves_with_the_check_in(chat: Chat, store: SqlStore) -> None:
    await two_pauses(store)
    await chat.command("insights")
    await chat.press("Yes, weekly")
    await chat.command("checkin")
    await chat.press("Every day")
    await chat.press("09:00")
    due = sorted((flow, at) for flow, _, at in await planned(store))
    assert due == [
        ("checkin_due", datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
        # Daily check-ins at 09:00: the weekly look keeps Sunday, at 09:00.
        ("insights_due", datetime(2026, 1, 11, 9, 0, tzinfo=UTC)),
    ]


async def test_a_week_with_news_is_offered_and_the_next_is_planned(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await two_pauses(store)
    await chat.command("insights")
    await chat.press("Yes, weekly")
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.set(datetime(2026, 1, 11, 18, 0, tzinfo=UTC))
    # One pause this past week (Sunday 11th counts back to Monday 5th at 18:00).
    await journal(store, (-timedelta(days=5), "pause", "rate", "rating", "7"))
    assert await dispatcher.run_due() == 1
    [(_, messages)] = sender.sent
    assert texts(messages) == (
        "Your weekly look is ready. This past week: 1 pause and no check-ins. Want to see it?"
    )
    # The offer is words and buttons only; the chart comes when asked for.
    assert all(m.attachment is None and m.chart is None for m in messages)
    assert [c.label for c in messages[-1].choices] == ["Show me", "Not now", "Stop these"]
    assert await planned(store) == [
        ("insights_due", INSIGHT_KIND, datetime(2026, 1, 18, 18, 0, tzinfo=UTC))
    ]
    chat.seen.extend(messages)
    out = await chat.press("Show me")
    [picture] = [m.attachment for m in out if m.attachment is not None]
    assert picture.is_image
    assert "Your weekly look is on" in out[-1].text


async def test_a_quiet_week_says_nothing(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await two_pauses(store)
    await chat.command("insights")
    await chat.press("Yes, weekly")
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    # A week later than the first: nothing in the journal since the 4th.
    clock.set(datetime(2026, 1, 11, 18, 0, tzinfo=UTC))
    await dispatcher.run_due()
    clock.set(datetime(2026, 1, 18, 18, 0, tzinfo=UTC))
    sender.sent.clear()
    assert await dispatcher.run_due() == 1
    assert all(not messages for _, messages in sender.sent)
    assert await planned(store) == [
        ("insights_due", INSIGHT_KIND, datetime(2026, 1, 25, 18, 0, tzinfo=UTC))
    ]


async def test_stop_these_and_stop_end_the_weekly_look(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await two_pauses(store)
    await chat.command("insights")
    await chat.press("Yes, weekly")
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.set(datetime(2026, 1, 11, 18, 0, tzinfo=UTC))
    await journal(store, (-timedelta(days=5), "pause", "rate", "rating", "7"))
    await dispatcher.run_due()
    chat.seen.extend(sender.sent[-1][1])
    out = await chat.press("Stop these")
    assert "no more weekly looks" in texts(out)
    assert await planned(store) == []

    await chat.command("insights")
    await chat.press("Yes, weekly")
    assert len(await planned(store)) == 1
    out = await chat.command("stop")
    assert "Also cancel your weekly look on Sun 18 Jan at 18:00?" in texts(out)
    await chat.press("Yes, cancel")
    assert await planned(store) == []


async def test_held_back_while_the_person_may_be_unsafe(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await two_pauses(store)
    await chat.command("insights")
    await chat.press("Yes, weekly")
    await set_profile(store, unsafe=True)
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    clock.set(datetime(2026, 1, 11, 18, 0, tzinfo=UTC))
    await journal(store, (-timedelta(days=5), "pause", "rate", "rating", "7"))
    await dispatcher.run_due()
    assert sender.sent == []
    async with store.session() as s:
        rows = await s.pending_followups(USER)
    # Held back, and next week's planned as usual (the person never said stop).
    assert [(f.due_at, f.status) for f in rows] == [
        (datetime(2026, 1, 18, 18, 0, tzinfo=UTC), FollowUpStatus.PENDING)
    ]


async def test_insights_is_in_help_s_full_list_and_the_menus(chat: Chat) -> None:
    menu = [c.name for c in chat.engine.content.commands.menu()]
    assert "insights" in menu
    await chat.command("help")
    out = await chat.press("All commands")
    assert "/insights: What your pauses show over time, with a chart" in texts(out)


async def test_the_chart_is_drawn_after_the_turn_commits(
    chat: Chat, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Drawing inside the turn would hold the person's transaction (on SQLite, the one
    # writer) for as long as matplotlib takes.
    await two_pauses(store)
    events: list[str] = []
    real_session = store.session

    @asynccontextmanager
    async def session() -> AsyncIterator[object]:
        async with real_session() as s:
            events.append("open")
            yield s
        events.append("committed")

    threads: list[threading.Thread] = []

    def draw(chart: Chart) -> bytes:
        events.append("draw")
        threads.append(threading.current_thread())
        return real_draw(chart)

    real_draw = drawing.draw_png
    monkeypatch.setattr(store, "session", session)
    monkeypatch.setattr(drawing, "draw_png", draw)
    out = await chat.command("insights")
    assert any(m.attachment is not None for m in out)
    before_draw = events[: events.index("draw")]
    assert before_draw.count("open") == before_draw.count("committed") >= 1
    # In a worker thread: the event loop keeps serving everyone else meanwhile.
    assert threads and threads[0] is not threading.main_thread()


class Recording:
    def __init__(self) -> None:
        self.sent: list[Outbound] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.extend(messages)


async def test_a_kill_after_the_turn_commits_loses_neither_the_chart_nor_the_offer(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    # The process dies between the commit and the send: the rows are all there is.
    await two_pauses(store)
    out = await engine.handle(
        Inbound(chat.address, "insights-1", clock.now(), command=Command("insights"))
    )
    async with store.engine.begin() as connection:
        await connection.execute(sql("update outbound set claimed_by = 'dead-process'"))
    sender = Recording()
    restarted = Delivery(
        store,
        clock,
        interactive={"test": sender},
        scheduled={"test": sender},
        prepare=drawing.draw_charts,
    )
    if store.engine.dialect.name == "sqlite":
        assert await restarted.resend_unsent(startup=True) == 2
    else:  # another worker may be sending them: they wait out the lease
        clock.advance(timedelta(minutes=1))
        assert await restarted.resend_unsent() == 2
    [summary, offer] = sender.sent
    assert summary.text == out[0].text
    assert summary.attachment is not None and summary.attachment.data.startswith(b"\x89PNG")
    assert summary.attachment.description == out[0].attachment.description  # type: ignore[union-attr]
    assert summary.chart is None
    assert offer.text == out[1].text and offer.choices == out[1].choices

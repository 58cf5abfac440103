"""APScheduler wakes the dispatcher at the due time, and on start for overdue rows.

These use the real clock, because APScheduler does; waits are scaled down so the
whole file takes well under a second of real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text as sql

from bot.scheduler import DispatchScheduler
from dialogs.clock import SystemClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUpRequest, Profile, UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard


class SignallingSender:
    def __init__(self) -> None:
        self.sent: list[list[Outbound]] = []
        self.arrived = asyncio.Event()

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.append(list(messages))
        self.arrived.set()


def _wire(
    content: Content, store: SqlStore, screen: SafetyScreen, resources: SafetyResources
) -> tuple[Engine, DispatchScheduler, SignallingSender]:
    clock = SystemClock()
    sender = SignallingSender()
    holder: list[DispatchScheduler] = []
    engine = Engine(
        content,
        store,
        clock,
        screen,
        lambda s, c: resource_text(resources, s, c),
        timezone=ZoneInfo("UTC"),
        delay_scale=6000,  # 20 minutes -> 0.2 seconds
        on_followup_scheduled=lambda due: holder[0].notify(due),
    )
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    scheduler = DispatchScheduler(dispatcher, store, sweep_seconds=3600)
    holder.append(scheduler)
    return engine, scheduler, sender


async def test_wakes_at_the_due_time_not_at_the_sweep(
    content: Content, store: SqlStore, safety_screen: SafetyScreen, resources: SafetyResources
) -> None:
    engine, scheduler, sender = _wire(content, store, safety_screen, resources)
    await scheduler.start()
    try:
        chat = Chat(engine)
        # As before this helper was shared: no country or zone of their own.
        await onboard(store, SystemClock(), chat.address, country=None, zone=None)
        await chat.command("pause")
        for label in (
            "Done",
            "7",
            "Silence",
            "Reach out more",
            "It fits",
            "Settle and wait a set time",
            "In 20 minutes",
        ):
            await chat.press(label)
        assert sender.sent == []
        await asyncio.wait_for(sender.arrived.wait(), timeout=10)
        assert "checking in like you asked" in sender.sent[0][0].text
    finally:
        await scheduler.shutdown()


async def test_overdue_rows_go_out_at_start(
    content: Content, store: SqlStore, safety_screen: SafetyScreen, resources: SafetyResources
) -> None:
    _, scheduler, sender = _wire(content, store, safety_screen, resources)
    now = SystemClock().now()
    async with store.session() as s:
        await s.load_state(UserKey("test", "u9"), now)
        await s.save_profile(UserKey("test", "u9"), Profile(consent_at=now, adult=True))
        await s.schedule_followup(
            UserKey("test", "u9"),
            FollowUpRequest(
                "followup", "c9", now - timedelta(minutes=5), now + timedelta(hours=1), "k1"
            ),
        )
    await scheduler.start()
    try:
        assert len(sender.sent) == 1
    finally:
        await scheduler.shutdown()


async def test_start_purges_old_journal_rows_and_event_ids(
    content: Content, store: SqlStore, safety_screen: SafetyScreen, resources: SafetyResources
) -> None:
    from sqlalchemy import text

    from bot.scheduler import Retention

    engine, _, _ = _wire(content, store, safety_screen, resources)
    clock = SystemClock()
    now = clock.now()
    user = UserKey("test", "old")
    async with store.session() as s:
        await s.claim_event("test:old-event", now - timedelta(days=8), user)
        await s.claim_event("test:new-event", now - timedelta(days=6), user)
        await s.append_journal(user, now - timedelta(days=366), "pause", "rate", "rating", "9")
        await s.append_journal(user, now - timedelta(days=364), "pause", "rate", "rating", "4")
    dispatcher = Dispatcher(store, engine, {}, clock)
    scheduler = DispatchScheduler(
        dispatcher,
        store,
        sweep_seconds=3600,
        clock=clock,
        retention=Retention(journal=timedelta(days=365), events=timedelta(days=7)),
    )
    await scheduler.start()
    await scheduler.shutdown()
    async with store.engine.connect() as conn:
        journal = [r[0] for r in await conn.execute(text("select value from journal"))]
        events = [r[0] for r in await conn.execute(text("select event_key from processed_events"))]
    assert journal == ["4"]
    assert events == ["test:new-event"]


async def test_shutdown_stops_a_long_wave_instead_of_waiting_for_it(
    content: Content, store: SqlStore, safety_screen: SafetyScreen, resources: SafetyResources
) -> None:
    engine, _, _ = _wire(content, store, safety_screen, resources)
    started = asyncio.Event()

    class SlowSender:
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            started.set()
            await asyncio.sleep(3600)  # a wave at the platform's rate: cancelled below

    dispatcher = Dispatcher(store, engine, {"test": SlowSender()}, SystemClock())
    slow = DispatchScheduler(dispatcher, store, sweep_seconds=3600)
    now = SystemClock().now()
    async with store.session() as s:
        await s.save_profile(UserKey("test", "w"), Profile(consent_at=now, adult=True))
        await s.schedule_followup(
            UserKey("test", "w"),
            FollowUpRequest(
                "followup", "w", now - timedelta(seconds=1), now + timedelta(hours=1), "w1"
            ),
        )
    ticking = asyncio.create_task(slow.start())
    await asyncio.wait_for(started.wait(), timeout=10)
    # The dispatcher claims its next batch while this one is sent; let it find none
    # (cancelling a query of the in-memory database would lose the database itself).
    await asyncio.sleep(0.1)
    await asyncio.wait_for(slow.shutdown(), timeout=5)
    ticking.cancel()
    async with store.session() as s:
        row = await s.get_followup(1)
    # Its message is an outbox row, still pending: the next start sends it.
    assert row is not None and row.status.value == "sent"
    async with store.engine.connect() as connection:
        statuses = (await connection.execute(sql("select status from outbound"))).scalars().all()
    assert statuses == ["pending"]


class _Stream:
    """A dispatcher and store whose rows keep coming due: every round finds the next
    one already due, `rounds` times over, then nothing."""

    platforms = ("test",)

    def __init__(self, rounds: int) -> None:
        self.left = rounds
        self.ran = 0
        self.done = asyncio.Event()
        self.delivery = self

    async def resend_unsent(self, startup: bool = False) -> None:
        return None

    def want_resend(self) -> None:
        return None

    async def run_due(self) -> int:
        self.ran += 1
        if self.left == 0:
            self.done.set()
        return 1

    async def next_due_at(self, platforms: object = None) -> datetime | None:
        if self.left == 0:
            return None
        self.left -= 1
        return datetime.now(UTC)


async def test_a_wake_set_from_inside_a_wake_round_is_not_skipped() -> None:
    """At 1,000 follow-ups due a minute, a round ends with the next one already due.
    The wake it sets must run after it, not be skipped as a second instance of the
    running wake job (and then wait for the hour-long sweep)."""
    stream = _Stream(rounds=4)
    scheduler = DispatchScheduler(stream, stream, sweep_seconds=3600)  # type: ignore[arg-type]
    await scheduler.start()
    try:
        await asyncio.wait_for(stream.done.wait(), timeout=10)
    finally:
        await scheduler.shutdown()
    assert stream.ran == 5  # the start's round, then one per row found due

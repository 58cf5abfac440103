"""Follow-ups and check-ins: on time, once, across restarts and daylight saving, in
quiet hours' shadow, and never a storm for someone who cannot be reached."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher, RecipientUnreachable
from dialogs.store import UserKey
from storage import SqlStore, open_store
from tests.conftest import Chat, onboard, texts
from tests.test_engine import RecordingSender, ask_for_followup_in_20_minutes
from tests.workers.due_people import plant_due_followups

USER = UserKey("test", "u1")
ROOT = Path(__file__).resolve().parents[2]


async def pending(store: SqlStore, user: UserKey = USER) -> list[tuple[str, datetime, str]]:
    async with store.session() as s:
        return [(f.flow_id, f.due_at, f.kind) for f in await s.pending_followups(user)]


async def set_profile(store: SqlStore, **changes: object) -> None:
    async with store.session() as s:
        await s.save_profile(USER, replace(await s.load_profile(USER), **changes))  # type: ignore[arg-type]


async def statuses(store: SqlStore) -> list[str]:
    async with store.engine.connect() as conn:
        return [r[0] for r in await conn.execute(sql("select status from followups order by id"))]


def dispatcher(store: SqlStore, engine: Engine, clock: ManualClock, sender: object) -> Dispatcher:
    # One batch per round whatever the machine's load: a batch also ends after a
    # quarter of a second of real time (to let a waiting person go first), which on
    # a busy machine split these rounds after one follow-up, so only one was tried.
    return Dispatcher(store, engine, {"test": sender}, clock, batch_seconds=60.0)  # type: ignore[dict-item]


async def set_daily_checkin(chat: Chat, at: str = "09:00") -> list[Outbound]:
    await chat.command("checkin")
    await chat.press("Every day")
    return await chat.press(at)


# ----------------------------------------------------------------- restart-safe


async def test_due_while_down_is_delivered_within_its_limit(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20) + timedelta(hours=5, minutes=59))  # "down" until now
    sender = RecordingSender()
    assert await dispatcher(store, engine, clock, sender).run_due() == 1
    assert "checking in like you asked" in texts(sender.sent[0][1])
    assert await statuses(store) == ["sent"]


async def test_late_beyond_the_limit_is_recorded_missed_never_lost(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20) + timedelta(hours=6, minutes=1))
    sender = RecordingSender()
    assert await dispatcher(store, engine, clock, sender).run_due() == 1
    assert sender.sent == []
    assert await statuses(store) == ["missed"]


async def test_a_daily_checkin_late_by_a_day_is_missed_and_the_next_one_planned(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))  # 07:00 in London
    await set_daily_checkin(chat)
    [(_, first, kind)] = await pending(store)
    assert kind == "checkin"
    clock.set(first + timedelta(hours=25))
    sender = RecordingSender()
    await dispatcher(store, engine, clock, sender).run_due()
    assert sender.sent == []
    [(flow, nxt, _)] = await pending(store)
    assert flow == "checkin_due" and nxt > clock.now()
    assert nxt.astimezone(ZoneInfo("Europe/London")).hour == 9


# ----------------------------------------------------------------- once


async def test_two_dispatcher_processes_deliver_each_followup_once(
    tmp_path: Path, store_url: str
) -> None:
    url = store_url
    store = await open_store(url)
    now = datetime.now(UTC)
    people = await plant_due_followups(store, "p", 60, now)
    await store.close()
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    go = tmp_path / "go"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.workers.dispatch_worker",
            url,
            str(out),
            str(go),
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        for out in outs
    ]
    # Start both at once, so they really compete for the same rows.
    for _ in range(3000):
        if all(out.with_suffix(".ready").exists() for out in outs):
            break
        await asyncio.sleep(0.01)
    go.write_text("go")
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], [r[1].decode()[-2000:] for r in results]
    sent = Counter(line for out in outs if out.exists() for line in out.read_text().split())
    assert sent == Counter({u.user_id: 1 for u in people})
    # Both processes took part, or the test proved nothing about two dispatchers.
    assert all(out.exists() and out.read_text() for out in outs)


async def outbox(store: SqlStore) -> list[tuple[str, str | None]]:
    """The fate of the follow-ups' messages (replies to the person are rows too)."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sql("select status, reason from outbound where kind = 'scheduled' order by id")
        )
        return [(r[0], r[1]) for r in rows]


class NoMarks:
    """The store seam of a process that dies right after the platform accepted a
    message: the mark never reaches the database."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner

    async def mark_outbound(self, marks: object, at: datetime) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_crash_after_sending_before_marking_sends_at_most_one_duplicate(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20))
    first = RecordingSender()
    dying = Dispatcher(NoMarks(store), engine, {"test": first}, clock)  # type: ignore[arg-type]
    assert await dying.run_due() == 1
    assert len(first.sent) == 1
    # The follow-up is done; its message is owed by the outbox, still unmarked.
    assert await statuses(store) == ["sent"]
    assert await outbox(store) == [("pending", None)]
    # The restarted process leaves it alone for the lease, then sends it again.
    again = RecordingSender()
    clock.advance(timedelta(seconds=20))
    assert await dispatcher(store, engine, clock, again).run_due() == 0
    assert again.sent == []
    clock.advance(timedelta(seconds=20))
    await dispatcher(store, engine, clock, again).run_due()
    assert len(again.sent) == 1 and "checking in like you asked" in texts(again.sent[0][1])
    assert await outbox(store) == [("sent", None)]
    clock.advance(timedelta(minutes=5))
    await dispatcher(store, engine, clock, again).run_due()
    assert len(first.sent) + len(again.sent) == 2  # exactly one duplicate


class ShuttingDownSender:
    def __init__(self) -> None:
        self.calls = 0

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        from dialogs.followups.dispatcher import NotSent

        self.calls += 1
        raise NotSent


async def test_a_crash_between_commit_and_send_sends_exactly_once_after_restart(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    other = Chat(chat.engine, clock=clock, address=Address("test", "u2", "c2"))
    await onboard(store, clock, other.address)
    await ask_for_followup_in_20_minutes(chat)
    await ask_for_followup_in_20_minutes(other)
    clock.advance(timedelta(minutes=20))
    closing = ShuttingDownSender()
    assert await dispatcher(store, engine, clock, closing).run_due() == 0
    assert closing.calls == 2  # both chats were tried, neither accepted
    assert await statuses(store) == ["sent", "sent"]
    assert await outbox(store) == [("pending", None), ("pending", None)]
    clock.advance(timedelta(minutes=1))
    again = RecordingSender()
    await dispatcher(store, engine, clock, again).run_due()
    assert sorted(a.user_id for a, _ in again.sent) == ["u1", "u2"]
    assert await outbox(store) == [("sent", None), ("sent", None)]
    await dispatcher(store, engine, clock, again).run_due()
    assert len(again.sent) == 2


async def test_a_message_left_unsent_past_its_limit_is_dropped_not_sent_late(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20))
    await dispatcher(store, engine, clock, ShuttingDownSender()).run_due()
    clock.advance(timedelta(hours=2))  # down longer than a scheduled message may wait
    again = RecordingSender()
    await dispatcher(store, engine, clock, again).run_due()
    assert again.sent == []
    assert await outbox(store) == [("dropped", "expired")]


async def test_a_row_left_delivering_by_an_older_version_moves_into_the_outbox(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    """Before the outbox, a follow-up kept its messages on the row while DELIVERING."""
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20))
    [claimed] = await store.claim_due(clock.now(), 10)
    async with store.session() as s:
        await s.mark_delivering(claimed.id, [Outbound("checking in like you asked")], clock.now())
    clock.advance(timedelta(minutes=4))
    sender = RecordingSender()
    assert await dispatcher(store, engine, clock, sender).run_due() == 0  # within its lease
    clock.advance(timedelta(minutes=2))
    assert await dispatcher(store, engine, clock, sender).run_due() == 1
    assert [texts(m) for _, m in sender.sent] == ["checking in like you asked"]
    assert await statuses(store) == ["sent"]
    assert await outbox(store) == [("sent", None)]


async def test_a_row_left_delivering_past_its_limit_is_missed_not_sent(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20))
    [claimed] = await store.claim_due(clock.now(), 10)
    async with store.session() as s:
        await s.mark_delivering(claimed.id, [Outbound("checking in")], clock.now())
    clock.advance(timedelta(hours=7))  # down far longer than the follow-up's 6 h limit
    again = RecordingSender()
    assert await dispatcher(store, engine, clock, again).run_due() == 1
    assert again.sent == []
    assert await statuses(store) == ["missed"]


# ----------------------------------------------------------------- daylight saving


@pytest.mark.parametrize(
    ("zone", "days"),
    [
        ("Europe/London", [datetime(2026, 3, 27), datetime(2026, 10, 23)]),
        ("Australia/Sydney", [datetime(2026, 4, 3), datetime(2026, 10, 2)]),
        ("America/New_York", [datetime(2026, 3, 6), datetime(2026, 10, 30)]),
    ],
)
async def test_a_nine_oclock_checkin_stays_at_nine_across_both_transitions(
    chat: Chat,
    engine: Engine,
    store: SqlStore,
    clock: ManualClock,
    zone: str,
    days: list[datetime],
) -> None:
    await set_profile(store, zone=zone)
    local = ZoneInfo(zone)
    for start in days:
        clock.set(start.replace(hour=12, tzinfo=local).astimezone(UTC))
        await set_daily_checkin(chat)
        delivered_hours = []
        for _ in range(5):  # two days before, the change, two days after
            [(_, due, _)] = await pending(store)
            clock.set(due)
            sender = RecordingSender()
            assert await dispatcher(store, engine, clock, sender).run_due() == 1
            assert "Is now a good moment" in texts(sender.sent[0][1])
            chat.seen.extend(sender.sent[0][1])
            await chat.press("Skip this one")
            delivered_hours.append(due.astimezone(local).strftime("%H:%M"))
        assert delivered_hours == ["09:00"] * 5


# ----------------------------------------------------------------- quiet hours


async def test_a_followup_landing_in_quiet_hours_moves_to_their_end(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 10, 21, 50, tzinfo=UTC))  # 21:50 in London (GMT)
    await ask_for_followup_in_20_minutes(chat)
    [(_, due, _)] = await pending(store)
    assert due == datetime(2026, 1, 11, 8, 0, tzinfo=UTC)


async def test_quiet_hours_can_be_changed_or_turned_off(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.command("quiet")
    await chat.press("23:00")
    out = await chat.press("07:00")
    assert "quiet from 23:00 to 07:00" in texts(out)
    clock.set(datetime(2026, 1, 10, 22, 30, tzinfo=UTC))
    await ask_for_followup_in_20_minutes(chat)
    [(_, due, _)] = await pending(store)
    assert due == datetime(2026, 1, 10, 22, 50, tzinfo=UTC)  # before 23:00: unchanged
    await chat.command("stop")
    await chat.press("Yes, cancel")
    await chat.command("quiet")
    await chat.press("No quiet hours")
    clock.set(datetime(2026, 1, 11, 2, 0, tzinfo=UTC))
    await ask_for_followup_in_20_minutes(chat)
    [(_, due, _)] = await pending(store)
    assert due == datetime(2026, 1, 11, 2, 20, tzinfo=UTC)


# ----------------------------------------------------------------- what a person can do


async def test_timezone_is_asked_once_then_remembered(
    newcomer: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await onboard(store, clock, newcomer.address, zone=None)
    out = await newcomer.command("checkin")
    assert "Which timezone are you in?" in texts(out)
    await newcomer.press("Somewhere else")
    out = await newcomer.say("atlantis")
    assert "couldn't place that" in texts(out)
    out = await newcomer.say("Lisbon")
    assert "Got it: Europe/Lisbon." in texts(out)
    assert "What would you like?" in texts(out)
    out = await newcomer.command("checkin")
    assert "Which timezone" not in texts(out)
    await newcomer.command("timezone")
    await newcomer.press("Somewhere else")
    out = await newcomer.say("UTC+2")
    assert "Got it: Etc/GMT-2." in texts(out)


async def test_weekly_checkin_at_a_typed_time(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))  # a Monday
    await chat.command("checkin")
    await chat.press("Once a week")
    await chat.press("Thursday")
    await chat.press("Another time")
    out = await chat.say("7.45pm")
    assert "a weekly check-in at 19:45" in texts(out)
    [(flow, due, kind)] = await pending(store)
    local = due.astimezone(ZoneInfo("Europe/London"))
    assert (flow, kind, local.strftime("%a %H:%M")) == ("checkin_due", "checkin", "Thu 19:45")
    assert local.date() == datetime(2026, 6, 4).date()


async def test_changing_the_checkin_replaces_the_old_one(chat: Chat, store: SqlStore) -> None:
    await set_daily_checkin(chat, "09:00")
    await set_daily_checkin(chat, "20:00")
    [(_, due, _)] = await pending(store)
    assert due.astimezone(ZoneInfo("Europe/London")).strftime("%H:%M") == "20:00"


async def test_pausing_checkins_for_days(chat: Chat, store: SqlStore, clock: ManualClock) -> None:
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    await set_daily_checkin(chat)
    await chat.command("checkin")
    await chat.press("Pause them for a while")
    out = await chat.press("Three days")
    assert "Paused" in texts(out)
    [(_, due, _)] = await pending(store)
    assert due.astimezone(ZoneInfo("Europe/London")) == datetime(
        2026, 6, 5, 9, 0, tzinfo=ZoneInfo("Europe/London")
    )


async def test_snooze_from_the_checkin_message(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))
    await set_daily_checkin(chat)
    [(_, due, _)] = await pending(store)
    clock.set(due)
    sender = RecordingSender()
    await dispatcher(store, engine, clock, sender).run_due()
    chat.seen.extend(sender.sent[0][1])
    out = await chat.press("In an hour")
    assert "I'll ask again at " in texts(out)
    planned = sorted(await pending(store), key=lambda p: p[1])
    assert [(f, d - due, k) for f, d, k in planned] == [
        ("checkin_due", timedelta(hours=1), "once"),
        ("checkin_due", timedelta(days=1), "checkin"),
    ]
    clock.advance(timedelta(hours=1))
    await dispatcher(store, engine, clock, sender).run_due()
    chat.seen.extend(sender.sent[-1][1])
    out = await chat.press("Yes, now")
    assert "How settled do you feel today?" in texts(out)


async def test_schedule_lists_with_cancel_buttons(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    await set_daily_checkin(chat)
    await ask_for_followup_in_20_minutes(chat)
    out = await chat.command("schedule")
    shown = texts(out)
    assert "Here's what's planned" in shown
    assert "Mon 01 Jun, 13:20: Checking in after a pause" in shown
    assert "Tue 02 Jun, 09:00: Your regular check-in" in shown
    buttons = out[-1].choices
    assert [b.label for b in buttons] == ["Cancel Mon 01 Jun, 13:20", "Cancel Tue 02 Jun, 09:00"]
    out = await chat.send(choice=buttons[0].id)
    assert "Cancelled" in texts(out)
    assert [p[0] for p in await pending(store)] == ["checkin_due"]
    out = await chat.send(choice=buttons[0].id)  # pressed again: stale
    assert "already gone out or been cancelled" in texts(out)


async def test_a_forged_cancel_for_someone_elses_followup_changes_nothing(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    other = Chat(chat.engine, clock=clock, address=Address("test", "u2", "c2"))
    await onboard(store, clock, other.address)
    await ask_for_followup_in_20_minutes(other)
    async with store.session() as s:
        [theirs] = await s.pending_followups(UserKey("test", "u2"))
    out = await chat.send(choice=f"cancel:{theirs.id}")
    assert "already gone out or been cancelled" in texts(out)
    assert len(await pending(store, UserKey("test", "u2"))) == 1
    out = await chat.send(choice="cancel:not-a-number")
    assert "already gone out or been cancelled" in texts(out)


async def test_stop_checkins_cancels_only_the_regular_ones(chat: Chat, store: SqlStore) -> None:
    await set_daily_checkin(chat)
    await ask_for_followup_in_20_minutes(chat)
    out = await chat.command("stop", "checkins")
    assert "no more regular check-ins" in texts(out)
    assert [p[0] for p in await pending(store)] == ["followup"]
    async with store.session() as s:
        assert (await s.load_profile(USER)).checkin_cadence is None


# ----------------------------------------------------------------- unreachable


class BlockedSender:
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked
        self.attempts: list[str] = []
        self.sent: list[str] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.attempts.append(address.user_id)
        if address.user_id in self.blocked:
            raise RecipientUnreachable(address.user_id)
        self.sent.append(address.user_id)


async def test_an_unreachable_person_is_marked_and_the_loop_goes_on(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    other = Chat(chat.engine, clock=clock, address=Address("test", "u2", "c2"))
    await onboard(store, clock, other.address)
    await set_daily_checkin(chat)
    await ask_for_followup_in_20_minutes(chat)
    await ask_for_followup_in_20_minutes(other)
    clock.advance(timedelta(minutes=20))
    sender = BlockedSender({"u1"})
    run = dispatcher(store, engine, clock, sender)
    assert await run.run_due() == 2
    assert sender.sent == ["u2"]
    async with store.session() as s:
        assert (await s.load_profile(USER)).unreachable_at == clock.now()
    assert await pending(store) == []  # the daily check-in too: no retry storm
    clock.advance(timedelta(days=2))
    assert await run.run_due() == 0
    assert sender.attempts.count("u1") == 1
    # Writing again shows they can be reached: planning works again.
    await ask_for_followup_in_20_minutes(chat)
    async with store.session() as s:
        assert (await s.load_profile(USER)).unreachable_at is None
    assert [p[0] for p in await pending(store)] == ["followup"]


async def test_what_someone_had_planned_is_never_for_a_group(
    chat: Chat, engine: Engine, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    group = Address("test", "u1", "group-9", is_private=False)
    from dialogs.events import Command, Inbound

    for n, command in enumerate((Command("schedule"), Command("stop"))):
        out = await engine.handle(Inbound(group, f"g{n}", clock.now(), command=command))
        assert out and all(m.private_only for m in out), command

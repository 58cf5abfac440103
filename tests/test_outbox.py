"""The outbound queue on a fake clock: priority, rates, per-chat limits, failures, close.

Nothing here sleeps for real: the outbox gets `now`/`sleep` from a fake clock, and the
`sleep` advances that clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import TypeVar

import pytest

from bot.outbox import (
    DISCORD_REQUESTS_PER_SECOND,
    TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND,
    TELEGRAM_MESSAGES_PER_SECOND,
    Outbox,
    OutboxClosed,
    Priority,
)
from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher, RecipientUnreachable
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat

T = TypeVar("T")

# A generous real-time guard: if the outbox hangs, fail instead of blocking the suite.
GUARD_SECONDS = 5.0


class FakeTime:
    """`now()` and an async `sleep(d)` that moves the clock forward by `d` at once."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.t += max(0.0, delay)
        await asyncio.sleep(0)


class ManualTime:
    """A clock that only moves when the test says so; `sleep` waits for `advance`."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + delay, future))
        await future

    async def advance(self, delta: float) -> None:
        self.t += delta
        for deadline, future in self._sleepers:
            if deadline <= self.t + 1e-9 and not future.done():
                future.set_result(None)
        self._sleepers = [(d, f) for d, f in self._sleepers if not f.done()]
        await settle()


class RecordingSender:
    """Records what was sent and when (on the fake clock); fails for chat `bad`."""

    def __init__(self, time: FakeTime | ManualTime) -> None:
        self.time = time
        self.sent: list[tuple[float, Address, list[Outbound]]] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        if address.chat_id == "bad":
            raise ConnectionError("blocked by the user")
        self.sent.append((self.time.now(), address, list(messages)))

    def texts(self) -> list[str]:
        return [messages[0].text for _, _, messages in self.sent]

    def times(self, chat_id: str) -> list[float]:
        return [at for at, address, _ in self.sent if address.chat_id == chat_id]


class GatedSender(RecordingSender):
    """Holds its first send open until `gate` is set, so a test can act mid-flight."""

    def __init__(self, time: FakeTime | ManualTime) -> None:
        super().__init__(time)
        self.gate = asyncio.Event()
        self.calls = 0

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.gate.wait()
        await super().send(address, messages)


def to(chat: str) -> Address:
    return Address("telegram", f"user-{chat}", chat)


def msg(text: str) -> list[Outbound]:
    return [Outbound(text)]


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def finish(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, GUARD_SECONDS)


def spawn(outbox: Outbox, priority: Priority, chat: str, text: str) -> asyncio.Task[None]:
    lane = outbox.interactive if priority is Priority.INTERACTIVE else outbox.scheduled
    return asyncio.create_task(lane.send(to(chat), msg(text)))


def make(time: FakeTime | ManualTime, sender: RecordingSender, **limits: object) -> Outbox:
    return Outbox(sender, now=time.now, sleep=time.sleep, **limits)  # type: ignore[arg-type]


async def test_an_interactive_reply_goes_right_after_the_item_in_flight() -> None:
    time = FakeTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    wave = [spawn(outbox, Priority.SCHEDULED, f"c{n}", f"checkin {n}") for n in range(100)]
    await settle()
    assert sender.calls == 1  # "checkin 0" is in flight, 99 are queued
    reply = spawn(outbox, Priority.INTERACTIVE, "me", "reply")
    await settle()
    sender.gate.set()
    await finish(asyncio.gather(reply, *wave))
    assert sender.texts()[:3] == ["checkin 0", "reply", "checkin 1"]
    assert sender.texts()[3:] == [f"checkin {n}" for n in range(2, 100)]
    await outbox.close()


async def test_interactive_items_queued_before_start_go_first_oldest_first() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None)
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", f"checkin {n}") for n in range(3)]
    tasks += [spawn(outbox, Priority.INTERACTIVE, f"r{n}", f"reply {n}") for n in range(2)]
    await settle()
    assert sender.sent == []  # nothing goes before start()
    await outbox.start()
    await finish(asyncio.gather(*tasks))
    assert sender.texts() == ["reply 0", "reply 1", "checkin 0", "checkin 1", "checkin 2"]
    await outbox.close()


async def test_300_messages_at_30_per_second_take_10_seconds() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(300)]
    await finish(asyncio.gather(*tasks))
    times = [at for at, _, _ in sender.sent]
    assert len(times) == 300
    assert times[-1] - 0.0 == pytest.approx(10.0, abs=0.2)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 30 - 1e-6  # never faster than the cap, not even briefly
    await outbox.close()


class LateTime(FakeTime):
    """Like FakeTime, but every sleep ends 1 ms late, and one ends half a second late."""

    async def sleep(self, delay: float) -> None:
        late = 0.5 if len(self.sleeps) == 100 else 0.001
        await super().sleep(delay + late)


async def test_late_timers_do_not_lower_the_rate_nor_bank_a_burst() -> None:
    time = LateTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    await finish(
        asyncio.gather(*(spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(300)))
    )
    times = [at for at, _, _ in sender.sent]
    # 1 ms late 298 times would cost 0.3 s if the lateness were lost; only the stall
    # (less the quarter token credited for it) shows.
    assert times[-1] == pytest.approx(299 / 30 + 0.5 - 0.25 / 30, abs=0.01)
    # In no second do more than 30 messages (and the credit) go out.
    assert min(b - a for a, b in zip(times, times[30:], strict=False)) >= (30 - 0.25) / 30 - 1e-9
    await outbox.close()


async def test_burst_sends_at_once_then_keeps_the_rate() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=10.0, burst=5)
    await outbox.start()
    await finish(
        asyncio.gather(*(spawn(outbox, Priority.SCHEDULED, "c", str(n)) for n in range(8)))
    )
    times = sender.times("c")
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([0.1, 0.2, 0.3])
    await outbox.close()


async def test_each_message_of_an_item_costs_a_token() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    three = [Outbound("a"), Outbound("b"), Outbound("c")]
    await finish(asyncio.gather(*(outbox.scheduled.send(to(f"c{n}"), three) for n in range(10))))
    # 30 messages at 30/s: the tenth item starts after the first nine items' 27 tokens.
    assert [at for at, _, _ in sender.sent][-1] == pytest.approx(27 / 30)
    await outbox.close()


async def test_unlimited_rate_sends_everything_without_sleeping() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(300)]
    tasks += [spawn(outbox, Priority.INTERACTIVE, "me", "reply")]
    await finish(asyncio.gather(*tasks))
    assert len(sender.sent) == 301
    assert time.sleeps == [] and time.t == 0.0
    await outbox.close()


async def test_a_busy_chat_waits_its_turn_without_delaying_other_chats() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(
        time,
        sender,
        rate_per_second=TELEGRAM_MESSAGES_PER_SECOND,
        per_chat_per_second=TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND,
    )
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, "a", f"a{n}") for n in range(2)]
    tasks.append(spawn(outbox, Priority.SCHEDULED, "b", "b0"))
    tasks += [spawn(outbox, Priority.SCHEDULED, "a", f"a{n}") for n in range(2, 5)]
    tasks.append(spawn(outbox, Priority.SCHEDULED, "b", "b1"))
    await finish(asyncio.gather(*tasks))
    assert sender.times("a") == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0], abs=0.05)
    # Queued behind a1..a4, yet out within a couple of global-rate slots, then 1 s apart
    # only because b1 is b's second message.
    b0, b1 = sender.times("b")
    assert b0 <= 0.1
    assert b1 == pytest.approx(b0 + 1.0, abs=0.05)
    assert [t for t in sender.texts() if t.startswith("a")] == [f"a{n}" for n in range(5)]
    await outbox.close()


async def test_a_new_chat_is_sent_at_once_while_the_worker_waits_for_a_busy_chat() -> None:
    time = ManualTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None, per_chat_per_second=1.0)
    await outbox.start()
    first = [spawn(outbox, Priority.SCHEDULED, "a", f"a{n}") for n in range(2)]
    await settle()
    assert sender.texts() == ["a0"]  # a1 waits for chat a until t = 1
    await time.advance(0.25)
    other = spawn(outbox, Priority.SCHEDULED, "b", "b0")
    await settle()
    assert sender.texts() == ["a0", "b0"]
    assert sender.times("b") == [0.25]
    await time.advance(0.75)
    await finish(asyncio.gather(*first, other))
    assert sender.times("a") == pytest.approx([0.0, 1.0])
    await outbox.close()


async def test_a_send_error_reaches_only_its_caller_and_the_worker_goes_on() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    results = await finish(
        asyncio.gather(
            outbox.scheduled.send(to("ok1"), msg("one")),
            outbox.scheduled.send(to("bad"), msg("refused")),
            outbox.interactive.send(to("ok2"), msg("two")),
            return_exceptions=True,
        )
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ConnectionError)
    with pytest.raises(ConnectionError, match="blocked"):
        await finish(outbox.interactive.send(to("bad"), msg("again")))
    await finish(outbox.scheduled.send(to("ok3"), msg("three")))
    assert sender.texts() == ["two", "one", "three"]
    await outbox.close()


async def test_a_cancelled_caller_withdraws_its_queued_item() -> None:
    time = FakeTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=None)
    await outbox.start()
    first = spawn(outbox, Priority.SCHEDULED, "c1", "first")
    await settle()
    withdrawn = spawn(outbox, Priority.SCHEDULED, "c2", "withdrawn")
    kept = spawn(outbox, Priority.SCHEDULED, "c3", "kept")
    await settle()
    withdrawn.cancel()
    sender.gate.set()
    await finish(asyncio.gather(first, kept))
    assert withdrawn.cancelled()
    assert sender.texts() == ["first", "kept"]
    assert outbox.pending == 0
    await outbox.close()


async def test_close_with_items_queued_returns_and_fails_the_rest() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=1.0, per_chat_per_second=1.0)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n % 3}", str(n)) for n in range(50)]
    await settle(5)
    await finish(outbox.close())
    results = await finish(asyncio.gather(*tasks, return_exceptions=True))
    sent = [r for r in results if r is None]
    closed = [r for r in results if isinstance(r, OutboxClosed)]
    assert len(sent) == len(sender.sent) < 50
    assert len(sent) + len(closed) == 50
    assert outbox.pending == 0
    with pytest.raises(OutboxClosed):
        await outbox.scheduled.send(to("late"), msg("too late"))


async def test_close_lets_the_send_in_flight_finish() -> None:
    time = FakeTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=None)
    await outbox.start()
    in_flight = spawn(outbox, Priority.INTERACTIVE, "c1", "in flight")
    queued = spawn(outbox, Priority.SCHEDULED, "c2", "queued")
    await settle()
    closing = asyncio.create_task(outbox.close())
    await settle()
    assert not closing.done()
    sender.gate.set()
    await finish(closing)
    await finish(in_flight)
    with pytest.raises(OutboxClosed):
        await finish(queued)
    assert sender.texts() == ["in flight"]


async def test_close_with_drain_sends_everything_first() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=1.0)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(20)]
    await settle(2)
    await finish(outbox.close(drain=True))
    await finish(asyncio.gather(*tasks))
    assert len(sender.sent) == 20
    assert time.t == pytest.approx(19.0)


async def test_close_before_start_fails_queued_callers() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None)
    task = spawn(outbox, Priority.SCHEDULED, "c", "never")
    await settle()
    await finish(outbox.close())
    with pytest.raises(OutboxClosed):
        await finish(task)


async def test_platform_defaults() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    telegram = Outbox.for_platform(sender, "telegram", now=time.now, sleep=time.sleep)
    await telegram.start()
    await finish(
        asyncio.gather(*(spawn(telegram, Priority.SCHEDULED, "one", str(n)) for n in range(3)))
    )
    assert sender.times("one") == pytest.approx([0.0, 1.0, 2.0])  # 1/s in one chat
    await telegram.close()
    assert DISCORD_REQUESTS_PER_SECOND == 50.0
    discord = Outbox.for_platform(sender, "discord", now=time.now, sleep=time.sleep)
    await discord.start()
    before = time.t
    await finish(
        asyncio.gather(*(spawn(discord, Priority.SCHEDULED, "d", str(n)) for n in range(51)))
    )
    assert time.t - before == pytest.approx(1.0)  # 50/s overall, no per-channel limit
    await discord.close()


async def test_telegram_groups_get_at_most_20_messages_a_minute() -> None:
    # A reflection's posts to one group (step announcements, anonymous shares) next to
    # a private chat, which keeps its own 1/s.
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = Outbox.for_platform(sender, "telegram", now=time.now, sleep=time.sleep)
    await outbox.start()
    group = Address("telegram", "", "-100123", is_private=False)
    posts = [asyncio.create_task(outbox.scheduled.send(group, msg(f"post {n}"))) for n in range(45)]
    private = [spawn(outbox, Priority.SCHEDULED, "one", str(n)) for n in range(3)]
    await finish(asyncio.gather(*posts, *private))
    times = sender.times("-100123")
    assert len(times) == 45
    # In every 60-second window, at most 20 posts.
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) == 20
    assert times[-1] == pytest.approx(44 * 3.0, abs=0.05)
    assert sender.times("one") == pytest.approx([0.0, 1.0, 2.0], abs=0.05)
    await outbox.close()


async def ask_for_a_followup(chat: Chat, clock: ManualClock) -> None:
    await chat.command("pause")
    for label in ("Done", "7", "Silence", "Reach out more", "It fits"):
        await chat.press(label)
    await chat.press("Settle and wait a set time")
    await chat.press("In 20 minutes")
    clock.advance(timedelta(minutes=21))


async def test_the_dispatcher_delivers_through_the_scheduled_lane(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_a_followup(chat, clock)
    time = FakeTime()
    sender = RecordingSender(time)
    async with make(time, sender, rate_per_second=30.0) as outbox:
        dispatcher = Dispatcher(store, engine, {"test": outbox.scheduled}, clock)
        assert await finish(dispatcher.run_due()) == 1
    assert [address for _, address, _ in sender.sent] == [chat.address]
    assert "checking in" in sender.sent[0][2][0].text


class UnreachableSender:
    def __init__(self) -> None:
        self.error = RecipientUnreachable("bot was blocked by the user")

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        raise self.error


async def test_the_senders_own_exception_reaches_the_dispatcher(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_a_followup(chat, clock)
    time = FakeTime()
    sender = UnreachableSender()
    async with Outbox(sender, rate_per_second=30.0, now=time.now, sleep=time.sleep) as outbox:
        with pytest.raises(RecipientUnreachable) as caught:
            await finish(outbox.interactive.send(chat.address, msg("hi")))
        assert caught.value is sender.error  # the very object, not a wrapper
        dispatcher = Dispatcher(store, engine, {"test": outbox.scheduled}, clock)
        assert await finish(dispatcher.run_due()) == 1
    async with store.session() as s:
        profile = await s.load_profile(UserKey("test", chat.address.user_id))
    assert profile.unreachable_at == clock.now()

"""The outbound queue on a fake clock: lanes, caps, per-chat bursts, order, failures, close.

Nothing here sleeps for real: the outbox gets `now`/`sleep` from a fake clock, and the
`sleep` advances that clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from bot.app import limits_for
from bot.config import Settings
from bot.outbox import (
    DISCORD_REQUESTS_PER_SECOND,
    TELEGRAM_CHAT_BURST,
    TELEGRAM_MESSAGES_PER_SECOND,
    Outbox,
    OutboxClosed,
    Priority,
    wave_turn,
)
from dialogs.clock import ManualClock
from dialogs.delivery import Delivered
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

    def times_all(self) -> list[float]:
        return [at for at, _, _ in self.sent]


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


def window_max(times: Sequence[float], seconds: float) -> int:
    """The most sends in any window of `seconds` (closed on the left)."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered if start <= t < start + seconds) for start in ordered)


async def test_an_interactive_reply_overtakes_a_capped_wave() -> None:
    time = FakeTime()
    replies: list[asyncio.Task[None]] = []

    class Recording(RecordingSender):
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            await super().send(address, messages)
            if len(self.sent) == 50:  # half the wave is out: someone writes
                replies.append(spawn(outbox, Priority.INTERACTIVE, "me", "reply"))

    sender = Recording(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    wave = [spawn(outbox, Priority.SCHEDULED, f"c{n}", f"checkin {n}") for n in range(100)]
    await finish(asyncio.gather(*wave))
    await finish(asyncio.gather(*replies))
    # Out next, at once, not after the fifty check-ins still queued.
    assert sender.texts().index("reply") == 50
    [replied] = sender.times("me")
    assert replied - sender.times("c49")[0] <= 1 / 30 + 1e-9
    assert [t for t in sender.texts() if t != "reply"] == [f"checkin {n}" for n in range(100)]
    await outbox.close()


async def test_no_wave_message_is_handed_over_while_the_platform_says_wait() -> None:
    # Held in the platform client's limiter, they would all arrive when it lets go.
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    paused_until = [0.0]
    outbox.hold_waves_while(lambda: time.now() < paused_until[0])
    await outbox.start()
    paused_until[0] = time.now() + 2.0
    wave = [spawn(outbox, Priority.SCHEDULED, f"c{n}", f"checkin {n}") for n in range(10)]
    reply = spawn(outbox, Priority.INTERACTIVE, "me", "reply")
    await finish(asyncio.gather(*wave, reply))
    # Replies are not held here (the limiter holds them anyway, and they are few).
    [replied] = sender.times("me")
    assert replied < paused_until[0]
    waved = [at for at, address, _ in sender.sent if address.chat_id != "me"]
    assert len(waved) == 10 and min(waved) >= paused_until[0]
    assert window_max(waved, 1.0) <= 30
    await outbox.close()


class Repeating(RecordingSender):
    """Makes each wave message's request the way a platform client does, through its
    `WaveTurn`, and makes it twice for every third chat (its first answer lost, as
    the adapter's retry loop then sends again). Every request is recorded."""

    def __init__(self, time: FakeTime | ManualTime) -> None:
        super().__init__(time)
        self.requests: list[tuple[float, str]] = []
        self.on_request: list[object] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        turn = wave_turn()
        attempts = 2 if turn is not None and int(address.chat_id[1:]) % 3 == 0 else 1
        for _ in range(attempts):
            if turn is not None:
                await turn.paced()
            self.requests.append((self.time.now(), address.chat_id))
        await super().send(address, messages)


async def test_a_wave_message_sent_again_takes_a_moment_of_its_own() -> None:
    # A retry sent at once would be one more than the cap in its second (the adapter
    # retries a 5xx, a dropped connection or a lost answer, each reaching Telegram).
    time = FakeTime()
    replies: list[asyncio.Task[None]] = []
    asked_at: list[int] = []  # how many requests had been made then

    class RepeatingWithAReply(Repeating):
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            if address.chat_id != "me":
                assert wave_turn() is not None
            else:
                assert wave_turn() is None  # a reply has no place in the wave's pace
            await super().send(address, messages)
            if len(self.sent) == 45:  # mid-wave, someone writes
                asked_at.append(len(self.requests))
                replies.append(spawn(outbox, Priority.INTERACTIVE, "me", "reply"))

    sender = RepeatingWithAReply(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    wave = [
        spawn(outbox, Priority.SCHEDULED, f"c{n}", f"checkin {n}.{k}")
        for k in range(2)
        for n in range(60)
    ]
    await finish(asyncio.gather(*wave))
    await finish(asyncio.gather(*replies))
    wave_requests = [at for at, chat in sender.requests if chat != "me"]
    assert len(wave_requests) == 120 + 2 * 20
    assert window_max(wave_requests, 1.0) <= 30
    # Every message once to its chat, in order; the reply never waited for the wave.
    for n in range(60):
        assert [m[0].text for _, a, m in sender.sent if a.chat_id == f"c{n}"] == [
            f"checkin {n}.0",
            f"checkin {n}.1",
        ]
    # (The fake clock jumps at every sleep begun, so the reply's wait is read in
    # requests: at most the one wave request whose moment had come went first.)
    replied = [chat for _, chat in sender.requests].index("me")
    assert replied - asked_at[0] <= 1
    await outbox.close()


async def test_a_wave_request_held_while_the_platform_said_wait_takes_a_new_moment() -> None:
    # Handed over just before a 429's pause, it waited in the platform client; sent
    # when the pause ends, with all the others held, it would crowd that second.
    time = ManualTime()
    paused_until = [0.0]
    turns: list[tuple[float, str]] = []

    class HeldInTheClient(RecordingSender):
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            turn = wave_turn()
            assert turn is not None
            paused_until[0] = time.now() + 2.0  # the pause begins as this one is on its way
            await turn.paced(held=True)
            turns.append((time.now(), address.chat_id))

    outbox = make(time, HeldInTheClient(time), rate_per_second=30.0)
    outbox.hold_waves_while(lambda: time.now() < paused_until[0])
    await outbox.start()
    held = spawn(outbox, Priority.SCHEDULED, "c1", "held")
    await settle()
    for _ in range(30):
        await time.advance(0.1)
    await finish(held)
    assert [chat for _, chat in turns] == ["c1"]
    assert turns[0][0] >= 2.0  # its moment came after the pause, not at hand-over
    await outbox.close()


async def test_close_lets_a_send_in_flight_take_its_moment_again() -> None:
    # Nothing in flight is lost at shutdown because it needed a new moment.
    time = FakeTime()
    gate = asyncio.Event()
    requests: list[str] = []

    class RetriedAfterClose(RecordingSender):
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            turn = wave_turn()
            assert turn is not None
            await turn.paced()
            requests.append("first")
            await gate.wait()  # its answer is lost meanwhile; the outbox is closing
            await turn.paced()
            requests.append("again")
            await super().send(address, messages)

    sender = RetriedAfterClose(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    in_flight = spawn(outbox, Priority.SCHEDULED, "c1", "checkin")
    await settle()
    closing = asyncio.create_task(outbox.close())
    await settle()
    assert not closing.done()
    gate.set()
    await finish(closing)
    await finish(in_flight)
    assert requests == ["first", "again"]
    assert sender.texts() == ["checkin"]


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


async def test_a_capped_wave_never_exceeds_the_cap_in_any_second() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(300)]
    await finish(asyncio.gather(*tasks))
    times = [at for at, _, _ in sender.sent]
    assert len(times) == 300
    assert window_max(times, 1.0) <= 30
    # Spread out, not in bursts at the start of each second: about 30 a second.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 30 - 1e-6
    assert times[-1] == pytest.approx(300 / 30, rel=0.1)
    await outbox.close()


class LateTime(FakeTime):
    """Like FakeTime, but every sleep ends 1 ms late, and one ends half a second late."""

    async def sleep(self, delay: float) -> None:
        late = 0.5 if len(self.sleeps) == 100 else 0.001
        await super().sleep(delay + late)


async def test_late_timers_never_let_a_second_exceed_the_cap() -> None:
    time = LateTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    await finish(
        asyncio.gather(*(spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(300)))
    )
    times = [at for at, _, _ in sender.sent]
    assert window_max(times, 1.0) <= 30
    # Lateness does not pile up: the stall shows, the milliseconds barely do.
    assert times[-1] == pytest.approx(300 / 30 + 0.5, rel=0.1)
    await outbox.close()


async def test_a_whole_reply_goes_at_once_then_the_chat_is_paced() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None, per_chat_per_second=1.0, chat_burst=5)
    await outbox.start()
    await finish(
        asyncio.gather(*(spawn(outbox, Priority.INTERACTIVE, "c", str(n)) for n in range(8)))
    )
    times = sender.times("c")
    assert times[:5] == [0.0] * 5  # a burst of five: a whole reply, no waiting
    assert times[5:] == pytest.approx([1.0, 2.0, 3.0])  # sustained sending: 1 a second
    assert sender.texts() == [str(n) for n in range(8)]
    await outbox.close()


async def test_each_message_of_an_item_costs_a_token() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0)
    await outbox.start()
    three = [Outbound("a"), Outbound("b"), Outbound("c")]
    await finish(asyncio.gather(*(outbox.scheduled.send(to(f"c{n}"), three) for n in range(20))))
    times = [at for at, _, messages in sender.sent for _ in messages]
    # 60 messages at 30 a second: never more than 30 in a second, all out in about 2 s,
    # a wave's item one message at a time.
    assert len(times) == 60 and {len(m) for _, _, m in sender.sent} == {1}
    assert window_max(times, 1.0) <= 30
    assert times[-1] == pytest.approx(59 / 30, abs=0.15)
    await outbox.close()


async def test_a_reply_longer_than_the_burst_goes_in_parts_and_in_order() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None, per_chat_per_second=1.0, chat_burst=5)
    await outbox.start()
    heard: list[int] = []
    seven = [Outbound(str(n)) for n in range(7)]
    await finish(outbox.interactive.send(to("c"), seven, heard.append))
    # Five at once (one call), then the chat's pace for the rest.
    assert [(at, [m.text for m in ms]) for at, _, ms in sender.sent] == [
        (0.0, ["0", "1", "2", "3", "4"]),
        (pytest.approx(1.0), ["5"]),
        (pytest.approx(2.0), ["6"]),
    ]
    assert heard == list(range(7))
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


async def test_replies_have_their_own_budget() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=30.0, replies_per_second=100.0)
    await outbox.start()
    await finish(
        asyncio.gather(*(spawn(outbox, Priority.INTERACTIVE, f"p{n}", "hi") for n in range(250)))
    )
    times = [at for at, _, _ in sender.sent]
    # Not the wave's 30 a second: a second's budget at once, then 100 a second.
    assert times[99] == 0.0
    assert times[-1] == pytest.approx(1.5, abs=0.05)
    await outbox.close()


async def test_order_within_a_chat_is_kept_across_lanes() -> None:
    time = ManualTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=None)
    await outbox.start()
    checkin = spawn(outbox, Priority.SCHEDULED, "me", "check-in")
    await settle()
    reply = spawn(outbox, Priority.INTERACTIVE, "me", "reply")
    other = spawn(outbox, Priority.INTERACTIVE, "you", "yours")
    await settle()
    # Another chat goes while "me" has a send in flight; "me" waits for it.
    assert sender.texts() == ["yours"]
    sender.gate.set()
    await finish(asyncio.gather(checkin, reply, other))
    assert [t for t in sender.texts() if t != "yours"] == ["check-in", "reply"]
    await outbox.close()


async def test_chats_are_sent_side_by_side_up_to_the_limit() -> None:
    time = FakeTime()
    release = asyncio.Event()
    started: list[str] = []

    class Slow:
        async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
            started.append(address.chat_id)
            await release.wait()

    outbox = Outbox(Slow(), rate_per_second=None, max_in_flight=3, now=time.now, sleep=time.sleep)
    await outbox.start()
    tasks = [asyncio.create_task(outbox.scheduled.send(to(f"c{n}"), msg("x"))) for n in range(5)]
    await settle()
    assert started == ["c0", "c1", "c2"]
    release.set()
    await finish(asyncio.gather(*tasks))
    assert started == [f"c{n}" for n in range(5)]
    await outbox.close()


async def test_a_busy_chat_waits_its_turn_without_delaying_other_chats() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(
        time,
        sender,
        rate_per_second=TELEGRAM_MESSAGES_PER_SECOND,
        per_chat_per_second=1.0,
        chat_burst=2,
    )
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, "a", f"a{n}") for n in range(5)]
    tasks.append(spawn(outbox, Priority.SCHEDULED, "b", "b0"))
    await finish(asyncio.gather(*tasks))
    a = sender.times("a")
    assert a[2:] == pytest.approx([1.0, 2.0, 3.0], abs=0.1)
    [b0] = sender.times("b")
    assert b0 <= 0.2  # within a few of the wave's slots, not after a's 3 seconds
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


async def test_what_got_through_is_reported_message_by_message() -> None:
    time = FakeTime()
    accepted: list[int] = []

    class Tracking:
        tracks_delivery = True

        async def send(
            self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
        ) -> None:
            assert delivered is not None  # the outbox reports to a tracking sender
            delivered(0)
            raise ConnectionError("dropped after the first")

    async with Outbox(Tracking(), rate_per_second=None, now=time.now, sleep=time.sleep) as outbox:
        with pytest.raises(ConnectionError):
            await finish(outbox.interactive.send(to("c"), msg("a") + msg("b"), accepted.append))
    assert accepted == [0]


async def test_a_cancelled_caller_withdraws_its_queued_item() -> None:
    time = FakeTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=None, max_in_flight=1)
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


async def test_close_lets_the_sends_in_flight_finish() -> None:
    time = FakeTime()
    sender = GatedSender(time)
    outbox = make(time, sender, rate_per_second=None, max_in_flight=1)
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
    assert window_max(sender.times_all(), 1.0) <= 1


async def test_close_before_start_fails_queued_callers() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=None)
    task = spawn(outbox, Priority.SCHEDULED, "c", "never")
    await settle()
    await finish(outbox.close())
    with pytest.raises(OutboxClosed):
        await finish(task)


def production(platform: str, sender: RecordingSender, time: FakeTime, **settings: Any) -> Outbox:
    """An outbox with the limits `Guide.add_platform` gives it (`limits_for` of the
    settings, the environment left out), on the fake clock."""
    limits = limits_for(platform, Settings(_env_file=None, **settings))
    return Outbox.with_limits(sender, limits, now=time.now, sleep=time.sleep)


@pytest.fixture
def no_limit_settings_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TELEGRAM_RATE",
        "TELEGRAM_RATE_PER_CHAT",
        "TELEGRAM_CHAT_BURST",
        "TELEGRAM_REPLY_RATE",
        "TELEGRAM_GROUP_MESSAGES_PER_MINUTE",
        "DISCORD_RATE",
    ):
        monkeypatch.delenv(f"PAUSECHECK_{name}", raising=False)


@pytest.mark.usefixtures("no_limit_settings_in_env")
async def test_platform_defaults() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    telegram = production("telegram", sender, time)
    await telegram.start()
    assert TELEGRAM_CHAT_BURST >= 5
    await finish(
        asyncio.gather(*(spawn(telegram, Priority.INTERACTIVE, "one", str(n)) for n in range(7)))
    )
    # A reply of five at once; more than that in one chat, 1 a second.
    assert sender.times("one") == pytest.approx([0.0] * 5 + [1.0, 2.0])
    await telegram.close()
    assert DISCORD_REQUESTS_PER_SECOND == 50.0
    discord = production("discord", sender, time)
    await discord.start()
    before = len(sender.sent)
    await finish(
        asyncio.gather(*(spawn(discord, Priority.SCHEDULED, f"d{n}", "x") for n in range(120)))
    )
    times = [at for at, _, _ in sender.sent[before:]]
    assert window_max(times, 1.0) <= 50  # the global limit, no per-channel limit here
    await discord.close()


@pytest.mark.usefixtures("no_limit_settings_in_env")
async def test_telegram_groups_get_at_most_20_messages_a_minute() -> None:
    # A reflection's posts to one group (step announcements, anonymous shares) next to
    # a private chat, which keeps its own pace; with the limits the guide runs with.
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = production("telegram", sender, time)
    await outbox.start()
    group = Address("telegram", "", "-100123", is_private=False)
    posts = [asyncio.create_task(outbox.scheduled.send(group, msg(f"post {n}"))) for n in range(45)]
    private = [spawn(outbox, Priority.INTERACTIVE, "one", str(n)) for n in range(3)]
    await finish(asyncio.gather(*posts, *private))
    times = sender.times("-100123")
    assert len(times) == 45
    assert window_max(times, 60.0) == 20  # at the cap, not below it
    # One after another (one send in flight per chat), within the chat's burst.
    assert sender.times("one") == pytest.approx([0.0, 0.0, 0.0], abs=0.1)
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


async def test_the_senders_own_exception_reaches_the_delivery(
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


async def test_a_wave_is_paced_by_the_requests_the_sender_says_it_makes() -> None:
    # Discord counts requests, and a check-in to a DM not yet open is two (open the
    # channel, then post): at a cap of 10 a second, 5 such check-ins a second.
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=10.0)
    outbox.weigh = lambda address, messages: 2 * len(messages)
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(20)]
    await finish(asyncio.gather(*tasks))
    times = sender.times_all()
    assert len(times) == 20
    assert window_max(times, 1.0) <= 5
    assert times[-1] == pytest.approx(20 * 2 / 10, rel=0.15)
    await outbox.close()


async def test_a_sender_that_cannot_weigh_costs_one_request_a_message() -> None:
    time = FakeTime()
    sender = RecordingSender(time)
    outbox = make(time, sender, rate_per_second=10.0)

    def broken(address: Address, messages: Sequence[Outbound]) -> int:
        raise ValueError("a bug in weighing")

    outbox.weigh = broken
    await outbox.start()
    tasks = [spawn(outbox, Priority.SCHEDULED, f"c{n}", str(n)) for n in range(20)]
    await finish(asyncio.gather(*tasks))
    assert len(sender.times_all()) == 20
    assert window_max(sender.times_all(), 1.0) <= 10
    await outbox.close()

"""Pacing what goes out to a platform: per-chat bursts, caps for waves, order kept.

Every adapter's messages go through an `Outbox` in front of its real sender:

- `outbox.interactive.send(...)` for replies to something a person just did, and
- `outbox.scheduled.send(...)` for a wave of due follow-ups and other timed posts.

Both lanes are senders (`dialogs.delivery.Sender`, and they report each accepted
message, `tracks_delivery`). A call queues one item (some messages for one chat) and
waits until it was sent; if the platform refused it, the caller gets the sender's
exception. What to do about that, and marking the outbox rows, is the caller's
(`dialogs.delivery.Delivery`); this class only paces, orders and sends.

Order: each chat is a queue, first in first out whatever the lane, with at most one
send in flight, so a chat sees its messages in the order they were queued (a 429
retried inside a send holds the chat's next message back, never overtaken). Different
chats are sent side by side, up to `max_in_flight` sends at once.

Pacing, in three kinds of limit (`Limits`, `None` for none):
- per chat, a token bucket of `chat_burst` messages refilled at `per_chat_per_second`:
  a whole reply goes at once (Telegram allows short bursts in one chat), and only
  sustained sending to one chat is slowed to its rate;
- per group chat, at most `per_group_per_minute` messages in any minute (Telegram:
  20), for every item addressed to a group;
- overall, at most `rate_per_second` messages in any one second (Telegram's 30 for
  bulk notifications): this cap paces scheduled items and group posts. A reply in a
  private chat has its own, higher budget (`replies_per_second`, a token bucket with
  a burst of one second's worth) and goes first: whenever a reply may go, it goes
  before any scheduled item. Replies also count in the overall window, so a wave
  slows down while people are being answered. Telegram's 429 and its `retry_after`
  are honoured inside the send (python-telegram-bot's `AIORateLimiter` pauses every
  request for that long, then retries); the chat's next message waits for it.
  Where the platform counts requests rather than messages (Discord: opening a DM
  channel, each part of a split text), the sender says what an item costs (`weigh`)
  and the overall limits count that.

With several workers on one PostgreSQL database the overall cap is shared too
(`share_cap`, bot/shared_cap.py): each capped message also waits for its moment on the
platform's line in the database, so all workers together keep to the cap.

A capped send is handed over at its moment, and its first request uses it. A request
the send makes again (a retry after a 5xx, a dropped connection, a lost answer or a
429), or one the platform's client held back while the platform said wait, would
reach the platform outside the pace; so it first takes a moment of its own, as a new
capped message would (`WaveTurn`, which the sender finds with `wave_turn()`; on
Telegram, bot/telegram/retry.py). Such moments come before new capped messages and
never hold up a reply.

Time comes from the injected `now` and `sleep` (monotonic seconds), so tests run on a
fake clock and never sleep for real.

Shutdown: `close()` stops taking new items, lets the sends in flight finish and fails
everything still queued with `OutboxClosed` (a `NotSent`: the rows stay pending for
the next start); `close(drain=True)` sends the queue first.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import TracebackType

from bot.shared_cap import SharedBudget, SharedGate
from dialogs.delivery import Delivered, NotSent, Sender, send_tracked
from dialogs.events import Address, Outbound

log = logging.getLogger(__name__)

TELEGRAM_MESSAGES_PER_SECOND = 30.0
TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND = 1.0
TELEGRAM_CHAT_BURST = 5
TELEGRAM_GROUP_MESSAGES_PER_MINUTE = 20.0
# Replies to people who just wrote are not bulk notifications: their own budget, high
# enough not to be what two hundred people tapping a second after each reply wait for
# (about 185 messages a second then: at 100 a second, in bench/telegram_throughput.py
# (b) on a quiet machine, the reply p99 was 3.4 s, and at 200 it was 1.0 s, CPU-bound),
# and Telegram's 429 still has the last word.
TELEGRAM_REPLIES_PER_SECOND = 200.0
DISCORD_REQUESTS_PER_SECOND = 50.0
MAX_IN_FLIGHT = 64
# How often a wave held by the platform's pause looks again (the pause lasts as long
# as Telegram's retry_after, a second or more).
_PAUSE_RECHECK = 0.05

# Float slack when comparing a ready time with a clock that was advanced to it.
_EPSILON = 1e-9
# At most this much of a token is credited for a timer that fired late (see _TokenBucket).
_LATE_CREDIT = 0.25
# The windows are measured a little long, so that jitter between our clock and the
# platform's never makes one more message than the cap in its second or minute.
_WINDOW_MARGIN = 1.05
# The line shared by several workers is spaced longer still: each worker uses its
# moment up to half a share late, and its clock, the database's and the platform's
# differ more than one process's clock and the platform's. At 5%, three workers put
# 31 or 32 wave messages into one second at the fake (tests/test_soak.py, and
# tests/workers/test_shared_cap_postgres.py): the moments were right, their arrival
# was not. 10% leaves about 70 ms of that jitter inside the cap.
_SHARED_MARGIN = 1.10

# (platform, chat id, and for a private chat the person): on Discord a DM is the
# person's, whatever channel id the address carries.
ChatKey = tuple[str, str, str]


class Priority(IntEnum):
    INTERACTIVE = 0
    SCHEDULED = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """How fast one platform accepts messages; `None` means no limit."""

    # Overall, for scheduled items and group posts: at most this many in any second.
    rate_per_second: float | None
    # Sustained sending to one chat, after a burst of `chat_burst`.
    per_chat_per_second: float | None = None
    chat_burst: int = 1
    # At most this many in any minute to one group chat.
    per_group_per_minute: float | None = None
    # Replies in private chats: their own budget (None: only the per-chat limit).
    replies_per_second: float | None = None


TELEGRAM_LIMITS = Limits(
    TELEGRAM_MESSAGES_PER_SECOND,
    per_chat_per_second=TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND,
    chat_burst=TELEGRAM_CHAT_BURST,
    per_group_per_minute=TELEGRAM_GROUP_MESSAGES_PER_MINUTE,
    replies_per_second=TELEGRAM_REPLIES_PER_SECOND,
)
# Discord's global limit counts every request: replies share it.
DISCORD_LIMITS = Limits(DISCORD_REQUESTS_PER_SECOND, replies_per_second=DISCORD_REQUESTS_PER_SECOND)
PLATFORM_LIMITS: dict[str, Limits] = {"telegram": TELEGRAM_LIMITS, "discord": DISCORD_LIMITS}


class OutboxClosed(NotSent):
    """The outbox was closed before this item could be sent; nothing was sent."""


class WaveTurn:
    """One capped send's place in the wave's pace, while the sender makes it.

    The outbox handed the send over at its moment, which its first request uses. Any
    later request of the send (a retry, a second post, one held back while the
    platform said wait) asks the outbox for a moment of its own first: sent at once,
    it would arrive outside the pace, one more in its second than the cap."""

    __slots__ = ("_fresh", "_outbox")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._fresh = True

    async def paced(self, *, held: bool = False) -> None:
        """Return when the next request of this send may go: at once for the first
        (unless it was `held` back since the hand-over, its moment gone), otherwise
        once the wave's pace gives it a new moment."""
        if self._fresh and not held:
            self._fresh = False
            return
        self._fresh = False
        await self._outbox._moment_again()


# The capped send this task is making, if any (set by the outbox around each send).
_WAVE_TURN: ContextVar[WaveTurn | None] = ContextVar("wave_turn", default=None)


def wave_turn() -> WaveTurn | None:
    """The turn of the capped send being made in this task; None in any other
    (a reply, or an outbox with no cap)."""
    return _WAVE_TURN.get()


@dataclass(slots=True)
class _TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated_at: float
    # When the worker was told the next token would be there, while it waits for it.
    due_at: float | None = None

    def _refill(self, now: float) -> None:
        if self.due_at is not None and now > self.due_at:
            # Timers fire late (about a millisecond per wait, which at 30/s is 3% of the
            # rate). A backlog that waited for its token is charged from when the token
            # was due, so the lateness counts towards the next token instead of being
            # cut off at `capacity`; capped, so a stalled event loop cannot bank a burst.
            now = max(self.due_at, now - _LATE_CREDIT / self.rate)
        if now > self.updated_at:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)
            self.updated_at = now

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens (at most a full bucket) are there."""
        self._refill(now)
        missing = min(cost, self.capacity) - self.tokens
        if missing <= _EPSILON:
            return 0.0
        self.due_at = now + missing / self.rate
        return missing / self.rate

    def available(self, now: float) -> int:
        """Whole tokens there now."""
        self._refill(now)
        return int(self.tokens + _EPSILON)

    def take(self, cost: float, now: float) -> None:
        """Charge `cost` tokens; a long item may leave the bucket in debt."""
        self._refill(now)
        self.tokens -= cost
        self.due_at = None


@dataclass(slots=True)
class _Window:
    """At most `limit` messages in any `seconds`: the times of the latest ones."""

    limit: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)

    def _forget(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()

    def wait_time(self, now: float, cost: int = 1) -> float:
        self._forget(now)
        need = min(cost, self.limit)
        over = len(self.sent) + need - self.limit
        if over <= 0:
            return 0.0
        return max(0.0, self.sent[over - 1] + self.seconds - now)

    def free(self, now: float) -> int:
        """Messages that may go now."""
        self._forget(now)
        return self.limit - len(self.sent)

    def take(self, cost: int, now: float) -> None:
        self.sent.extend(itertools.repeat(now, cost))


@dataclass(slots=True)
class _Item:
    address: Address
    messages: Sequence[Outbound]
    priority: Priority
    delivered: Delivered | None
    future: asyncio.Future[None]
    # A long item goes in parts, as far as the limits let each: where this part
    # starts in what the caller gave, and whether it is the last part.
    offset: int = 0
    last: bool = True

    def split(self, n: int) -> tuple[_Item, _Item]:
        """The first `n` messages as a part to send now, and the rest."""
        first = replace(self, messages=self.messages[:n], last=False)
        rest = replace(self, messages=self.messages[n:], offset=self.offset + n)
        return first, rest

    def report(self, index: int) -> None:
        if self.delivered is not None:
            self.delivered(self.offset + index)

    @property
    def capped(self) -> bool:
        """Paced by the overall cap: scheduled items, and anything for a group."""
        return self.priority is Priority.SCHEDULED or not self.address.is_private


@dataclass(slots=True)
class _Chat:
    key: ChatKey
    queue: deque[_Item] = field(default_factory=deque)
    busy: bool = False
    bucket: _TokenBucket | None = None
    window: _Window | None = None

    def wait_time(self, now: float) -> float:
        """Until the chat may take its next message (a long item then goes in parts)."""
        waits = [0.0]
        if self.bucket is not None:
            waits.append(self.bucket.wait_time(now))
        if self.window is not None:
            waits.append(self.window.wait_time(now))
        return max(waits)


class _Lane:
    """A sender that puts everything it is given into the outbox at one priority."""

    tracks_delivery = True

    def __init__(self, outbox: Outbox, priority: Priority) -> None:
        self._outbox = outbox
        self.priority = priority

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None:
        await self._outbox.send(address, messages, self.priority, delivered)


class Outbox:
    def __init__(
        self,
        sender: Sender,
        *,
        rate_per_second: float | None,
        per_chat_per_second: float | None = None,
        chat_burst: int = 1,
        per_group_per_minute: float | None = None,
        replies_per_second: float | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        for name, value in (
            ("rate_per_second", rate_per_second),
            ("per_chat_per_second", per_chat_per_second),
            ("per_group_per_minute", per_group_per_minute),
            ("replies_per_second", replies_per_second),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, or None for no limit")
        if chat_burst < 1 or max_in_flight < 1:
            raise ValueError("chat_burst and max_in_flight must be at least 1")
        self._sender = sender
        self._now = now
        self._sleep = sleep
        # The overall cap: a window (never more than the cap in any second) and a
        # bucket of one (spaced evenly within the second rather than all at once).
        self._overall = None if rate_per_second is None else _window(rate_per_second, 1.0)
        self._spacing = (
            None if rate_per_second is None else _TokenBucket(rate_per_second, 1.0, 1.0, now())
        )
        self._replies = (
            None
            if replies_per_second is None
            else _TokenBucket(replies_per_second, replies_per_second, replies_per_second, now())
        )
        self._rate = rate_per_second
        self._per_chat = per_chat_per_second
        self._chat_burst = float(chat_burst)
        self._per_group = per_group_per_minute
        self._max_in_flight = max_in_flight
        self._chats: dict[ChatKey, _Chat] = {}
        self._forget_above = 1024
        # Chats whose first item may go as far as the chat's own limits go, by lane:
        # (priority, order, chat). `order` is when that item was queued.
        self._ready: dict[bool, list[tuple[int, int, ChatKey]]] = {False: [], True: []}
        # Chats waiting for their own limits: (ready at, order, chat).
        self._parked: list[tuple[float, int, ChatKey]] = []
        self._order = itertools.count()
        self._queued = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        # Capped sends in flight waiting for a moment of their own (WaveTurn), in turn.
        self._repeats: deque[asyncio.Future[None]] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._drain = False
        # Hears each message the platform accepted: True for a reply (bot.metrics).
        self.on_sent: Callable[[bool], None] | None = None
        # How many requests an item costs the platform's overall limits (the cap,
        # the replies' budget, the shared line), when that is not one per message:
        # a Discord DM may first open its channel, and a long text goes in parts.
        # Per-chat limits still count messages.
        self.weigh: Callable[[Address, Sequence[Outbound]], int] | None = None
        # The overall cap shared with other workers, when there are (share_cap).
        self._gate: SharedGate | None = None
        # Whether the platform told the sender to wait (hold_waves_while).
        self._platform_paused: Callable[[], bool] | None = None
        self.interactive: _Lane = _Lane(self, Priority.INTERACTIVE)
        self.scheduled: _Lane = _Lane(self, Priority.SCHEDULED)

    @classmethod
    def for_platform(
        cls,
        sender: Sender,
        platform: str,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Outbox:
        """An outbox with the platform's default limits (unlimited if unknown)."""
        limits = PLATFORM_LIMITS.get(platform, Limits(None))
        return cls.with_limits(sender, limits, now=now, sleep=sleep)

    @classmethod
    def with_limits(
        cls,
        sender: Sender,
        limits: Limits,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Outbox:
        return cls(
            sender,
            rate_per_second=limits.rate_per_second,
            per_chat_per_second=limits.per_chat_per_second,
            chat_burst=limits.chat_burst,
            per_group_per_minute=limits.per_group_per_minute,
            replies_per_second=limits.replies_per_second,
            now=now,
            sleep=sleep,
        )

    def hold_waves_while(self, paused: Callable[[], bool]) -> None:
        """Hand no capped message to the sender while `paused()` says the platform
        asked to wait (Telegram's 429 `retry_after`, which python-telegram-bot's
        limiter honours by holding back every request). Handed over meanwhile, at
        the cap's pace, they would all wait in the limiter and reach the platform
        together when the pause ends: twice the cap in that second, one 429 in a
        wave measured 61 at the fake."""
        self._platform_paused = paused

    def share_cap(self, budget: SharedBudget) -> None:
        """Hold the overall cap across every worker sharing `budget`, not only in
        this process (bot/shared_cap.py); nothing to share without a cap."""
        if self._rate is not None:
            spacing = _SHARED_MARGIN / self._rate
            self._gate = SharedGate(budget, spacing, self._wakeup.set, self._sleep, self._now)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Items waiting to be sent (not counting those in flight)."""
        return self._queued

    async def send(
        self,
        address: Address,
        messages: Sequence[Outbound],
        priority: Priority,
        delivered: Delivered | None = None,
    ) -> None:
        """Queue one send to `address` at `priority` and wait until it was made.

        Raises what the sender raised, or `OutboxClosed` if it was never made.
        Cancelling the caller withdraws the item if it has not been taken yet.
        `delivered` hears the index of each message the platform accepted."""
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = _Item(address, messages, priority, delivered, future)
        key = _chat_key(address)
        chat = self._chats.get(key)
        if chat is None:
            if len(self._chats) >= self._forget_above:
                self._forget_idle()
            chat = self._chats[key] = self._new_chat(key, address)
        chat.queue.append(item)
        self._queued += 1
        if len(chat.queue) == 1 and not chat.busy:
            self._schedule(chat)
        self._wakeup.set()
        await future

    def _new_chat(self, key: ChatKey, address: Address) -> _Chat:
        now = self._now()
        chat = _Chat(key)
        if self._per_chat is not None:
            chat.bucket = _TokenBucket(self._per_chat, self._chat_burst, self._chat_burst, now)
        if self._per_group is not None and not address.is_private:
            chat.window = _window(self._per_group, 60.0)
        return chat

    def _forget_idle(self) -> None:
        """Drop chats with nothing queued or in flight whose limits have recovered
        (a full bucket, an empty window): keeps memory bounded by recent chats."""
        now = self._now()
        for key in [key for key, chat in self._chats.items() if _idle(chat, now)]:
            del self._chats[key]
        self._forget_above = max(1024, 2 * len(self._chats))

    def _schedule(self, chat: _Chat) -> None:
        """Put a chat with a first item and nothing in flight where the worker looks."""
        item = chat.queue[0]
        wait = chat.wait_time(self._now())
        order = next(self._order)
        if wait > _EPSILON:
            heapq.heappush(self._parked, (self._now() + wait, order, chat.key))
        else:
            heapq.heappush(self._ready[item.capped], (int(item.priority), order, chat.key))

    async def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("the outbox was already started")
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        self._worker = asyncio.create_task(self._run(), name="outbox")
        self._worker.add_done_callback(self._worker_done)

    async def close(self, *, drain: bool = False) -> None:
        """Stop taking items. Sends in flight finish; with `drain`, everything queued
        is sent first, otherwise it fails with `OutboxClosed`."""
        self._closed = True
        self._drain = drain
        self._wakeup.set()
        worker = self._worker
        if worker is not None and not worker.done():
            try:
                await asyncio.shield(worker)
            except asyncio.CancelledError:
                # Our caller gave up waiting (a shutdown timeout): stop the worker too.
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                raise
        self._fail_queued()
        if self._gate is not None:
            await self._gate.close()

    async def __aenter__(self) -> Outbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # The worker.

    async def _run(self) -> None:
        try:
            while True:
                picked = await self._next()
                if picked is None:
                    break
                chat, item = picked
                task = asyncio.create_task(self._deliver(chat, item), name="outbox-send")
                self._in_flight.add(task)
                task.add_done_callback(self._sent)
            await self._finish_in_flight()
        except asyncio.CancelledError:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            raise

    async def _finish_in_flight(self) -> None:
        """After close: the sends in flight finish, a request one makes again still
        at the wave's pace."""
        while self._in_flight:
            self._wakeup.clear()
            await self._wait(self._grant_repeats(self._now()))

    async def _moment_again(self) -> None:
        """Wait for a moment on the capped lane for a request a capped send in flight
        makes again (WaveTurn); it goes before new capped messages."""
        if self._worker is None or self._worker.done():
            raise OutboxClosed("the outbox stopped during the send")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._repeats.append(future)
        self._wakeup.set()
        await future

    def _grant_repeats(self, now: float) -> float | None:
        """Give the waiting repeats their moments as far as the capped lane's limits
        let them go now; how long until the next may (None: none waiting)."""
        while self._repeats:
            if self._repeats[0].done():  # its send was cancelled
                self._repeats.popleft()
                continue
            wait = self._lane_wait(True, now)
            if wait > _EPSILON:
                return wait
            self._charge_overall(1, capped=True, now=now)
            self._repeats.popleft().set_result(None)
        return None

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()

    async def _deliver(self, chat: _Chat, item: _Item) -> None:
        def report(index: int) -> None:
            if self.on_sent is not None:
                self.on_sent(item.priority is Priority.INTERACTIVE)
            item.report(index)

        if item.capped and self._rate is not None:
            _WAVE_TURN.set(WaveTurn(self))  # this task's own context: no reset needed
        try:
            await send_tracked(self._sender, item.address, item.messages, report)
        except asyncio.CancelledError:
            if not item.future.done():
                item.future.set_exception(OutboxClosed("the outbox stopped during the send"))
            raise
        except Exception as exc:
            # The caller hears it; a rest of this item still queued is withdrawn.
            if not item.future.done():
                item.future.set_exception(exc)
            else:
                log.warning("send failed after its caller left: %r", exc)
        else:
            if item.last and not item.future.done():
                item.future.set_result(None)
        finally:
            chat.busy = False
            if chat.queue:
                self._schedule(chat)

    async def _next(self) -> tuple[_Chat, _Item] | None:
        """Wait for the best item that may go now; None once closed."""
        while True:
            if self._closed and not (self._drain and self._queued):
                return None
            self._wakeup.clear()
            now = self._now()
            self._unpark(now)
            waits: list[float] = []
            repeat_wait = self._grant_repeats(now)
            if repeat_wait is not None:
                waits.append(repeat_wait)
            if len(self._in_flight) < self._max_in_flight:
                for capped in (False, True):
                    if capped and self._repeats:
                        continue  # sends already on their way take the lane's moments first
                    picked, wait = self._pick(capped, now)
                    if picked is not None:
                        return picked
                    if wait is not None:
                        waits.append(wait)
            if self._parked:
                waits.append(max(0.0, self._parked[0][0] - now))
            await self._wait(min(waits) if waits else None)

    def _unpark(self, now: float) -> None:
        while self._parked and self._parked[0][0] - now <= _EPSILON:
            _, _, key = heapq.heappop(self._parked)
            chat = self._chats.get(key)
            if chat is not None and chat.queue and not chat.busy:
                self._schedule(chat)

    def _pick(self, capped: bool, now: float) -> tuple[tuple[_Chat, _Item] | None, float | None]:
        """The first ready chat of one lane, if its lane's limit lets it go now; else
        how long until that limit would (None: nothing waiting in this lane)."""
        heap = self._ready[capped]
        while heap:
            _, _, key = heap[0]
            chat = self._chats.get(key)
            if chat is None or chat.busy or not chat.queue:
                heapq.heappop(heap)
                continue
            item = chat.queue[0]
            if item.future.done():  # the caller was cancelled: withdraw it
                chat.queue.popleft()
                self._queued -= 1
                heapq.heappop(heap)
                if chat.queue:
                    self._schedule(chat)
                continue
            if item.capped is not capped:
                # The chat's first item changed lanes since it was put here.
                heapq.heappop(heap)
                self._schedule(chat)
                continue
            wait = self._lane_wait(capped, now)
            if wait > _EPSILON:
                return None, wait
            heapq.heappop(heap)
            n = self._allowed(chat, item, now)
            if n < len(item.messages):
                # As much as the limits let go now; the rest stays first in the chat.
                item, chat.queue[0] = item.split(n)
            else:
                chat.queue.popleft()
                self._queued -= 1
            chat.busy = True
            self._charge(chat, item, now)
            return (chat, item), None
        return None, None

    def _allowed(self, chat: _Chat, item: _Item, now: float) -> int:
        """How many of the item's messages may go now (at least one)."""
        n = len(item.messages)
        if chat.bucket is not None:
            n = min(n, max(1, chat.bucket.available(now)))
        if chat.window is not None:
            n = min(n, max(1, chat.window.free(now)))
        if item.capped:
            if self._spacing is not None:
                n = 1  # a wave goes evenly, one message at a time
            if self._overall is not None:
                n = min(n, max(1, self._overall.free(now)))
        elif self._replies is not None:
            n = min(n, max(1, self._replies.available(now)))
        return n

    def _lane_wait(self, capped: bool, now: float) -> float:
        """Until the lane may take one more message."""
        if not capped:
            return 0.0 if self._replies is None else self._replies.wait_time(now)
        waits = [0.0]
        if self._spacing is not None:
            waits.append(self._spacing.wait_time(now))
        if self._overall is not None:
            waits.append(self._overall.wait_time(now))
        if self._platform_paused is not None and self._platform_paused():
            waits.append(_PAUSE_RECHECK)
        if self._gate is not None:
            waits.append(self._gate.wait_time())
        return max(waits)

    def _requests(self, item: _Item) -> int:
        cost = len(item.messages)
        if self.weigh is None:
            return cost
        try:
            return max(1, self.weigh(item.address, item.messages))
        except Exception:
            # A miscount must not stop the worker: one request a message, as before.
            log.exception("could not weigh an item; counted one request a message")
            return cost

    def _charge(self, chat: _Chat, item: _Item, now: float) -> None:
        cost = len(item.messages)
        if chat.bucket is not None:
            chat.bucket.take(cost, now)
        if chat.window is not None:
            chat.window.take(cost, now)
        requests = self._requests(item)
        if not item.capped and self._replies is not None:
            self._replies.take(requests, now)
        self._charge_overall(requests, capped=item.capped, now=now)

    def _charge_overall(self, requests: int, *, capped: bool, now: float) -> None:
        if capped and self._spacing is not None:
            self._spacing.take(requests, now)
        if self._overall is not None:
            # Replies count too, so a wave slows down while people are answered.
            self._overall.take(requests, now)
        if self._gate is not None:
            self._gate.charged(requests, capped=capped)

    async def _wait(self, delay: float | None) -> None:
        """Sleep for `delay` (forever if None), or until something new arrives."""
        if delay is None:
            await self._wakeup.wait()
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _fail_queued(self) -> None:
        self._ready = {False: [], True: []}
        self._parked = []
        while self._repeats:
            repeat = self._repeats.popleft()
            if not repeat.done():
                repeat.set_exception(OutboxClosed("the outbox stopped during the send"))
        for chat in self._chats.values():
            while chat.queue:
                item = chat.queue.popleft()
                if not item.future.done():
                    item.future.set_exception(
                        OutboxClosed("the outbox closed before this was sent")
                    )
        self._queued = 0

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        # Should the worker ever die of a bug, nobody may wait forever on a send.
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox worker crashed", exc_info=task.exception())
        self._closed = True
        self._fail_queued()


def _chat_key(address: Address) -> ChatKey:
    return (address.platform, address.chat_id, address.user_id if address.is_private else "")


def _window(rate: float, per: float) -> _Window:
    """At most `rate` per `per` seconds as a sliding window (a rate under one per
    period becomes one per a longer period), measured a little long."""
    limit = max(1, int(rate))
    return _Window(limit, limit / rate * per * _WINDOW_MARGIN)


def _idle(chat: _Chat, now: float) -> bool:
    if chat.busy or chat.queue:
        return False
    if chat.bucket is not None and chat.bucket.wait_time(now, chat.bucket.capacity) > 0:
        return False
    return chat.window is None or chat.window.wait_time(now, chat.window.limit) == 0

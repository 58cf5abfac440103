"""The outbound send queue: one worker per platform, rate-limited, interactive first.

Every adapter's messages go through an `Outbox` in front of its real `Sender`:

- `outbox.interactive.send(...)` for replies to something a person just did, and
- `outbox.scheduled.send(...)` for the dispatcher's check-ins (a wave of due follow-ups).

Both are `dialogs.followups.dispatcher.Sender`s. A call enqueues one item and waits until that
item was delivered; if the platform refused it, the caller gets the sender's exception
(the dispatcher relies on this to mark a follow-up failed or a person unreachable),
and the worker carries on with the next item.

One worker task takes the best item each time: lowest `Priority` first, oldest first
within a priority (a heap of `(priority, sequence)`). So a reply to a person waits at
most for the item already in flight, never for a wave of scheduled check-ins.

Each item is one `sender.send(address, messages)` call and costs `len(messages)`
tokens from a token bucket that refills at `rate_per_second` up to `burst` tokens;
`None` means unlimited. An item may start as soon as one token is available and is
then charged its full cost (the bucket may go into debt), so multi-message items keep
the long-run rate without being starved by single-message ones.

With `per_chat_per_second`, each chat, keyed by `(platform, chat_id)`, also has its
own bucket of one token. A chat that is not ready never blocks other chats: the
worker takes the best item whose chat is ready, and only when no chat is ready does it
wait, until the earliest chat is ready or something new arrives.

Platform defaults (the constants below, and `PLATFORM_LIMITS` / `Outbox.for_platform`):

- Telegram: about 30 messages per second overall, and about 1 message per second per
  chat (bursts above that in one chat get HTTP 429 with `retry_after`); in a group,
  about 20 messages a minute, so group chats (`Address.is_private` False) are spaced
  at 20/60 per second.
- Discord: about 50 requests per second overall (the global limit). Per-channel
  limits are announced in response headers and handled by the client library, so no
  per-chat limit is set here.

Time comes from the injected `now` and `sleep` (monotonic seconds), so tests can run
on a fake clock and never sleep for real.

Shutdown: `close()` stops taking new items, lets the send in flight finish and fails
everything still queued with `OutboxClosed`; `close(drain=True)` sends the queue first.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import TracebackType

from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import NotSent, Sender

log = logging.getLogger(__name__)

TELEGRAM_MESSAGES_PER_SECOND = 30.0
TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND = 1.0
TELEGRAM_MESSAGES_PER_GROUP_PER_SECOND = 20.0 / 60.0
DISCORD_REQUESTS_PER_SECOND = 50.0

# Float slack when comparing a ready time with a clock that was advanced to it.
_EPSILON = 1e-9
# At most this much of a token is credited for a timer that fired late (see _TokenBucket).
_LATE_CREDIT = 0.25

ChatKey = tuple[str, str]


class Priority(IntEnum):
    INTERACTIVE = 0
    SCHEDULED = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """How fast one platform accepts messages; `None` means no limit."""

    rate_per_second: float | None
    burst: int = 1
    per_chat_per_second: float | None = None
    # For group chats, when lower than `per_chat_per_second` (needs that set too).
    per_group_per_second: float | None = None


TELEGRAM_LIMITS = Limits(
    TELEGRAM_MESSAGES_PER_SECOND,
    per_chat_per_second=TELEGRAM_MESSAGES_PER_CHAT_PER_SECOND,
    per_group_per_second=TELEGRAM_MESSAGES_PER_GROUP_PER_SECOND,
)
DISCORD_LIMITS = Limits(DISCORD_REQUESTS_PER_SECOND)
PLATFORM_LIMITS: dict[str, Limits] = {"telegram": TELEGRAM_LIMITS, "discord": DISCORD_LIMITS}


class OutboxClosed(NotSent):
    """The outbox was closed before this item could be sent; nothing was sent."""


@dataclass(slots=True)
class _Item:
    address: Address
    messages: Sequence[Outbound]
    future: asyncio.Future[None]

    @property
    def chat(self) -> ChatKey:
        return (self.address.platform, self.address.chat_id)

    @property
    def group(self) -> bool:
        return not self.address.is_private

    @property
    def cost(self) -> float:
        return float(len(self.messages))


# (priority, sequence, item): the sequence is unique, so items are never compared.
_Entry = tuple[int, int, _Item]


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

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 when it is now)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        if missing <= _EPSILON:
            return 0.0
        self.due_at = now + missing / self.rate
        return missing / self.rate

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= cost
        self.due_at = None


@dataclass(slots=True)
class _ChatLimiter:
    """One token per chat: the time each recently used chat may send again.

    Chats not ready yet are parked with their items, so the main heap only holds items
    that may go; a parked chat returns its items to the heap when its time comes.
    """

    rate: float
    # Group chats, where the platform allows less (None: the same as any chat).
    group_rate: float | None = None
    ready_at: dict[ChatKey, float] = field(default_factory=dict)
    parked: dict[ChatKey, list[_Entry]] = field(default_factory=dict)
    park_times: list[tuple[float, ChatKey]] = field(default_factory=list)

    def is_ready(self, chat: ChatKey, now: float) -> bool:
        at = self.ready_at.get(chat)
        return at is None or at - now <= _EPSILON

    def park(self, entry: _Entry) -> None:
        chat = entry[2].chat
        waiting = self.parked.get(chat)
        if waiting is None:
            self.parked[chat] = [entry]
            heapq.heappush(self.park_times, (self.ready_at[chat], chat))
        else:
            heapq.heappush(waiting, entry)

    def unpark(self, now: float, heap: list[_Entry]) -> None:
        while self.park_times and self.park_times[0][0] - now <= _EPSILON:
            _, chat = heapq.heappop(self.park_times)
            for entry in self.parked.pop(chat):
                heapq.heappush(heap, entry)

    def earliest(self, now: float) -> float | None:
        return max(0.0, self.park_times[0][0] - now) if self.park_times else None

    def take(self, chat: ChatKey, cost: float, now: float, group: bool = False) -> None:
        rate = self.group_rate if group and self.group_rate is not None else self.rate
        self.ready_at[chat] = now + cost / rate
        if len(self.ready_at) > 1024:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # Chats already ready again need no entry; keeps memory bounded by recent chats.
        idle = [chat for chat, at in self.ready_at.items() if at <= now]
        for chat in idle:
            del self.ready_at[chat]

    def drain(self) -> list[_Entry]:
        entries = [entry for waiting in self.parked.values() for entry in waiting]
        self.parked.clear()
        self.park_times.clear()
        return entries


class _Lane:
    """A `Sender` that puts everything it is given into the outbox at one priority."""

    def __init__(self, outbox: Outbox, priority: Priority) -> None:
        self._outbox = outbox
        self.priority = priority

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        await self._outbox.send(address, messages, self.priority)


class Outbox:
    def __init__(
        self,
        sender: Sender,
        *,
        rate_per_second: float | None,
        burst: int = 1,
        per_chat_per_second: float | None = None,
        per_group_per_second: float | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive, or None for no limit")
        if per_chat_per_second is not None and per_chat_per_second <= 0:
            raise ValueError("per_chat_per_second must be positive, or None for no limit")
        if per_group_per_second is not None and per_group_per_second <= 0:
            raise ValueError("per_group_per_second must be positive, or None for no limit")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._sender = sender
        self._now = now
        self._sleep = sleep
        self._bucket = (
            None
            if rate_per_second is None
            else _TokenBucket(rate_per_second, float(burst), float(burst), now())
        )
        self._chats = (
            None
            if per_chat_per_second is None
            else _ChatLimiter(per_chat_per_second, per_group_per_second)
        )
        self._heap: list[_Entry] = []
        self._sequence = itertools.count()
        self._queued = 0  # items in the heap or parked, not yet taken by the worker
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._drain = False
        self.interactive: Sender = _Lane(self, Priority.INTERACTIVE)
        self.scheduled: Sender = _Lane(self, Priority.SCHEDULED)

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
        return cls(
            sender,
            rate_per_second=limits.rate_per_second,
            burst=limits.burst,
            per_chat_per_second=limits.per_chat_per_second,
            per_group_per_second=limits.per_group_per_second,
            now=now,
            sleep=sleep,
        )

    @property
    def pending(self) -> int:
        """Items waiting to be sent (not counting the one in flight)."""
        return self._queued

    async def send(
        self, address: Address, messages: Sequence[Outbound], priority: Priority
    ) -> None:
        """Queue one `sender.send` call at `priority` and wait until it was made.

        Raises what the sender raised, or `OutboxClosed` if it was never made.
        Cancelling the caller withdraws the item if it has not been taken yet.
        """
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry: _Entry = (int(priority), next(self._sequence), _Item(address, messages, future))
        if self._chats is not None and entry[2].chat in self._chats.parked:
            self._chats.park(entry)
        else:
            heapq.heappush(self._heap, entry)
        self._queued += 1
        self._wakeup.set()
        await future

    async def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("the outbox was already started")
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        self._worker = asyncio.create_task(self._run(), name="outbox")
        self._worker.add_done_callback(self._worker_done)

    async def close(self, *, drain: bool = False) -> None:
        """Stop taking items. The send in flight finishes; with `drain`, everything
        queued is sent first, otherwise it fails with `OutboxClosed`."""
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
        while True:
            item = await self._next()
            if item is None:
                return
            await self._deliver(item)

    async def _deliver(self, item: _Item) -> None:
        now = self._now()
        if self._bucket is not None:
            self._bucket.take(item.cost, now)
        if self._chats is not None:
            self._chats.take(item.chat, item.cost, now, item.group)
        try:
            await self._sender.send(item.address, item.messages)
        except asyncio.CancelledError:
            if not item.future.done():
                item.future.set_exception(OutboxClosed("the outbox stopped during the send"))
            raise
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            else:
                log.warning("send failed after its caller left: %r", exc)
        else:
            if not item.future.done():
                item.future.set_result(None)

    async def _next(self) -> _Item | None:
        """Wait for the best item that may be sent now; None once closed."""
        while True:
            if self._closed and not (self._drain and self._queued):
                return None
            self._wakeup.clear()
            if not self._queued:
                await self._wakeup.wait()
                continue
            now = self._now()
            if self._bucket is not None:
                refill = self._bucket.wait_time(now)
                if refill > 0:
                    # Nothing can go sooner; waking early only lets close() act at once.
                    await self._wait(refill)
                    continue
            item, chat_wait = self._pick(now)
            if item is not None:
                return item
            await self._wait(chat_wait)

    def _pick(self, now: float) -> tuple[_Item | None, float | None]:
        """The best item whose chat is ready, else how long until a chat is ready."""
        chats = self._chats
        if chats is not None:
            chats.unpark(now, self._heap)
        while self._heap:
            entry = heapq.heappop(self._heap)
            item = entry[2]
            if item.future.done():  # the caller was cancelled: withdraw it
                self._queued -= 1
                continue
            if chats is not None and not chats.is_ready(item.chat, now):
                chats.park(entry)
                continue
            self._queued -= 1
            return item, None
        return None, None if chats is None else chats.earliest(now)

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
        entries = self._heap
        self._heap = []
        if self._chats is not None:
            entries.extend(self._chats.drain())
        self._queued = 0
        for _, _, item in entries:
            if not item.future.done():
                item.future.set_exception(OutboxClosed("the outbox closed before this was sent"))

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        # Should the worker ever die of a bug, nobody may wait forever on a send.
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox worker crashed", exc_info=task.exception())
        self._closed = True
        self._fail_queued()

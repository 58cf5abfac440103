"""One queue per person, in front of the engine: one person cannot slow everyone.

Each adapter hands every event to `PersonQueue.run(person, work, urgent=...)`:

- **One at a time per person, in arrival order**, everyone else in parallel: two quick
  taps of one person never race, and their replies never cross.
- **The per-person turn comes before any shared slot.** The work takes a shared slot
  (`slots`, or the caller's own semaphore inside `work`) only once it is that
  person's turn, so a person with 300 events waiting holds one slot, not 256.
- **A burst is capped.** More than `burst` events from one person within `window`
  seconds are not processed one by one: the extra ones are dropped, and the caller is
  told to send one kind notice (`Admission.DROPPED_NOTICE`, once per window) and to
  stay silent for the rest (`Admission.DROPPED`). At most `burst` of a person's events
  wait at any time.
- **Safety first, even within one person's queue.** An urgent event (a crisis or
  danger signal, /sos: see `is_urgent`) is never dropped by the burst cap and goes
  ahead of that person's waiting events, right after the one running. Only when
  `max_urgent` urgent events of theirs are already waiting (each of which will answer
  with the safety flow) is another one coalesced (`Admission.COALESCED`).

The queues order work; they are not conversation state (that is in the store), so a
restart loses nothing. Lines of people with nothing waiting and no recent events are
pruned, so memory follows the number of active people. Time comes from `now`
(monotonic seconds), so tests never sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, nullcontext
from enum import Enum
from typing import Any, Generic, TypeVar

from dialogs.events import Command, Inbound
from dialogs.matching import clean_input
from dialogs.safety.screen import SafetyScreen

K = TypeVar("K", bound=Hashable)

DEFAULT_BURST = 20
DEFAULT_WINDOW = 10.0
DEFAULT_MAX_URGENT = 3
# Commands that are answered first, whoever is flooding.
URGENT_COMMANDS = frozenset({"sos"})
_PRUNE_EVERY = 256


class Admission(Enum):
    ACCEPTED = "accepted"
    # Over the burst cap: dropped; the first of a window should get one notice.
    DROPPED_NOTICE = "dropped_notice"
    DROPPED = "dropped"
    # Urgent, but enough urgent events of this person are waiting already.
    COALESCED = "coalesced"

    @property
    def ran(self) -> bool:
        return self is Admission.ACCEPTED


class _Line:
    __slots__ = ("arrivals", "busy", "normal", "noticed_at", "urgent")

    def __init__(self) -> None:
        self.busy = False
        self.normal: deque[asyncio.Future[None]] = deque()
        self.urgent: deque[asyncio.Future[None]] = deque()
        self.arrivals: deque[float] = deque()
        self.noticed_at: float | None = None

    @property
    def waiting(self) -> int:
        return len(self.normal) + len(self.urgent)


class PersonQueue(Generic[K]):
    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        window: float = DEFAULT_WINDOW,
        max_urgent: int = DEFAULT_MAX_URGENT,
        slots: int | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or window <= 0 or max_urgent < 1:
            raise ValueError("burst, window and max_urgent must be positive")
        self._burst = burst
        self._window = window
        self._max_urgent = max_urgent
        self._now = now
        self._slots: asyncio.Semaphore | None = None if slots is None else asyncio.Semaphore(slots)
        self._lines: dict[K, _Line] = {}
        self._calls = 0
        self.dropped = 0

    def __len__(self) -> int:
        """People with a line (something running, waiting, or recent)."""
        return len(self._lines)

    def waiting(self, key: K) -> int:
        line = self._lines.get(key)
        return 0 if line is None else line.waiting

    async def run(
        self, key: K, work: Callable[[], Awaitable[Any]], *, urgent: bool = False
    ) -> Admission:
        """Run `work` when it is this person's turn, unless the burst cap drops it."""
        admission = self.admit(key, urgent=urgent)
        if admission.ran:
            await self.run_admitted(key, work, urgent=urgent)
        return admission

    def admit(self, key: K, *, urgent: bool = False) -> Admission:
        """Decide now whether an event is taken (counting it) or dropped, so a caller
        can answer a dropped one at once, or not at all. Every ACCEPTED admission must
        be followed by `run_admitted` for the same key."""
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune()
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        admission = self._admit(line, urgent)
        if not admission.ran:
            self.dropped += 1
        return admission

    async def run_admitted(
        self, key: K, work: Callable[[], Awaitable[Any]], *, urgent: bool = False
    ) -> None:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        await self._turn(line, urgent)
        try:
            slot: AbstractAsyncContextManager[Any] = self._slots or nullcontext()
            async with slot:
                await work()
        finally:
            self._hand_on(key, line)

    def _admit(self, line: _Line, urgent: bool) -> Admission:
        if urgent:
            if len(line.urgent) >= self._max_urgent:
                return Admission.COALESCED
            return Admission.ACCEPTED
        now = self._now()
        while line.arrivals and line.arrivals[0] <= now - self._window:
            line.arrivals.popleft()
        if len(line.arrivals) >= self._burst or len(line.normal) >= self._burst:
            if line.noticed_at is None or line.noticed_at <= now - self._window:
                line.noticed_at = now
                return Admission.DROPPED_NOTICE
            return Admission.DROPPED
        line.arrivals.append(now)
        return Admission.ACCEPTED

    async def _turn(self, line: _Line, urgent: bool) -> None:
        if not line.busy and not line.waiting:
            line.busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (line.urgent if urgent else line.normal).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The turn was handed to us just as we were cancelled: pass it on.
                self._hand_on_line(line)
            else:
                with_waiter = line.urgent if waiter in line.urgent else line.normal
                if waiter in with_waiter:
                    with_waiter.remove(waiter)
            raise

    def _hand_on(self, key: K, line: _Line) -> None:
        self._hand_on_line(line)
        idle = not line.busy and not line.waiting and not line.arrivals
        if idle and self._lines.get(key) is line:
            del self._lines[key]

    def _hand_on_line(self, line: _Line) -> None:
        """Give the turn to the next waiter, urgent ones first; else free the line."""
        for waiters in (line.urgent, line.normal):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        line.busy = False

    def _prune(self) -> None:
        cutoff = self._now() - self._window
        for key, line in list(self._lines.items()):
            if line.busy or line.waiting:
                continue
            if not line.arrivals or line.arrivals[-1] <= cutoff:
                del self._lines[key]


def is_urgent(inbound: Inbound, screen: SafetyScreen | None) -> bool:
    """A crisis or danger signal in what the person typed (command arguments too), or
    /sos (typed, or a button that carries it). The engine screens again, first, on
    every path; this only decides who goes ahead in the queue."""
    return urgent_event(screen, text=inbound.text, command=inbound.command, choice=inbound.choice)


def urgent_event(
    screen: SafetyScreen | None,
    *,
    text: str | None = None,
    command: Command | None = None,
    choice: str | None = None,
) -> bool:
    """`is_urgent` for an event not yet made into an `Inbound`."""
    said = ""
    if command is not None:
        if command.name.casefold() in URGENT_COMMANDS:
            return True
        said = " ".join(command.args)
    elif choice is not None:
        words = choice.split()
        return choice.startswith("/") and bool(words) and words[0][1:].casefold() in URGENT_COMMANDS
    elif text is not None:
        said = clean_input(text)
    return bool(said) and screen is not None and screen.screen(said) is not None

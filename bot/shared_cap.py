"""The outbox's overall cap shared with other workers (several processes on one
PostgreSQL database): a gate in front of the capped lane.

The in-process window (bot/outbox.py) holds one process to the platform's cap; with
several workers each would send that much. So before a capped message goes, the
gate takes a moment for it on the platform's shared line (`SharedBudget`,
storage/send_budget.py) and opens when that moment comes. It fetches one moment at a
time, and only while a capped message waits, so no worker holds moments it does not
use. Replies do not wait for the gate (they have their own budget) but are charged to
the line, so waves everywhere slow while people are answered, as in one process.

If the database cannot be reached, the gate stays shut and tries again every second:
a wave waits rather than break the platform's cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0
# How late (in shares of a message) a moment may still be used.
_LATENESS_SHARE = 0.5
# What the outbox is told to wait while a moment is being fetched: it is woken when
# the gate opens, so this only bounds a missed wake-up.
_FETCHING_WAIT = 1.0


class SharedBudget(Protocol):
    async def reserve(self, seconds: float) -> float:
        """Take the next moment for `seconds` of the line; how long until it."""
        ...


class SharedGate:
    """`seconds_per_message`: the line's spacing (the cap's second, a little long,
    over the cap). `wake` tells the outbox the gate opened."""

    def __init__(
        self,
        budget: SharedBudget,
        seconds_per_message: float,
        wake: Callable[[], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._budget = budget
        self._seconds = seconds_per_message
        self._wake = wake
        self._sleep = sleep
        self._now = now
        # Open from the moment taken until a little after it (see _fetch); None: shut.
        self._open_until: float | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._charging: set[asyncio.Task[None]] = set()
        # Moments left unused because the database answered too slowly to place them.
        self.uncertain = 0

    def wait_time(self) -> float:
        """0 when a capped message may go now; otherwise fetch a moment (if not
        already) and say how long to wait at most before asking again."""
        if self._open_until is not None:
            if self._now() <= self._open_until:
                return 0.0
            # Too late for the moment taken: sent now, it would crowd the moments the
            # other workers took after it. It is left unused (the line loses one
            # message's share), and a new one is taken.
            self._open_until = None
        if self._fetching is None:
            self._fetching = asyncio.create_task(self._fetch(), name="shared-cap")
        return _FETCHING_WAIT

    def charged(self, messages: int, *, capped: bool) -> None:
        """`messages` (requests) went: a capped one used the open gate, and whatever
        it cost beyond one request (a Discord DM whose channel had to be opened) is
        charged to the line afterwards, as replies are, without waiting."""
        if capped:
            self._open_until = None
            messages -= 1
            if messages <= 0:
                return
        task = asyncio.create_task(self._charge(messages), name="shared-cap-reply")
        self._charging.add(task)
        task.add_done_callback(self._charging.discard)

    async def close(self) -> None:
        """Stop fetching; the replies' charges (one short statement each) are written."""
        fetching = self._fetching
        if fetching is not None:
            fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetching
        await asyncio.gather(*self._charging, return_exceptions=True)

    async def _fetch(self) -> None:
        try:
            while True:
                asked = self._now()
                try:
                    wait = await self._budget.reserve(self._seconds)
                except Exception as exc:
                    log.warning("shared send budget unavailable: %s", type(exc).__name__)
                    await self._sleep(_RETRY_SECONDS)
                    continue
                answered = self._now()
                # The moment is `wait` after the database took it, somewhere between
                # asking and the answer. An answer slower than a share leaves it
                # that unsure: used, the message could go so late that it crowds the
                # moments other workers took after it (a slow commit answered every
                # worker late at once). It is left unused and a new one taken.
                if answered - asked <= self._seconds:
                    break
                self.uncertain += 1
            # Waited for from the answer: never sooner than the moment, and, with
            # the half share allowed below, at most a share and a half after it.
            moment = answered + wait
            if wait > 0:
                await self._sleep(wait)
            self._open_until = moment + self._seconds * _LATENESS_SHARE
            self._wake()
        finally:
            self._fetching = None

    async def _charge(self, messages: int) -> None:
        try:
            await self._budget.reserve(self._seconds * messages)
        except Exception as exc:
            log.warning("reply not charged to the shared send budget: %s", type(exc).__name__)

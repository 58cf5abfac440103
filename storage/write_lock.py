"""SQLite's one writer, queued inside the process, people first.

SQLite lets one transaction write at a time. Queueing this process's transactions on
an asyncio lock is far cheaper than SQLite's sleeping busy handler (see SqlStore). This
lock is first come, first served, with one exception: a transaction for something a
person just did goes before waiting background work (a wave's batch of follow-ups,
outbox marks, sweeps, purges), and background work can ask whether anyone is waiting
(`urgent_waiting`), so a long batch commits early and lets them in.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

URGENT, BACKGROUND = 0, 1


class WriteLock:
    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._urgent = 0

    @property
    def urgent_waiting(self) -> bool:
        """A person's transaction is waiting for the lock."""
        return self._urgent > 0

    @asynccontextmanager
    async def hold(self, *, background: bool = False) -> AsyncIterator[None]:
        await self._acquire(BACKGROUND if background else URGENT)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), granted))
        if priority == URGENT:
            self._urgent += 1
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # handed over just as the waiter gave up: pass it on
            raise
        finally:
            if priority == URGENT:
                self._urgent -= 1

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)  # the lock passes straight to the next one
                return
        self._held = False

"""Gateway IDENTIFYs spaced across every worker, lowest shard first.

Discord lets a bot open one new gateway session (IDENTIFY) per 5 seconds across all its
shards (`max_concurrency` 1 in /gateway/bot, what most bots have); one sent sooner is
refused with an invalid session, and discord.py identifies again 5 s later. When a
worker dies holding several shards, a survivor takes them all at once: without
spacing, every shard but one would be refused and wait, and it might be shard 0, which
carries every DM.

discord.py asks `Client.before_identify_hook` before each IDENTIFY (not before a
RESUME, which costs nothing); its default only sleeps 5 s before a reconnect, per
client, and its `AutoShardedClient` spaces shards within one process only. Here the
hook waits for a turn (`IdentifyGate.wait_turn`):

- On PostgreSQL a turn is the lease `discord:identify` (`storage.leases`), taken
  under a new holder name each time and never released, for `spacing` seconds: nobody
  takes the next turn before it has run out, on the database's clock, whichever
  worker asks. A free gate costs one short transaction per IDENTIFY; a waiting shard
  asks again every `poll` seconds.
- On SQLite (one process) a turn is the same spacing on the monotonic clock.
- Within a worker, a shard that is connecting (`expect`) keeps every higher shard
  from taking a turn before it, so shard 0 goes first when a worker takes several.
  Across workers, whoever asks first after the last turn goes.

If the database cannot be asked, the shard sleeps `spacing` and identifies, as
discord.py would: a refusal costs a retry, a gate that never opens would cost the
shard. Several shards per turn (a larger `max_concurrency`) is not used: spacing
them all is slower than needed for such a bot, never refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from storage import SqlStore
from storage.leases import Leases

log = logging.getLogger(__name__)

IDENTIFY_LEASE = "discord:identify"
# Discord's window is 5 s; the rest absorbs the difference between two workers'
# delays from taking the turn to their IDENTIFY reaching Discord.
SPACING = 5.5
POLL = 0.25


class Turns(Protocol):
    async def take(self) -> bool:
        """True when the caller may IDENTIFY now (and the next turn is `spacing`
        away); False while the last one is too recent."""
        ...


class StoredTurns:
    """PostgreSQL: a turn is the `discord:identify` lease, for every worker."""

    def __init__(self, leases: Leases, holder: str, spacing: float) -> None:
        self._leases = leases
        self._holder = holder
        self._ttl = timedelta(seconds=spacing)
        self._numbers = itertools.count(1)

    async def take(self) -> bool:
        # A new name each time: the last holder asking again must not renew its turn.
        name = f"{self._holder}:{next(self._numbers)}"
        return await self._leases.acquire(IDENTIFY_LEASE, name, self._ttl) is not None


class LocalTurns:
    """SQLite: one process, so its own clock spaces the turns."""

    def __init__(self, spacing: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._spacing = spacing
        self._clock = clock
        self._last: float | None = None

    async def take(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self._spacing:
            return False
        self._last = now
        return True


class IdentifyGate:
    def __init__(
        self,
        turns: Turns,
        *,
        spacing: float = SPACING,
        poll: float = POLL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._turns = turns
        self._spacing = spacing
        self._poll = poll
        self._sleep = sleep
        # Shards of this worker connecting now, that will ask for a turn.
        self._connecting: set[int] = set()

    def expect(self, shard: int) -> None:
        """`shard` is connecting: no higher shard here takes a turn before it."""
        self._connecting.add(shard)

    def forget(self, shard: int) -> None:
        """`shard` identified, or stopped connecting."""
        self._connecting.discard(shard)

    async def wait_turn(self, shard: int) -> None:
        """Return when `shard` may send its IDENTIFY."""
        try:
            while True:
                if not any(other < shard for other in self._connecting):
                    try:
                        if await self._turns.take():
                            return
                    except Exception as exc:
                        log.warning(
                            "could not ask for an IDENTIFY turn (%s); identifying in %g s",
                            type(exc).__name__,
                            self._spacing,
                        )
                        await self._sleep(self._spacing)
                        return
                await self._sleep(self._poll)
        finally:
            self.forget(shard)


def identify_gate(store: SqlStore, holder: str, spacing: float = SPACING) -> IdentifyGate:
    if store.engine.dialect.name == "sqlite":
        return IdentifyGate(LocalTurns(spacing), spacing=spacing)
    return IdentifyGate(StoredTurns(Leases(store), holder, spacing), spacing=spacing)

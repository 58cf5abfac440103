"""One gateway connection per shard, held under a lease (issue 19).

Discord sends a shard's events (and every DM, which all go to shard 0) to each
connection identified for it, so two workers connected at once would both handle
them. The worker that holds the shard's lease (`storage.leases`) connects; the others
send through the REST API only (follow-ups, outbox rows, posts) and keep asking for
the lease.

The holder renews every `renew_every` seconds. It treats the lease as its own until
the instant it started its last successful renewal plus the TTL, less a margin, on its
monotonic clock: the database computed the expiry from a later instant, so the holder
is disconnected before anyone else may take over (storage.leases). Any renewal that
fails, errs or is not answered by then disconnects it at once: without the database
it could not handle an event anyway, and it asks for the lease again like everyone
else. A worker killed outright is replaced once its lease expires: within the TTL
plus one `retry_every`, plus the time to connect.

On SQLite there is one process, so the lease is always held (`SoleLease`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from bot.discord.identify import SPACING as IDENTIFY_SPACING
from storage import SqlStore
from storage.leases import Leases

log = logging.getLogger(__name__)


def lease_name(shard_id: int = 0) -> str:
    return f"discord:gateway:{shard_id}"


def holder_name() -> str:
    """Who holds a lease, as an operator reading the table would want it: the host
    and process, and a random part that tells a restarted process from its past."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Timing:
    """Seconds. Worst-case takeover after a holder dies: `ttl` + `retry_every`, and
    `identify_every` more for each shard identified before it (bot.discord.identify)."""

    # 7 s, not 10: a worker holding two shards dies, and the second is back one
    # IDENTIFY turn (5.5 s) after the first, inside the 15 s the issue asks for.
    ttl: float = 7.0
    renew_every: float = 2.0
    retry_every: float = 1.0
    # Held back from the TTL: time to stop reading the socket and close it.
    margin: float = 2.0
    # After the gateway itself failed (refused, or never ready): wait this long
    # before this worker asks again, so another one gets its turn.
    failure_backoff: float = 30.0
    # Between two IDENTIFYs of this bot, across every worker (bot.discord.identify).
    identify_every: float = IDENTIFY_SPACING

    def __post_init__(self) -> None:
        if not 0 < self.renew_every < self.ttl - self.margin or self.margin <= 0:
            raise ValueError(f"renew_every must be between 0 and ttl - margin: {self}")

    def deadline(self, renewal_started: float) -> float:
        """Until when a holder may count the lease as its own, on its monotonic
        clock, after a renewal (or acquisition) that started at `renewal_started`."""
        return renewal_started + self.ttl - self.margin


class LeaseHolder(Protocol):
    """One lease, seen by one would-be holder."""

    # Other workers may hold it (False: this process is the only one there is).
    shared: bool

    async def acquire(self) -> bool: ...

    async def renew(self) -> bool: ...

    async def release(self) -> None: ...


class Gateway(Protocol):
    async def open(self) -> None:
        """Connect; return once ready, raise if it cannot be."""
        ...

    def running(self) -> bool: ...

    async def close(self) -> None:
        """Stop handling events at once, then disconnect."""
        ...


class SoleLease:
    """SQLite: one process, so the lease is always this worker's."""

    shared = False

    async def acquire(self) -> bool:
        return True

    async def renew(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class StoredLease:
    """A row of `leases` (storage.leases), for PostgreSQL."""

    shared = True

    def __init__(self, leases: Leases, name: str, holder: str, ttl: float) -> None:
        self._leases = leases
        self.name = name
        self.holder = holder
        self._ttl = timedelta(seconds=ttl)
        self.token: int | None = None

    async def acquire(self) -> bool:
        lease = await self._leases.acquire(self.name, self.holder, self._ttl)
        if lease is not None and lease.token != self.token:
            log.info("took the lease %s (token %d) as %s", self.name, lease.token, self.holder)
            self.token = lease.token
        return lease is not None

    async def renew(self) -> bool:
        return await self._leases.renew(self.name, self.holder, self._ttl) is not None

    async def release(self) -> None:
        if await self._leases.release(self.name, self.holder):
            log.info("released the lease %s", self.name)
        self.token = None


def gateway_lease(store: SqlStore, timing: Timing, shard_id: int = 0) -> LeaseHolder:
    if store.engine.dialect.name == "sqlite":
        return SoleLease()
    return StoredLease(Leases(store), lease_name(shard_id), holder_name(), timing.ttl)


class _Ended(enum.Enum):
    LOST = "lost"  # another worker holds it, or it may: ask again soon
    FAILED = "failed"  # the gateway itself failed: back off


class GatewayKeeper:
    """Opens the gateway while the lease is held, and only then."""

    def __init__(
        self,
        lease: LeaseHolder,
        gateway: Gateway,
        timing: Timing | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lease = lease
        self._gateway = gateway
        self._timing = timing or Timing()
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[bool] | None = None
        self._held = False
        # Until when (on `clock`) the open gateway is this worker's; None when shut.
        self._deadline: float | None = None
        # Set by `stop`. Cancelling alone is not enough on Python 3.11: a
        # `wait_for` whose inner call finishes just as the task is cancelled
        # swallows the cancellation.
        self._stopping = asyncio.Event()
        self.holding = False  # the gateway is open under the lease (for health checks)

    def in_tenure(self) -> bool:
        """May an event from the gateway be handled now? Only before the deadline of
        the last renewal: a worker whose event loop was blocked or frozen past it
        may find events in its socket before the keeper has woken up to close it,
        and by then another worker may hold the gateway. Always, when no other
        worker can exist (SQLite)."""
        if not self._lease.shared:
            return True
        return self._deadline is not None and self._clock() < self._deadline

    async def start(self) -> bool:
        """Keep the lease in the background from now on; wait for the first attempt.
        True once this worker holds the lease and the gateway is ready; False when
        another worker holds it (this one stands by). Raises what the first
        attempt raised (the lease is released by then)."""
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="discord-gateway-lease")
        return await self._first

    async def stop(self) -> None:
        """Close the gateway and release the lease."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _settle(self, outcome: bool | BaseException) -> None:
        first = self._first
        if first is None or first.done():
            return
        if isinstance(outcome, asyncio.CancelledError):
            first.cancel()
        elif isinstance(outcome, BaseException):
            first.set_exception(outcome)
        else:
            first.set_result(outcome)

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                started = self._clock()
                try:
                    # Bounded: an answer that comes later than this is no use.
                    self._held = await asyncio.wait_for(
                        self._lease.acquire(), timeout=self._timing.ttl - self._timing.margin
                    )
                except Exception as exc:
                    if self._first is not None and not self._first.done():
                        raise
                    log.warning("could not ask for the gateway lease: %s", type(exc).__name__)
                    self._held = False
                if not self._held:
                    self._settle(False)
                    await self._pause(self._timing.retry_every)
                    continue
                ended = await self._hold(started)
                if ended is _Ended.FAILED:
                    await self._release()
                    await self._pause(self._timing.failure_backoff)
                else:
                    await self._pause(self._timing.retry_every)
        except BaseException as exc:
            self._settle(exc)
            raise
        finally:
            await self._release()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _hold(self, renewed_at: float) -> _Ended:
        """With the lease just taken: open the gateway and renew until the lease is
        lost or the gateway fails; the gateway is closed on return."""
        timing = self._timing
        deadline = self._deadline = timing.deadline(renewed_at)
        next_renewal = renewed_at + timing.renew_every
        opening: asyncio.Task[None] | None = asyncio.create_task(
            self._gateway.open(), name="discord-gateway-open"
        )
        try:
            while not self._stopping.is_set():
                wake = max(0.0, min(next_renewal, deadline) - self._clock())
                if opening is not None:
                    await asyncio.wait({opening}, timeout=wake)
                    if opening.done():
                        failure = opening.exception()
                        opening = None
                        if failure is not None:
                            log.error("the Discord gateway did not open: %s", failure)
                            self._settle(failure)
                            return _Ended.FAILED
                        self.holding = True
                        self._settle(True)
                        continue
                else:
                    if not self._gateway.running():
                        log.error("the Discord gateway ended; giving the lease up")
                        return _Ended.FAILED
                    await self._pause(wake)
                started = self._clock()
                if started < next_renewal and started < deadline:
                    continue
                if started >= deadline:
                    log.warning("the gateway lease ran out before it was renewed; disconnected")
                    return _Ended.LOST
                if not await self._renewed(started, deadline):
                    return _Ended.LOST
                deadline = self._deadline = timing.deadline(started)
                next_renewal = started + timing.renew_every
            return _Ended.LOST
        finally:
            self.holding = False
            self._deadline = None
            if opening is not None:
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await opening
            await self._gateway.close()
            # Not holding (any more) and not connecting: a start waiting for the
            # first attempt stops waiting.
            self._settle(False)

    async def _renewed(self, started: float, deadline: float) -> bool:
        try:
            kept = await asyncio.wait_for(self._lease.renew(), timeout=deadline - started)
        except Exception as exc:
            log.warning("could not renew the gateway lease (%s); disconnected", type(exc).__name__)
            return False
        if not kept:
            self._held = False
            log.warning("the gateway lease is another worker's now; disconnected")
        return kept

    async def _release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            await asyncio.wait_for(self._lease.release(), timeout=self._timing.margin)
        except Exception as exc:
            # It expires by itself within the TTL.
            log.warning("could not release the gateway lease: %s", type(exc).__name__)

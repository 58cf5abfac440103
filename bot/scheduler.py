"""APScheduler as an alarm clock for the dispatcher.

The store's rows are the truth; APScheduler only holds in-memory jobs: a periodic
sweep, and a one-shot wake-up at the earliest known due time, moved earlier whenever
the engine schedules something sooner. Nothing is pickled.

With several workers on PostgreSQL, `wakeups` (storage.notify) also moves the wake-up
when another worker schedules a follow-up, and asks for a round at once when another
worker leaves outbox rows to this one's senders; the sweep stays the fallback.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dialogs.clock import Clock
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import Store
from storage.notify import NoWakeups, Wakeups

if TYPE_CHECKING:
    from bot.heartbeat import Heartbeat

log = logging.getLogger(__name__)
_WAKE = "wake"
# A round as soon as possible (another worker's wake-up), apart from the timed wake.
_NOW = "now"
_SWEEP = "sweep"
_PURGE = "purge"


@dataclass(frozen=True, slots=True)
class Retention:
    journal: timedelta
    events: timedelta
    # Unsaved answers of a group reflection, counted from the end of the session.
    reflection_answers: timedelta = timedelta(days=7)
    # Partner link signals (and links that ended that long ago).
    partner_signals: timedelta = timedelta(days=30)


class DispatchScheduler:
    def __init__(
        self,
        dispatcher: Dispatcher,
        store: Store,
        *,
        sweep_seconds: float,
        clock: Clock | None = None,
        retention: Retention | None = None,
        wakeups: Wakeups | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        # PostgreSQL: this worker's liveness, and a round at once when it takes a
        # dead worker's claims over (bot/heartbeat.py). Stopped by `Guide.close`.
        self._heartbeat = heartbeat
        self._wakeups: Wakeups = wakeups or NoWakeups()
        self._store = store
        self._clock = clock
        self._retention = retention
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._sweep_seconds = sweep_seconds
        self._wake_at: datetime | None = None
        # One tick at a time (the sweep and the wake-up may coincide), and shutdown
        # waits for a tick in flight so the store is never closed under it.
        self._tick_lock = asyncio.Lock()
        self._closed = False
        self._ticking: asyncio.Task[object] | None = None

    async def start(self) -> None:
        if self._heartbeat is not None:
            await self._heartbeat.start(self.round_now)
        # What a stopped or crashed run left unsent goes first (in order per chat).
        try:
            await self._dispatcher.delivery.resend_unsent(startup=True)
        except Exception:
            log.exception("resending unsent messages at start failed")
        self._scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=self._sweep_seconds),
            id=_SWEEP,
            max_instances=1,
            coalesce=True,
        )
        if self._retention is not None:
            self._scheduler.add_job(
                self.purge, IntervalTrigger(hours=24), id=_PURGE, max_instances=1, coalesce=True
            )
        self._scheduler.start()
        # Listening before the first round: nothing scheduled elsewhere in between is
        # missed.
        await self._wakeups.start(self)
        # Whatever came due while we were down goes out now, then the next wake is set.
        await self._tick()
        if self._retention is not None:
            await self.purge()

    async def shutdown(self) -> None:
        self._closed = True
        await self._wakeups.close()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        # A wave can take most of an hour at the platform's rate: stop it rather than
        # wait. What it claimed is left CLAIMED or DELIVERING for `recover` on restart.
        if self._ticking is not None and not self._ticking.done():
            self._ticking.cancel()
        async with self._tick_lock:
            pass

    def notify(self, due_at: datetime) -> None:
        """Called when a follow-up is scheduled: wake at `due_at` if that is sooner."""
        if self._closed or not self._scheduler.running:
            return
        if self._wake_at is not None and self._wake_at <= due_at:
            return
        self._wake_at = due_at
        self._scheduler.add_job(
            self._tick,
            DateTrigger(run_date=due_at),
            id=_WAKE,
            replace_existing=True,
            # A round ends by setting the next wake, from inside the wake job: when that
            # is already due (a stream of follow-ups), one instance more must be allowed
            # to wait behind the running one, or it is skipped and, `_wake_at` being set,
            # nothing wakes until the sweep (bench/workers.py saw p50 lateness of 13 s).
            max_instances=2,
            misfire_grace_time=None,
        )

    # What another worker's wake-ups say (storage.notify.Woken).

    def followup_scheduled(self, platform: str, due_at: datetime) -> None:
        if not platform or platform in self._dispatcher.platforms:
            self.notify(due_at)

    def outbox_unsent(self, platform: str) -> None:
        if platform in self._dispatcher.delivery.platforms:
            self.round_now()

    def missed_some(self) -> None:
        self.round_now()

    def round_now(self) -> None:
        """A round (the resend sweep first) as soon as the one in progress is done.
        Its own job, with room for one waiting behind a running one: a request that
        comes mid-round is not absorbed by it. The round in progress, which a wave
        behind its due times can keep busy for minutes, sweeps between two batches."""
        if self._closed or not self._scheduler.running:
            return
        self._dispatcher.want_resend()
        self._scheduler.add_job(
            self._tick,
            DateTrigger(run_date=datetime.now(UTC)),
            id=_NOW,
            replace_existing=True,
            max_instances=2,
            misfire_grace_time=None,
        )

    async def purge(self) -> None:
        """Delete journal rows, processed event ids, reflection answers, partner
        signals and finished outbox rows past their retention."""
        if self._retention is None or self._clock is None:
            return
        try:
            now = self._clock.now()
            journal, events = await self._store.purge(
                now, self._retention.journal, self._retention.events
            )
            answers = await self._store.purge_reflections(now, self._retention.reflection_answers)
            signals = await self._store.purge_links(now, self._retention.partner_signals)
            # Finished outbox rows (what became of each message, never its text) go
            # with the processed event ids.
            outbound = await self._store.purge_outbound(now, self._retention.events)
            log.info(
                "retention purge journal=%d events=%d reflection_answers=%d outbound=%d"
                " partner_signals=%d",
                journal,
                events,
                answers,
                outbound,
                signals,
            )
        except Exception:
            log.exception("retention purge failed")

    async def _tick(self) -> None:
        try:
            async with self._tick_lock:
                if self._closed:
                    return
                self._ticking = asyncio.current_task()
                try:
                    await self._tick_unlocked()
                finally:
                    self._ticking = None
        except asyncio.CancelledError:
            # Stopped by `shutdown`, running or still waiting for the lock (a round
            # asked for behind a running one): not an error.
            if not self._closed:
                raise

    async def _tick_unlocked(self) -> None:
        try:
            await self._dispatcher.run_due()
            self._wake_at = None
            upcoming = await self._store.next_due_at(self._dispatcher.platforms)
            if upcoming is not None:
                self.notify(upcoming)
        except Exception:
            log.exception("dispatcher tick failed")

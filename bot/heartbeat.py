"""A worker's heartbeat on PostgreSQL (storage/liveness.py): renew this worker's
liveness lease every `EVERY`, and take over the claims of any worker whose lease
lapsed, asking for a dispatch round at once when it did, so the dead worker's
follow-ups and messages go out about `TTL` + `EVERY` after its death instead of
after their own leases (5 minutes, 30 s) or the next sweep.

Started with the dispatch scheduler and stopped by `Guide.close` after the claims
are released: a worker finishing its sends at a graceful stop is still alive, and
must not be taken for dead meanwhile. On SQLite there is none: one process serves
the file, and a process starting takes every claim it finds (`Store.recover`,
`claim_unsent` with `startup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from storage import SqlStore
from storage.liveness import WorkerLiveness

log = logging.getLogger(__name__)

# How long a worker counts as alive after its last renewal. Short, so a dead worker's
# claims come back in seconds; long enough that a live worker on a loaded machine
# (its event loop held up by rendering a batch, a slow commit) renews well within
# it: four renewals may fail or come late in a row. A live worker taken for dead
# loses its claims, and what it was sending may go out twice.
TTL = timedelta(seconds=5)
EVERY = 1.0


class Heartbeat:
    def __init__(self, store: SqlStore, *, ttl: timedelta = TTL, every: float = EVERY) -> None:
        self._liveness = WorkerLiveness(store, ttl)
        self._every = every
        self._on_taken: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._beats = 0

    async def start(self, on_taken: Callable[[], None]) -> None:
        """Beat once now (so this worker is alive before it claims anything more),
        then every `every` seconds; `on_taken` is called whenever another worker's
        claims were taken over (a dispatch round at once)."""
        if self._task is not None:
            return
        self._on_taken = on_taken
        await self._once()
        self._task = asyncio.create_task(self._run(), name="worker-heartbeat")

    async def close(self) -> None:
        """Stop beating and delete this worker's lease (after `release_claims`)."""
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None
        try:
            await self._liveness.release()
        except Exception as exc:
            # Not fatal: it expires, and the next worker to look deletes it.
            log.warning("liveness lease not released error=%s", type(exc).__name__)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._every)
            if not self._stopping.is_set():
                await self._once()

    async def _once(self) -> None:
        try:
            if not await self._liveness.beat() and self._beats:
                log.warning(
                    "this worker was taken for dead (no renewal within %.0f s): its claims"
                    " went to other workers; renewed as a new tenure",
                    self._liveness.ttl.total_seconds(),
                )
            self._beats += 1
            taken = await self._liveness.take_over_dead()
        except Exception as exc:
            # The next beat tries again; a worker that cannot reach the database
            # cannot claim anything either.
            log.warning("heartbeat failed error=%s", type(exc).__name__)
            return
        if taken.workers:
            log.info(
                "took over the claims of dead workers workers=%d followups=%d outbox_rows=%d",
                len(taken.workers),
                taken.followups,
                taken.rows,
            )
        if taken:
            self._on_taken()

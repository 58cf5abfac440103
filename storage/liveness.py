"""Worker liveness on PostgreSQL: a short lease per worker, so that a dead worker's
claims come back in seconds rather than after the leases sized for the slowest work.

Each worker holds the lease `worker:<id>` (`storage.leases`, `SqlStore.worker` as
the holder) and renews it every second or so with a short time to live
(bot/heartbeat.py). Whenever any worker finds such a lease expired, it takes the
dead worker's claims over in one transaction (`take_over_dead`): its CLAIMED
follow-ups go back to PENDING and its pending outbox rows lose their claim (the
`claimed_by` of a released row), exactly what the dead worker would have done had it
stopped gracefully (`SqlStore.release_claims`), and its lease row is deleted, so rows
of long-dead workers do not pile up. Every worker hears of it (LISTEN/NOTIFY) and
takes the rows in its next round: `claim_due`, `claim_unsent` and `take_chat` already
treat released rows as free, so their conditions (run on every claim, `take_chat`
on every send) stay as they were.

A claimer with no lease row at all (a worker that died before its first beat, one
whose rows were written before this existed, a process on SQLite) keeps the time
leases: nothing proves it dead.

Why the lease's expiry and not the rows' own times: a worker's rows are claimed
when their work starts, and that work may rightly last long (a wave's sends wait
for the platform's cap, a 429's retry_after), so the rows' leases must be long; the
liveness lease says only whether the process is still there, which it can say every
second. The cost is the trade-off of a short TTL: a live worker that cannot renew
for longer than the TTL (its event loop blocked, its connection to the database
stalled) is taken for dead, and what it was sending may then be sent a second time
by another worker (the crash window, docs/reliability.md). Its later writes about
follow-ups record nothing (`ClaimLost`); it renews again as a new tenure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from dialogs.clock import Clock
from dialogs.store import FollowUpStatus
from storage.leases import Leases
from storage.models import FollowUpRow, LeaseRow
from storage.notify import announce_followup, announce_unsent
from storage.outbound_rows import LIVENESS_PREFIX as PREFIX
from storage.outbound_rows import OUTBOUND, PENDING
from storage.sql_store import NOBODY, SqlStore

_CLAIMED = FollowUpStatus.CLAIMED.value


def lease_name(worker: str) -> str:
    return f"{PREFIX}{worker}"


@dataclass(frozen=True, slots=True)
class TakenOver:
    """What one `take_over_dead` took from workers whose liveness lapsed."""

    workers: tuple[str, ...] = ()
    followups: int = 0
    rows: int = 0

    def __bool__(self) -> bool:
        """Anything was taken (a dead worker may have held nothing)."""
        return bool(self.followups or self.rows)


class WorkerLiveness:
    def __init__(self, store: SqlStore, ttl: timedelta, *, clock: Clock | None = None) -> None:
        self._store = store
        self._ttl = ttl
        self._leases = Leases(store, clock=clock)
        self._name = lease_name(store.worker)

    @property
    def worker(self) -> str:
        return self._store.worker

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    async def beat(self) -> bool:
        """Renew this worker's lease; True if it was still ours. False the first time,
        and after another worker took this one for dead (the lease row was deleted
        with its claims taken over): then it is taken anew."""
        if await self._leases.renew(self._name, self.worker, self._ttl) is not None:
            return True
        await self._leases.acquire(self._name, self.worker, self._ttl)
        return False

    async def take_over_dead(self) -> TakenOver:
        """Release the claims of every worker whose liveness lease expired, and delete
        its lease. Rows another transaction holds locked (the dead worker's own, if
        the database has not noticed yet that its connection is gone) are skipped,
        and that worker's lease stays for the next look."""
        dialect = self._store.engine.dialect.name
        async with self._store.transaction(background=True) as session:
            now = await self._leases.now_in(session)
            expired = (
                await session.scalars(
                    select(LeaseRow.name)
                    .where(
                        LeaseRow.name.startswith(PREFIX, autoescape=True),
                        LeaseRow.name != self._name,
                        LeaseRow.expires_at < now,
                    )
                    # Two workers looking at once take different dead ones.
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not expired:
                return TakenOver()
            dead = [name.removeprefix(PREFIX) for name in expired]
            followup_ids = (
                await session.scalars(
                    select(FollowUpRow.id)
                    .where(FollowUpRow.status == _CLAIMED, FollowUpRow.claimed_by.in_(dead))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            followups = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(
                        FollowUpRow.id.in_(followup_ids),
                        FollowUpRow.status == _CLAIMED,
                        FollowUpRow.claimed_by.in_(dead),
                    )
                    .values(
                        status=FollowUpStatus.PENDING.value,
                        claimed_at=None,
                        claimed_by=None,
                        updated_at=now,
                    )
                    .returning(FollowUpRow.id)
                )
            ).all()
            row_ids = (
                await session.scalars(
                    select(OUTBOUND.c.id)
                    .where(OUTBOUND.c.status == PENDING, OUTBOUND.c.claimed_by.in_(dead))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            rows = (
                await session.execute(
                    update(OUTBOUND)
                    .where(
                        OUTBOUND.c.id.in_(row_ids),
                        OUTBOUND.c.status == PENDING,
                        OUTBOUND.c.claimed_by.in_(dead),
                    )
                    .values(claimed_by=NOBODY, updated_at=now)
                    .returning(OUTBOUND.c.platform)
                )
            ).all()
            # Still claimed by one of them: locked by a transaction still open.
            left_followups = select(FollowUpRow.claimed_by).where(
                FollowUpRow.status == _CLAIMED, FollowUpRow.claimed_by.in_(dead)
            )
            left_rows = select(OUTBOUND.c.claimed_by).where(
                OUTBOUND.c.status == PENDING, OUTBOUND.c.claimed_by.in_(dead)
            )
            unfinished = set((await session.scalars(left_followups.union(left_rows))).all())
            done = [PREFIX + worker for worker in dead if worker not in unfinished]
            if done:
                await session.execute(delete(LeaseRow).where(LeaseRow.name.in_(done)))
            if followups:
                await announce_followup(session, dialect, "", now)
            await announce_unsent(session, dialect, {platform for (platform,) in rows})
        return TakenOver(tuple(dead), len(followups), len(rows))

    async def release(self) -> None:
        """A graceful stop, after `SqlStore.release_claims`: the lease row goes, so
        nothing is left of this worker."""
        async with self._store.transaction(background=True) as session:
            await session.execute(
                delete(LeaseRow).where(LeaseRow.name == self._name, LeaseRow.holder == self.worker)
            )

"""Named leases in the database: one holder at a time, for a limited time.

A lease is a row of `leases`: who holds it, until when, and a token that grows by one
whenever it changes hands. Whoever holds it renews it before it expires; anyone may
take it once it has expired or been released. Every decision is made in one
transaction on the row, locked (`FOR UPDATE` on PostgreSQL; SQLite's one writer), so
two workers never both come out holding it.

Whose clock: on PostgreSQL the database's (`clock_timestamp()`), so workers on
machines whose clocks disagree still agree on when a lease expires; on SQLite (one
process, one machine) the system clock; tests inject a `Clock`.

What the holder must do with this (bot.discord.gateway): treat the lease as its own
only until the moment it *started* its last successful renewal plus the TTL, less a
margin, on its own monotonic clock. The database computed the expiry from a later
instant, so the holder gives up before anyone else can take over, however long the
renewal's round trip took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.clock import Clock, SystemClock
from storage.dialect_insert import insert_for
from storage.models import LeaseRow
from storage.sql_store import SqlStore


@dataclass(frozen=True)
class Lease:
    """A lease as its holder got it."""

    name: str
    holder: str
    # Grows by one at each change of hands: which tenure this is.
    token: int
    expires_at: datetime


class Leases:
    def __init__(self, store: SqlStore, *, clock: Clock | None = None) -> None:
        self._store = store
        self._clock = clock
        self._postgres = store.engine.dialect.name == "postgresql"

    async def acquire(self, name: str, holder: str, ttl: timedelta) -> Lease | None:
        """Take the lease if it is free, expired or already `holder`'s (then it is
        renewed); None while someone else holds it."""
        return await self._claim(name, holder, ttl, take=True)

    async def renew(self, name: str, holder: str, ttl: timedelta) -> Lease | None:
        """Extend `holder`'s lease to now + `ttl`; None if it is not theirs (any
        more). A lease that expired but that nobody took since is still theirs:
        nobody else held it in between."""
        return await self._claim(name, holder, ttl, take=False)

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease up at once, so another worker need not wait for it to
        expire; False if `holder` did not hold it."""
        async with self._store.transaction() as session:
            row = await self._locked(session, name)
            if row is None or row.holder != holder:
                return False
            row.holder = None
            row.expires_at = await self._now(session)
            return True

    async def current(self, name: str) -> Lease | None:
        """Who holds the lease now, or None when it is free or expired."""
        async with self._store.transaction() as session:
            row = await session.get(LeaseRow, name)
            now = await self._now(session)
            if row is None or not _held(row, now) or row.holder is None:
                return None
            return _lease(row)

    async def _claim(self, name: str, holder: str, ttl: timedelta, *, take: bool) -> Lease | None:
        if ttl <= timedelta(0):
            raise ValueError(f"a lease needs a positive time to live, not {ttl}")
        async with self._store.transaction() as session:
            if take:
                # The row exists from the first attempt on; a conflict is another
                # worker's first attempt, resolved by the database.
                insert = insert_for(self._store.engine.dialect.name, LeaseRow)
                await session.execute(
                    insert.values(name=name, token=0).on_conflict_do_nothing(
                        index_elements=["name"]
                    )
                )
            row = await self._locked(session, name)
            # Read after the row lock: waiting for it must not make `now` stale.
            now = await self._now(session)
            if row is None or (row.holder != holder and (not take or _held(row, now))):
                return None
            if row.holder != holder:
                row.holder = holder
                row.token += 1
                row.acquired_at = now
            row.expires_at = now + ttl
            return _lease(row)

    async def _locked(self, session: AsyncSession, name: str) -> LeaseRow | None:
        query = select(LeaseRow).where(LeaseRow.name == name).with_for_update()
        row: LeaseRow | None = (await session.execute(query)).scalar_one_or_none()
        return row

    async def now_in(self, session: AsyncSession) -> datetime:
        """The time leases are measured by (see the module), read in `session`."""
        return await self._now(session)

    async def _now(self, session: AsyncSession) -> datetime:
        if self._clock is not None:
            return self._clock.now()
        if self._postgres:
            now: datetime = (await session.execute(select(func.clock_timestamp()))).scalar_one()
            return now
        return SystemClock().now()


def _held(row: LeaseRow, now: datetime) -> bool:
    return row.holder is not None and row.expires_at is not None and now < row.expires_at


def _lease(row: LeaseRow) -> Lease:
    assert row.holder is not None and row.expires_at is not None
    return Lease(row.name, row.holder, row.token, row.expires_at)

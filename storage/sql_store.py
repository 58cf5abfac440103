"""`Store` on SQLAlchemy: sessions, and the dispatcher's claim and recovery of
follow-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialogs.clock import Clock, SystemClock
from dialogs.store import FollowUp, FollowUpStatus, Store
from storage.crypto import VariableCipher
from storage.followup_rows import select_followups
from storage.models import FollowUpRow, JournalEntryRow, ProcessedEventRow, UserRow
from storage.privacy import count_deleted
from storage.session import SqlStoreSession

_PENDING = FollowUpStatus.PENDING.value
_CLAIMED = FollowUpStatus.CLAIMED.value
_DELIVERING = FollowUpStatus.DELIVERING.value
_Query = TypeVar("_Query", bound=Select[Any])


class SqlStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        cipher: VariableCipher | None = None,
    ) -> None:
        self._engine = engine
        self._clock: Clock = clock or SystemClock()
        self._cipher = cipher
        # Results are plain dataclasses built inside the transaction; nothing needs
        # reloading after commit.
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time. Inside one process, queueing transactions on
        # a lock is far cheaper than letting SQLite's busy handler sleep and retry
        # (measured by bench/engine_turns.py: p99 fell from ~1 s to milliseconds at ten
        # concurrent events). busy_timeout still covers other processes.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SqlStoreSession]:
        async with self._transaction() as session:
            yield SqlStoreSession(session, self._engine.dialect.name, self._clock, self._cipher)

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for maintenance and inspection."""
        return self._engine

    async def claim_due(
        self, now: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        async with self._transaction() as session:
            due = _pending(select(FollowUpRow.id), platforms).where(FollowUpRow.due_at <= now)
            candidates = (
                await session.scalars(
                    due.order_by(FollowUpRow.due_at, FollowUpRow.id)
                    .limit(limit)
                    # PostgreSQL: concurrent dispatchers take different rows instead of
                    # waiting. SQLite ignores it; BEGIN IMMEDIATE serialises them.
                    .with_for_update(skip_locked=True, of=FollowUpRow)
                )
            ).all()
            if not candidates:
                return []
            # Re-checking the status keeps the claim exclusive even without row locks.
            claimed = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(FollowUpRow.id.in_(candidates), FollowUpRow.status == _PENDING)
                    .values(status=_CLAIMED, claimed_at=now, updated_at=now)
                    .returning(FollowUpRow.id)
                )
            ).all()
            if not claimed:
                return []
            return await select_followups(session, FollowUpRow.id.in_(claimed), cipher=self._cipher)

    async def recover(
        self, now: datetime, lease: timedelta, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        """Each step is one conditional UPDATE, so concurrent callers (other
        processes on the same database included) never both take a row: the first
        to update it moves its claimed_at to `now`, out of the second's condition.
        SQLite runs the two transactions one after the other (BEGIN IMMEDIATE);
        PostgreSQL re-checks the condition on a row another transaction just changed.
        A caller whose `now` is more than `lease` past another's does re-take the
        row, which is the point of a lease."""
        expired = FollowUpRow.claimed_at < now - lease
        on_platforms = _on_platforms(platforms)
        async with self._transaction() as session:
            # The engine never committed: the follow-up has not started; claim it anew.
            await session.execute(
                update(FollowUpRow)
                .where(FollowUpRow.status == _CLAIMED, expired, on_platforms)
                .values(status=_PENDING, claimed_at=None, updated_at=now)
            )
            # The engine committed but the send may not have happened: send again.
            reclaimed = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(FollowUpRow.status == _DELIVERING, expired, on_platforms)
                    .values(claimed_at=now, updated_at=now)
                    .returning(FollowUpRow.id)
                )
            ).all()
            if not reclaimed:
                return []
            return await select_followups(
                session, FollowUpRow.id.in_(reclaimed), cipher=self._cipher
            )

    async def purge(
        self, now: datetime, journal_max_age: timedelta, events_max_age: timedelta
    ) -> tuple[int, int]:
        async with self._transaction() as session:
            journal = await count_deleted(
                session, delete(JournalEntryRow).where(JournalEntryRow.at < now - journal_max_age)
            )
            events = await count_deleted(
                session,
                delete(ProcessedEventRow).where(
                    ProcessedEventRow.processed_at < now - events_max_age
                ),
            )
            return journal, events

    async def next_due_at(self, platforms: Collection[str] | None = None) -> datetime | None:
        """`platforms` should match what is passed to `claim_due`: otherwise a process
        keeps waking for rows it will never claim."""
        async with self._transaction() as session:
            return await session.scalar(_pending(select(func.min(FollowUpRow.due_at)), platforms))

    async def close(self) -> None:
        await self._engine.dispose()


def _on_platforms(platforms: Collection[str] | None) -> ColumnElement[bool]:
    """Follow-ups of users on `platforms` (all when None), as a condition usable in
    an UPDATE, where `_pending`'s join is not."""
    if platforms is None:
        return true()
    return FollowUpRow.user_id.in_(select(UserRow.id).where(UserRow.platform.in_(platforms)))


def _pending(query: _Query, platforms: Collection[str] | None) -> _Query:
    query = query.where(FollowUpRow.status == _PENDING)
    if platforms is not None:
        query = query.join(UserRow, UserRow.id == FollowUpRow.user_id).where(
            UserRow.platform.in_(platforms)
        )
    return query


if TYPE_CHECKING:
    # Fails type checking here, not in a caller, when dialogs.store's protocols change.
    def _conforms(store: SqlStore) -> Store:
        return store

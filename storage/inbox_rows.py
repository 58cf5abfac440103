"""The webhook inbox's rows (`storage.models.InboxRow`): what a worker took from the
platform and has not handled yet.

- `put` stores an update in one short transaction, before the platform is answered;
  a redelivered update is already there and is not stored twice. `put_in_hand`
  stores updates long polling already holds, before it confirms them to the platform
  (`bot.telegram.confirm`), and `forget` deletes them once handled.
- `claim` takes all of one person's rows, oldest update first, unless another
  worker's lease on any of them is still running: one worker handles a person at a
  time. It locks the person's rows while it decides (`FOR UPDATE` on PostgreSQL;
  SQLite runs one writer at a time) and never skips a locked row: `SKIP LOCKED`
  would let a second worker jump past an older row being claimed and handle a newer
  one first. A row taken too often (its worker keeps dying) is dropped instead.
- `renew` keeps a lease alive while the rows are handled; `finish` deletes handled
  rows (typed text is kept no longer than its handling) and moves the person's
  `users.last_update_id` forward, never back; `finish_and_claim` does that and
  claims the person's rows stored meanwhile in the same transaction (a drain's
  next claim, without a transaction of its own); `release` hands back a stopping
  worker's claims; `waiting` names the people whose rows nobody is handling (no
  claim, or a dead worker's lease), for every worker's sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import UnreadableData, open_value, seal_value
from storage.dialect_insert import insert_for
from storage.models import InboxRow, UserRow
from storage.sql_store import SqlStore

log = logging.getLogger(__name__)

INBOX: Table = InboxRow.__table__  # type: ignore[assignment]
USERS: Table = UserRow.__table__  # type: ignore[assignment]
# Taken this many times without being finished, a row is dropped: an update that
# kills whichever worker handles it must not take the workers down one by one.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    update_id: int
    person: str
    body: dict[str, Any]
    # Older than an update already handled for this person: it arrived late.
    late: bool


class InboxRows:
    def __init__(
        self,
        store: SqlStore,
        platform: str,
        *,
        worker: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._store = store
        self._platform = platform
        self._dialect = store.engine.dialect.name
        # Names this process on its claims (the store's id, also on its outbox rows).
        self.worker = worker or store.worker
        self._max_attempts = max_attempts

    async def put(self, update_id: int, person: str, body: dict[str, Any], at: datetime) -> bool:
        """Store an update; False when it is already stored (a redelivery)."""
        sealed = seal_value(body, self._store.cipher)
        statement = (
            insert_for(self._dialect, INBOX)
            .values(
                platform=self._platform,
                update_id=update_id,
                person=person,
                received_at=at,
                body=sealed,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=[INBOX.c.platform, INBOX.c.update_id])
            .returning(INBOX.c.id)
        )
        async with self._store.transaction() as session:
            stored = await session.scalar(statement)
        return stored is not None

    async def put_in_hand(
        self, updates: Sequence[tuple[int, str, dict[str, Any]]], at: datetime
    ) -> None:
        """Store updates (update id, person, body) this worker is handling already,
        in one transaction. Claimed by it, under a lease already over: no other
        worker runs beside a long-polling one, and the next process to start takes
        them at once (`waiting`) if this one dies before `forget`."""
        if not updates:
            return
        values = [
            {
                "platform": self._platform,
                "update_id": update_id,
                "person": person,
                "received_at": at,
                "body": seal_value(body, self._store.cipher),
                "attempts": 1,
                "claimed_by": self.worker,
                "lease_until": at,
            }
            for update_id, person, body in updates
        ]
        statement = (
            insert_for(self._dialect, INBOX)
            .values(values)
            .on_conflict_do_nothing(index_elements=[INBOX.c.platform, INBOX.c.update_id])
        )
        async with self._store.transaction() as session:
            await session.execute(statement)

    async def forget(self, update_ids: Sequence[int]) -> None:
        """Delete these updates' rows: handled where they were in hand."""
        if not update_ids:
            return
        async with self._store.transaction() as session:
            await session.execute(
                delete(INBOX).where(
                    INBOX.c.platform == self._platform, INBOX.c.update_id.in_(list(update_ids))
                )
            )
        await self._store.checkpoint()

    async def claim(self, person: str, now: datetime, lease: timedelta) -> list[InboxItem]:
        """This person's rows, oldest first, now held by this worker until `now +
        lease`; [] when there are none or another worker's lease is live."""
        async with self._store.transaction() as session:
            rows = await self._lock_person(session, person)
            return await self._claim_rows(session, person, now, lease, rows)

    async def _lock_person(self, session: AsyncSession, person: str) -> Sequence[Any]:
        """All of the person's rows, locked oldest first (a claim and a delete that
        claims again lock them in the same order, so they wait, never deadlock)."""
        mine = INBOX.c.platform == self._platform
        return (
            await session.execute(
                select(
                    INBOX.c.id,
                    INBOX.c.update_id,
                    INBOX.c.claimed_by,
                    INBOX.c.lease_until,
                    INBOX.c.attempts,
                    INBOX.c.body,
                )
                .where(mine, INBOX.c.person == person)
                .order_by(INBOX.c.update_id)
                .with_for_update()
            )
        ).all()

    async def _claim_rows(
        self,
        session: AsyncSession,
        person: str,
        now: datetime,
        lease: timedelta,
        rows: Sequence[Any],
    ) -> list[InboxItem]:
        if any(
            row.claimed_by not in (None, self.worker)
            and row.lease_until is not None
            and row.lease_until > now
            for row in rows
        ):
            return []
        worn = [row.id for row in rows if row.attempts >= self._max_attempts]
        taken = [row for row in rows if row.attempts < self._max_attempts]
        if worn:
            log.error("inbox updates dropped after %d attempts count=%d", MAX_ATTEMPTS, len(worn))
            await session.execute(delete(INBOX).where(INBOX.c.id.in_(worn)))
        if not taken:
            return []
        await session.execute(
            update(INBOX)
            .where(INBOX.c.id.in_([row.id for row in taken]))
            .values(
                claimed_by=self.worker,
                lease_until=now + lease,
                attempts=INBOX.c.attempts + 1,
            )
        )
        last = await session.scalar(
            select(USERS.c.last_update_id).where(
                USERS.c.platform == self._platform, USERS.c.platform_user_id == person
            )
        )
        items = []
        for row in taken:
            try:
                body = open_value(row.body, self._store.cipher)
            except UnreadableData:
                # No key opens it: it can never be handled. Dropped at `finish`.
                log.error("inbox update unreadable, dropped")
                body = {}
            late = last is not None and row.update_id <= last
            items.append(InboxItem(row.id, row.update_id, person, body, late))
        return items

    async def renew(self, items: Sequence[InboxItem], until: datetime) -> None:
        if not items:
            return
        async with self._store.transaction() as session:
            await session.execute(
                update(INBOX)
                .where(
                    INBOX.c.id.in_([item.id for item in items]), INBOX.c.claimed_by == self.worker
                )
                .values(lease_until=until)
            )

    async def finish(self, items: Sequence[InboxItem]) -> None:
        """Delete handled rows (whoever holds them now: a worker that took one over
        after a stalled lease finds it claimed as an event already handled) and move
        the person's last update id forward."""
        await self.finish_and_claim(items, None)

    async def finish_and_claim(
        self, items: Sequence[InboxItem], then: tuple[str, datetime, timedelta] | None
    ) -> list[InboxItem]:
        """`finish`, then, in the same transaction, `claim` (person, now, lease) when
        `then` is given: the person's rows stored while these were handled. One
        transaction where a drain used to run two, the second mostly finding none."""
        newest: dict[str, int] = {}
        for item in items:
            newest[item.person] = max(newest.get(item.person, item.update_id), item.update_id)
        if not items and then is None:
            return []
        handled = {item.id for item in items}
        async with self._store.transaction() as session:
            # Locked before any is deleted, as `claim` locks them: a worker claiming
            # a late (older) row it stored meanwhile waits for this one.
            rows = [] if then is None else await self._lock_person(session, then[0])
            if items:
                await session.execute(delete(INBOX).where(INBOX.c.id.in_([i.id for i in items])))
            for person, update_id in newest.items():
                await session.execute(
                    update(USERS)
                    .where(
                        USERS.c.platform == self._platform,
                        USERS.c.platform_user_id == person,
                        or_(USERS.c.last_update_id.is_(None), USERS.c.last_update_id < update_id),
                    )
                    .values(last_update_id=update_id)
                )
            left = [row for row in rows if row.id not in handled]
            claimed = [] if then is None else await self._claim_rows(session, *then, left)
        if items:
            # Deleted rows may have held typed text: out of SQLite's WAL too
            # (secure_delete zeroes them in the file).
            await self._store.checkpoint()
        return claimed

    async def release(self) -> int:
        """Hand back every claim of this worker (it is stopping): others take them at
        once instead of after the lease."""
        async with self._store.transaction() as session:
            result = await session.execute(
                update(INBOX)
                .where(INBOX.c.platform == self._platform, INBOX.c.claimed_by == self.worker)
                .values(claimed_by=None, lease_until=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def waiting(
        self, now: datetime, *, unclaimed_before: datetime, limit: int = 100
    ) -> list[str]:
        """People with rows nobody is handling: unclaimed since before
        `unclaimed_before` (the worker that took them should have claimed them by
        then), or under a lease that ran out (its worker died or stalled)."""
        nobody = and_(INBOX.c.claimed_by.is_(None), INBOX.c.received_at < unclaimed_before)
        expired = and_(INBOX.c.claimed_by.is_not(None), INBOX.c.lease_until < now)
        async with self._store.transaction(background=True) as session:
            people = await session.scalars(
                select(INBOX.c.person)
                .where(INBOX.c.platform == self._platform, or_(nobody, expired))
                .group_by(INBOX.c.person)
                .order_by(func.min(INBOX.c.update_id))
                .limit(limit)
            )
            return list(people)

    async def count(self) -> int:
        """Rows in the inbox (every worker's), for tests and metrics."""
        async with self._store.transaction(background=True) as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(INBOX)
                    .where(INBOX.c.platform == self._platform)
                )
                or 0
            )

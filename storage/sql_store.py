"""`Store` on SQLAlchemy: sessions, and the dispatcher's claim and recovery of
follow-ups."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    null,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialogs.clock import Clock, SystemClock
from dialogs.events import Address
from dialogs.store import (
    ChatTurn,
    ConversationState,
    FollowUp,
    FollowUpStatus,
    OutboundRow,
    OutboundStatus,
    Profile,
    Store,
    UserKey,
)
from storage.crypto import (
    ENCRYPTED_KEY,
    VariableCipher,
    encode_variables,
    readable_variables,
)
from storage.dialect_insert import insert_for
from storage.engine import checkpoint_wal
from storage.followup_rows import COLUMNS as FOLLOWUP_COLUMNS
from storage.followup_rows import followup_from, select_followups
from storage.link_rows import purge_links
from storage.models import (
    ConversationRow,
    FollowUpRow,
    JournalEntryRow,
    ProcessedEventRow,
    UserRow,
)
from storage.notify import announce_followup, announce_unsent
from storage.outbound_rows import (
    OUTBOUND,
    PENDING,
    claimer_alive,
    select_rows,
    supersede_moved_on,
    take_chat,
)
from storage.parting_rows import delete_settled_parting
from storage.privacy import count_deleted
from storage.reflection_rows import purge_reflections
from storage.sealed_profile import needs_sealing, open_profile, seal_profile_values
from storage.session import SqlStoreSession, lock_followup_owner
from storage.write_lock import WriteLock

log = logging.getLogger(__name__)

# `claimed_by` of an outbox row released for whichever process can send it.
NOBODY = ""
_PENDING = FollowUpStatus.PENDING.value
_CLAIMED = FollowUpStatus.CLAIMED.value
_DELIVERING = FollowUpStatus.DELIVERING.value
_Query = TypeVar("_Query", bound=Select[Any])


@dataclass(slots=True)
class _Batch:
    """The transaction a task opened with `SqlStore.batch()`, while it is open."""

    session: AsyncSession
    task: asyncio.Task[Any] | None
    open: bool = True
    # A session in the batch cleared or deleted something: checkpoint after commit.
    scrub: bool = False

    def joined(self) -> bool:
        return self.open and self.task is asyncio.current_task()


# Set by `batch()`. Tasks started inside a batch inherit the variable, so a batch is
# only joined by the task that opened it, and only while it is open.
_BATCH: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("batch", default=None)


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
        # Names this process on the outbox rows it writes (it sends them after commit);
        # the resend sweep tells its own rows from another process's by it.
        self.worker = uuid.uuid4().hex[:16]
        # Outbox rows whose message may repeat words a person typed that are no longer
        # kept (written in the transaction that cleared them, or re-sent after a
        # crash): when they are marked and lose their message, the WAL is checkpointed
        # again, so the words are in no file of the database (storage.engine).
        self._scrub_rows: set[int] = set()
        # Results are plain dataclasses built inside the transaction; nothing needs
        # reloading after commit.
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time. Inside one process, queueing transactions on
        # a lock is far cheaper than letting SQLite's busy handler sleep and retry
        # (measured by bench/engine_turns.py: p99 fell from ~1 s to milliseconds at ten
        # concurrent events). busy_timeout still covers other processes.
        # People's turns go before waiting background work (storage.write_lock).
        self._write_lock: WriteLock | None = (
            WriteLock() if engine.dialect.name == "sqlite" else None
        )

    @asynccontextmanager
    async def _transaction(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction; `background` for work nobody is waiting for (a wave's batch,
        outbox marks, sweeps, purges), which lets a person's turn go first."""
        batch = _BATCH.get()
        if batch is not None and batch.joined():
            # A savepoint: a failure here undoes only this part of the batch.
            async with batch.session.begin_nested():
                yield batch.session
            return
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with (
            self._write_lock.hold(background=background),
            self._sessions() as session,
            session.begin(),
        ):
            yield session

    def transaction(self, *, background: bool = False) -> AbstractAsyncContextManager[AsyncSession]:
        """A plain transaction queued like a person's turn (for storage.leases and
        storage.inbox_rows; `background` for work nobody waits for): on SQLite it
        waits for the process's one writer instead of SQLite's busy handler, and
        shares the one connection of an in-memory database."""
        return self._transaction(background=background)

    @property
    def cipher(self) -> VariableCipher | None:
        return self._cipher

    def someone_waiting(self) -> bool:
        """A person's transaction waits for the one in progress (SQLite, in this
        process): a batch should commit now and let it in."""
        return self._write_lock is not None and self._write_lock.urgent_waiting

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TurnSession]:
        async with self._transaction() as session:
            turns = TurnSession(
                session, self._engine.dialect.name, self._clock, self._cipher, self.worker
            )
            yield turns
            await turns.finish()
            if turns.scrub:
                self._scrub_rows.update(turns.enqueued)
        if turns.scrub:
            batch = _BATCH.get()
            if batch is not None and batch.joined():
                # The batch holds the write lock until it commits: checkpoint then.
                batch.scrub = True
            else:
                # Committed: take the deleted or cleared rows out of SQLite's WAL too.
                await self.checkpoint()

    async def checkpoint(self) -> None:
        """See storage.engine.checkpoint_wal; queued like a write."""
        if self._write_lock is None:
            await checkpoint_wal(self._engine)
            return
        async with self._write_lock.hold(background=True):
            await checkpoint_wal(self._engine)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Group the current task's transactions into one (see `Store.batch`): the
        dispatcher renders a batch of due follow-ups with one synced commit instead
        of one each. It holds SQLite's write lock meanwhile, so keep batches short."""
        current = _BATCH.get()
        if current is not None and current.joined():
            yield  # already inside one: join it
            return
        async with self._transaction(background=True) as session:
            batch = _Batch(session, asyncio.current_task())
            token = _BATCH.set(batch)
            try:
                yield
            finally:
                batch.open = False
                _BATCH.reset(token)
        if batch.scrub:
            await self.checkpoint()

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for maintenance and inspection."""
        return self._engine

    async def claim_due(
        self, now: datetime, limit: int, platforms: Collection[str] | None = None
    ) -> list[FollowUp]:
        due = (
            _pending(select(FollowUpRow.id), platforms)
            .where(FollowUpRow.due_at <= now)
            .order_by(FollowUpRow.due_at, FollowUpRow.id)
            .limit(limit)
            # PostgreSQL: concurrent dispatchers take different rows instead of
            # waiting. SQLite ignores it; BEGIN IMMEDIATE serialises them.
            .with_for_update(skip_locked=True, of=FollowUpRow)
            # Picked once: PostgreSQL may run an IN subquery again for each row the
            # UPDATE looks at, and each run skips the rows the UPDATE has just locked
            # and picks the next ones, so the limit would not hold.
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        async with self._transaction(background=True) as session:
            # One statement picks and claims them (a round trip less on PostgreSQL: a
            # wave claims about as often as it commits a batch). Re-checking the
            # status keeps the claim exclusive even without row locks.
            claimed = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(FollowUpRow.id.in_(select(due.c.id)), FollowUpRow.status == _PENDING)
                    .values(status=_CLAIMED, claimed_at=now, claimed_by=self.worker, updated_at=now)
                    .returning(FollowUpRow.id)
                )
            ).all()
            if not claimed:
                return []
            return await select_followups(session, FollowUpRow.id.in_(claimed), cipher=self._cipher)

    async def release_claims(self, at: datetime) -> tuple[int, int]:
        """A graceful stop: what this process claimed and did not finish goes back at
        once to whichever worker is free, not after the lease. Follow-ups still
        CLAIMED by us become PENDING; pending outbox rows we hold lose their claim.
        Returns (follow-ups, outbox rows) released."""
        async with self._transaction(background=True) as session:
            followups = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(FollowUpRow.status == _CLAIMED, FollowUpRow.claimed_by == self.worker)
                    .values(status=_PENDING, claimed_at=None, claimed_by=None, updated_at=at)
                    .returning(FollowUpRow.id)
                )
            ).all()
            rows = (
                await session.execute(
                    update(OUTBOUND)
                    .where(OUTBOUND.c.status == PENDING, OUTBOUND.c.claimed_by == self.worker)
                    .values(claimed_by=NOBODY, updated_at=at)
                    .returning(OUTBOUND.c.id, OUTBOUND.c.platform)
                )
            ).all()
            # Other workers take them now, not at their next sweep (PostgreSQL): a
            # round for the follow-ups (any platform), the resend sweep for the rows.
            dialect = self._engine.dialect.name
            if followups:
                await announce_followup(session, dialect, "", at)
            await announce_unsent(session, dialect, {row.platform for row in rows})
        return len(followups), len(rows)

    async def recover(
        self,
        now: datetime,
        lease: timedelta,
        platforms: Collection[str] | None = None,
        *,
        startup: bool = False,
    ) -> list[FollowUp]:
        """Each step is one conditional UPDATE, so concurrent callers (other
        processes on the same database included) never both take a row: the first
        to update it moves its claimed_at to `now`, out of the second's condition.
        SQLite runs the two transactions one after the other (BEGIN IMMEDIATE);
        PostgreSQL re-checks the condition on a row another transaction just changed.
        A caller whose `now` is more than `lease` past another's does re-take the
        row, which is the point of a lease.

        `startup` on SQLite takes every CLAIMED row at once, as `claim_unsent` does:
        a process starting has claimed nothing yet, so a claim is another's, and
        where one process dispatches for a database that process is gone. (Should
        another be alive after all, as with two consoles on one file, the status is
        checked again before anything is rendered, and SQLite runs the two one at a
        time: a follow-up is still run once.) A DELIVERING row, from before the
        outbox, keeps its lease."""
        expired = FollowUpRow.claimed_at < now - lease
        dead_claim = expired
        if startup and self._engine.dialect.name == "sqlite":
            dead_claim = FollowUpRow.claimed_at.is_not(None)
        on_platforms = _on_platforms(platforms)
        stale = _unlocked(FollowUpRow.status == _CLAIMED, dead_claim, on_platforms)
        stuck = _unlocked(FollowUpRow.status == _DELIVERING, expired, on_platforms)
        async with self._transaction(background=True) as session:
            # The engine never committed: the follow-up has not started; claim it anew.
            await session.execute(
                update(FollowUpRow)
                .where(FollowUpRow.status == _CLAIMED, dead_claim, FollowUpRow.id.in_(stale))
                .values(status=_PENDING, claimed_at=None, claimed_by=None, updated_at=now)
            )
            # The engine committed but the send may not have happened: send again.
            reclaimed = (
                await session.scalars(
                    update(FollowUpRow)
                    .where(FollowUpRow.status == _DELIVERING, expired, FollowUpRow.id.in_(stuck))
                    .values(claimed_at=now, claimed_by=self.worker, updated_at=now)
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
        async with self._transaction(background=True) as session:
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

    async def purge_links(self, now: datetime, signals_max_age: timedelta) -> int:
        async with self._transaction(background=True) as session:
            return await purge_links(session, now, signals_max_age)

    async def purge_reflections(self, now: datetime, answers_max_age: timedelta) -> int:
        async with self._transaction(background=True) as session:
            return await purge_reflections(session, now, answers_max_age)

    async def next_due_at(self, platforms: Collection[str] | None = None) -> datetime | None:
        """`platforms` should match what is passed to `claim_due`: otherwise a process
        keeps waking for rows it will never claim."""
        async with self._transaction(background=True) as session:
            return await session.scalar(_pending(select(func.min(FollowUpRow.due_at)), platforms))

    async def claim_unsent(
        self,
        now: datetime,
        lease: timedelta,
        platforms: Collection[str],
        *,
        held: Collection[int] = (),
        startup: bool = False,
        limit: int = 1000,
    ) -> list[OutboundRow]:
        """Like `recover`, a conditional UPDATE takes each row, so two processes never
        both take one. `startup` takes another process's fresh rows only on SQLite,
        where one process sends for a database; on PostgreSQL another worker may be
        sending them right now, so they wait out the lease."""
        if not platforms:
            return []
        # Another worker's row only once its lease is over and that worker is not
        # alive (claimer_alive): a live one's send may wait longer than the lease.
        over = OUTBOUND.c.claimed_at < now - lease
        mine_or_dead = (OUTBOUND.c.claimed_by == self.worker) | ~claimer_alive(now)
        stale = (over & mine_or_dead) | (OUTBOUND.c.claimed_by == NOBODY)
        if startup and self._engine.dialect.name == "sqlite":
            stale = stale | (OUTBOUND.c.claimed_by != self.worker)
        wanted = (OUTBOUND.c.status == PENDING) & OUTBOUND.c.platform.in_(platforms) & stale
        async with self._transaction(background=True) as session:
            candidates = (
                await session.scalars(
                    select(OUTBOUND.c.id)
                    .where(wanted)
                    .order_by(OUTBOUND.c.platform, OUTBOUND.c.chat_id, OUTBOUND.c.seq)
                    .limit(limit + len(held))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            held_ids = set(held)
            chosen = [id_ for id_ in candidates if id_ not in held_ids][:limit]
            if not chosen:
                return []
            taken = (
                await session.scalars(
                    update(OUTBOUND)
                    .where(OUTBOUND.c.id.in_(chosen), wanted)
                    .values(claimed_at=now, claimed_by=self.worker, updated_at=now)
                    .returning(OUTBOUND.c.id)
                )
            ).all()
            # Not sent again if the person's conversation moved on since.
            superseded = await supersede_moved_on(session, taken, now)
            taken = [id_ for id_ in taken if id_ not in superseded]
            # Perhaps written by a turn that then cleared what they repeat, and whose
            # process died before marking them: checkpoint once they are marked.
            self._scrub_rows.update(taken)
            rows = await select_rows(session, taken, self._cipher)
        await self._superseded(len(superseded))
        return rows

    async def take_chat(
        self,
        address: Address,
        up_to: int,
        now: datetime,
        lease: timedelta,
        *,
        have: Mapping[int, OutboundRow],
        elsewhere: Collection[int] = (),
        known: Collection[int] = (),
    ) -> ChatTurn:
        async with self._transaction() as session:
            turn = await take_chat(
                session,
                address,
                up_to,
                now,
                lease,
                worker=self.worker,
                nobody=NOBODY,
                have=have,
                elsewhere=elsewhere,
                known=known,
                cipher=self._cipher,
            )
        # Read back after a crash or a failure: as for `claim_unsent`.
        self._scrub_rows.update(row.id for row in turn.rows if row.id not in have)
        await self._superseded(len(turn.superseded))
        return turn

    async def _superseded(self, count: int) -> None:
        """Rows superseded as they were taken lost their message, which may have
        repeated words no longer kept: out of the WAL with them."""
        if count:
            log.info("outbox rows not sent again: the conversation moved on count=%d", count)
            await self.checkpoint()

    async def mark_outbound(
        self,
        marks: Sequence[tuple[int, OutboundStatus, str | None]],
        at: datetime,
    ) -> None:
        """One UPDATE per (status, reason) among `marks`: a batch of sends is usually
        one statement."""
        groups: dict[tuple[OutboundStatus, str | None], list[int]] = {}
        for row_id, status, reason in marks:
            groups.setdefault((status, reason), []).append(row_id)
        if not groups:
            return
        async with self._transaction(background=True) as session:
            parting: list[int] = []
            for (status, reason), ids in groups.items():
                values: dict[str, Any] = {
                    "status": status.value,
                    "reason": reason,
                    # SQL NULL, not the JSON value null: nothing of the text is kept.
                    "message": null(),
                    "updated_at": at,
                }
                if status is OutboundStatus.SENT:
                    values["sent_at"] = at
                marked = await session.execute(
                    update(OUTBOUND)
                    .where(OUTBOUND.c.id.in_(ids), OUTBOUND.c.status == PENDING)
                    .values(**values)
                    .returning(OUTBOUND.c.id, OUTBOUND.c.user_id)
                )
                parting.extend(id_ for id_, owner in marked if owner is None)
            # /forget's last words name nobody, and are kept no longer than owed.
            await delete_settled_parting(session, parting)
        scrubbed = self._scrub_rows.intersection(row_id for row_id, _, _ in marks)
        if scrubbed:
            self._scrub_rows.difference_update(scrubbed)
            await self.checkpoint()

    async def release_outbound(self, ids: Collection[int], reason: str, at: datetime) -> None:
        if not ids:
            return
        async with self._transaction(background=True) as session:
            platforms = await session.scalars(
                update(OUTBOUND)
                .where(OUTBOUND.c.id.in_(list(ids)), OUTBOUND.c.status == PENDING)
                .values(claimed_by=NOBODY, reason=reason, updated_at=at)
                .returning(OUTBOUND.c.platform)
            )
            # The workers that send for those platforms take them at once (PostgreSQL).
            await announce_unsent(session, self._engine.dialect.name, set(platforms))

    async def purge_outbound(self, now: datetime, max_age: timedelta) -> int:
        async with self._transaction(background=True) as session:
            # Rows with no owner settled some other way than a mark (a toast's
            # supersession, say) go whatever their age.
            parting = await delete_settled_parting(session, None)
            return parting + await count_deleted(
                session,
                delete(OUTBOUND).where(
                    OUTBOUND.c.status != PENDING, OUTBOUND.c.updated_at < now - max_age
                ),
            )

    async def close(self) -> None:
        await self._engine.dispose()


def _unlocked(*conditions: ColumnElement[bool]) -> Select[int]:
    """The ids of follow-ups matching `conditions` that no other transaction holds
    (PostgreSQL; SQLite ignores it and runs transactions one at a time). A row locked
    now is being worked on: a batch marking it sent, or another worker's recovery.
    Waiting for it deadlocked a bulk take-back against a batch that went on to a
    follow-up the take-back already held (the three-worker soak at the 0.5 s lease
    of clock x600); the next round looks at it again."""
    return select(FollowUpRow.id).where(*conditions).with_for_update(skip_locked=True)


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


# ---------------------------------------------------------------- an event's hot path

_USERS = cast(Table, UserRow.__table__)
_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_PROFILE_FIELDS = tuple(f.name for f in fields(Profile))
_STATE_FIELDS = ("flow_id", "node_id", "turn", "content_version", "chat_id")
# The user's id, profile and conversation in one round trip, locking the user's row
# (PostgreSQL; on SQLite, BEGIN IMMEDIATE already serialises transactions).
_OPEN_EVENT = (
    select(
        _USERS.c.id,
        *(_USERS.c[name] for name in _PROFILE_FIELDS),
        _CONVERSATIONS.c.user_id,
        *(_CONVERSATIONS.c[name] for name in _STATE_FIELDS),
        _CONVERSATIONS.c.variables,
        _CONVERSATIONS.c.updated_at,
        # Last: the sealed crisis time and danger flag (storage.sealed_profile).
        _USERS.c.sealed,
    )
    .select_from(_USERS.outerjoin(_CONVERSATIONS, _CONVERSATIONS.c.user_id == _USERS.c.id))
    .where(
        _USERS.c.platform == bindparam("platform"),
        _USERS.c.platform_user_id == bindparam("platform_user_id"),
    )
    .with_for_update(of=_USERS)
)
# A due follow-up and its owner's id, profile and conversation in one round trip
# (`TurnSession.open_followup`): the follow-up's columns, then _OPEN_EVENT's.
_FOLLOWUPS = cast(Table, FollowUpRow.__table__)
_OPEN_FOLLOWUP = (
    select(*FOLLOWUP_COLUMNS, *_OPEN_EVENT.selected_columns)
    .select_from(
        _FOLLOWUPS.join(_USERS, _USERS.c.id == _FOLLOWUPS.c.user_id).outerjoin(
            _CONVERSATIONS, _CONVERSATIONS.c.user_id == _USERS.c.id
        )
    )
    .where(_FOLLOWUPS.c.id == bindparam("followup_id"))
)
_LOCK_FOLLOWUP_OWNER = lock_followup_owner(bindparam("followup_id"))
# Executed with the columns to set as parameters, and the row's id as "pk".
_UPDATE_USER = update(_USERS).where(_USERS.c.id == bindparam("pk"))
_UPDATE_CONVERSATION = update(_CONVERSATIONS).where(_CONVERSATIONS.c.user_id == bindparam("pk"))
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
_INSERT_JOURNAL = insert(cast(Table, JournalEntryRow.__table__))


@dataclass(slots=True)
class _Opened:
    """What `open_event` loaded, to compare with what `save_turn` is given."""

    user_id: int
    # What the row holds, for save_turn to compare with (see open_event).
    profile: Profile
    # The person's profile as this transaction sees it, for load_profile.
    current: Profile
    # None while the user has no conversation row.
    state: ConversationState | None
    # The stored variables need writing even if unchanged (plain, but a key is set).
    reseal: bool
    # `load_state`'s last-seen stamp, written with the next save_turn (or at commit).
    seen: datetime | None
    # Set by `load_state` for someone without a conversation row: the row it owes,
    # written with the turn's state by save_turn, or empty at commit (`finish`).
    create_at: datetime | None = None


class TurnSession(SqlStoreSession):
    """`SqlStoreSession` with the engine's per-event path in few statements, on SQL
    Core: `open_event` reads the user's id, profile and conversation in one SELECT
    and claims the event; `save_turn` writes one UPDATE per table, with only the
    columns that changed. Everything stays in the caller's transaction."""

    def __init__(
        self,
        session: AsyncSession,
        dialect_name: str,
        clock: Clock,
        cipher: VariableCipher | None = None,
        worker: str = "",
    ) -> None:
        super().__init__(session, dialect_name, clock, cipher, worker)
        self._opened: dict[UserKey, _Opened] = {}
        # Set when this transaction deleted a person or cleared free text: the store
        # checkpoints SQLite's WAL after the commit (storage.engine.checkpoint_wal).
        self.scrub = False
        self._claim = (
            insert_for(dialect_name, ProcessedEventRow.__table__)
            .on_conflict_do_nothing(index_elements=[ProcessedEventRow.event_key])
            .returning(ProcessedEventRow.event_key)
        )

    async def open_event(
        self, event_key: str, at: datetime, user: UserKey
    ) -> tuple[ConversationState, Profile] | None:
        row, made = await self._select_opened(user, at)
        claimed = await self._session.scalar(
            self._claim, {"event_key": event_key, "processed_at": at, "user_id": row[0]}
        )
        if claimed is None:
            if made:
                await self._unmake_user(row[0])
            return None
        opened = self._opened_from(user, row, at)
        # Like load_state, an empty state for someone without a conversation yet.
        return opened.state or ConversationState(), opened.current

    async def open_followup(self, followup_id: int) -> tuple[FollowUp, Profile] | None:
        """The follow-up, its owner's profile and conversation in one SELECT (after
        the owner's row lock on PostgreSQL, as in `_select_opened`), kept as the
        owner's snapshot: the `load_state` and `load_profile` that follow read
        nothing more. Last seen is stamped only if the turn opens (`load_state`)."""
        key = {"followup_id": followup_id}
        if (
            self._dialect != "sqlite"
            and await self._session.scalar(_LOCK_FOLLOWUP_OWNER, key) is None
        ):
            return None
        row = (await self._session.execute(_OPEN_FOLLOWUP, key)).first()
        if row is None:
            return None
        followup = followup_from(row, self._cipher)
        opened = self._opened.get(followup.user)
        if opened is None:
            opened = self._opened_from(followup.user, row[len(FOLLOWUP_COLUMNS) :], None)
        return followup, opened.current

    async def load_state(self, user: UserKey, at: datetime) -> ConversationState:
        """`open_event`'s one SELECT (and snapshot, for save_turn) without an event:
        a due follow-up opens a turn this way, unless `open_followup` read it."""
        opened = self._opened.get(user)
        if opened is None:
            opened = self._opened_from(user, (await self._select_opened(user, at))[0], at)
        else:
            opened.seen = at
        if opened.state is None:
            # Created on first contact, as the protocol says, but with the turn's own
            # state when save_turn follows (one INSERT, not an INSERT and an UPDATE);
            # empty at commit otherwise (`finish`).
            if opened.create_at is None:
                opened.create_at = at
            return ConversationState()
        return opened.state

    async def load_profile(self, user: UserKey) -> Profile:
        opened = self._opened.get(user)
        if opened is None:
            return await super().load_profile(user)
        return opened.current

    async def _select_opened(self, user: UserKey, at: datetime) -> tuple[Any, bool]:
        """The person's row joined to their conversation, and whether this call
        created the person (first contact)."""
        key = {"platform": user.platform, "platform_user_id": user.user_id}
        made = False
        if self._dialect != "sqlite":
            # The person's row lock first, on its own. _OPEN_EVENT's FOR UPDATE OF
            # users alone is not enough on PostgreSQL: when it has to wait for another
            # turn of the same person, it re-reads the users row after that commit but
            # returns the conversation as its statement's snapshot saw it, before: the
            # turn would start from a stale state and overwrite the other's (a lost
            # update). A statement begun once the lock is held sees every commit.
            made = (await self._user_id_made(user, at, lock=True))[1]
        row = (await self._session.execute(_OPEN_EVENT, key)).first()
        if row is None:
            made = (await self._user_id_made(user, at))[1]
            row = (await self._session.execute(_OPEN_EVENT, key)).one()
        return row, made

    def _opened_from(self, user: UserKey, row: Any, at: datetime | None) -> _Opened:
        user_id: int = row[0]
        end = 1 + len(_PROFILE_FIELDS)
        profile = open_profile(Profile(*row[1:end]), row[-1], self._cipher)
        # What the row holds, for save_turn to compare with: made to differ when the
        # safety fields must be written (sealed) again under the current key.
        before = profile
        if needs_sealing(row[-1], profile, self._cipher):
            before = replace(profile, unsafe=not profile.unsafe)
        stored: ConversationState | None = None
        reseal = False
        if row[end] is not None:
            flow_id, node_id, turn, version, chat_id, variables, updated_at = row[end + 1 : -1]
            opened = readable_variables(variables, self._cipher)
            reseal = opened is None or (self._cipher is not None and ENCRYPTED_KEY not in variables)
            if opened is None:
                # No key opens them: the conversation starts afresh, and the person
                # is answered (a crisis signal first, as always).
                flow_id = node_id = None
                opened = {}
            stored = ConversationState(
                flow_id=flow_id,
                node_id=node_id,
                variables=opened,
                turn=turn,
                content_version=version,
                chat_id=chat_id,
                updated_at=updated_at,
            )
        snapshot = self._opened[user] = _Opened(user_id, before, profile, stored, reseal, at)
        return snapshot

    async def save_turn(
        self, user: UserKey, state: ConversationState, profile: Profile, at: datetime
    ) -> None:
        opened = self._opened.get(user)
        if opened is None:
            await self.save_state(user, state, at)
            await self.save_profile(user, profile)
            return
        await self._write_conversation(opened, state, at)
        await self._write_profile(opened, profile)

    async def finish(self) -> None:
        """Write what is still pending; the transaction is about to commit."""
        for opened in self._opened.values():
            if opened.state is None and opened.create_at is not None:
                await self._write_conversation(opened, ConversationState(), opened.create_at)
            await self._write_profile(opened, opened.profile)

    # Older methods keep the snapshot true, so that save_turn compares with what the
    # database now holds.

    async def save_profile(self, user: UserKey, profile: Profile) -> None:
        opened = self._opened.get(user)
        if opened is None:
            await super().save_profile(user, profile)
            return
        await self._write_profile(opened, profile)

    async def save_state(self, user: UserKey, state: ConversationState, at: datetime) -> None:
        opened = self._opened.get(user)
        if opened is None:
            await super().save_state(user, state, at)
            return
        await self._write_conversation(opened, state, at)

    async def append_journal(
        self, user: UserKey, at: datetime, flow_id: str, node_id: str, kind: str, value: str
    ) -> None:
        opened = self._opened.get(user)
        if opened is None:
            await super().append_journal(user, at, flow_id, node_id, kind, value)
            return
        await self._session.execute(
            _INSERT_JOURNAL,
            {
                "user_id": opened.user_id,
                "at": at,
                "flow_id": flow_id,
                "node_id": node_id,
                "kind": kind,
                "value": value,
            },
        )

    async def forget_user(self, user: UserKey, *, asked_in: str | None = None) -> int:
        # Every row is gone, pending stamps included; later writes start afresh.
        self._opened.pop(user, None)
        self.scrub = True
        return await super().forget_user(user, asked_in=asked_in)

    async def _user_id(self, user: UserKey, at: datetime, *, lock: bool = False) -> int:
        opened = self._opened.get(user)
        if opened is not None and not lock:
            return opened.user_id
        return await super()._user_id(user, at, lock=lock)

    async def _write_profile(self, opened: _Opened, profile: Profile) -> None:
        before = opened.profile
        values: dict[str, Any] = {
            name: getattr(profile, name)
            for name in _PROFILE_FIELDS
            if getattr(profile, name) != getattr(before, name)
        }
        if opened.seen is not None:
            values["last_seen_at"] = opened.seen
        values = seal_profile_values(values, profile, self._cipher)
        if values:
            await self._session.execute(_UPDATE_USER, {"pk": opened.user_id, **values})
        opened.profile = opened.current = profile
        opened.seen = None

    async def _write_conversation(
        self, opened: _Opened, state: ConversationState, at: datetime
    ) -> None:
        before = opened.state
        written = replace(state, updated_at=at)
        if before is None:
            await self._session.execute(
                _INSERT_CONVERSATION,
                {
                    "user_id": opened.user_id,
                    **{name: getattr(state, name) for name in _STATE_FIELDS},
                    "variables": encode_variables(state.variables, self._cipher),
                    "updated_at": at,
                },
            )
        else:
            # updated_at always moves: it tells an abandoned flow from a live one.
            values: dict[str, Any] = {
                name: getattr(state, name)
                for name in _STATE_FIELDS
                if getattr(state, name) != getattr(before, name)
            }
            if opened.reseal or dict(state.variables) != dict(before.variables):
                values["variables"] = encode_variables(state.variables, self._cipher)
                cleared = set(before.variables) - set(state.variables)
                if any(isinstance(before.variables[name], str) for name in cleared):
                    self.scrub = True  # free text cleared: out of the WAL too
            await self._session.execute(
                _UPDATE_CONVERSATION, {"pk": opened.user_id, "updated_at": at, **values}
            )
        opened.state = written
        opened.reseal = False


if TYPE_CHECKING:
    # Fails type checking here, not in a caller, when dialogs.store's protocols change.
    def _conforms(store: SqlStore) -> Store:
        return store

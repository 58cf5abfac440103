"""`StoreSession` over one SQLAlchemy `AsyncSession` transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.clock import Clock
from dialogs.events import Address, Outbound
from dialogs.store import (
    REFLECTION_TIMER,
    ConversationState,
    FollowUp,
    FollowUpRequest,
    FollowUpStatus,
    JournalEntry,
    OutboundKind,
    OutboundRow,
    Profile,
    UserKey,
)
from storage.crypto import VariableCipher, encode_variables, readable_variables
from storage.dialect_insert import insert_for
from storage.errors import FollowUpNotClaimed, StorageError
from storage.followup_rows import select_followups
from storage.link_rows import LinkRows
from storage.models import (
    ConversationRow,
    FollowUpRow,
    JournalEntryRow,
    ProcessedEventRow,
    ReferralCountRow,
    UserRow,
)
from storage.notify import announce_followup
from storage.outbound_json import encode_messages
from storage.outbound_rows import enqueue
from storage.privacy import delete_addressed_rows, delete_user_rows, export_user_rows
from storage.reflection_rows import ReflectionRows
from storage.sealed_profile import open_profile, seal_profile_values

# Stands for "no country known" in the anonymous counts, whose key cannot be NULL.
UNKNOWN_COUNTRY = "unknown"


class SqlStoreSession(ReflectionRows, LinkRows):
    """Every method runs in the caller's transaction; nothing here commits.

    `clock` stamps audit columns for the methods whose protocol signature has no `at`.
    `cipher`, when given, encrypts conversation variables at rest. `worker` names this
    process on the outbox rows it writes: it sends them after commit.
    """

    def __init__(
        self,
        session: AsyncSession,
        dialect_name: str,
        clock: Clock,
        cipher: VariableCipher | None = None,
        worker: str = "",
    ) -> None:
        self._session = session
        self._dialect = dialect_name
        self._clock = clock
        self._cipher = cipher
        self._worker = worker
        # The outbox rows this transaction wrote (SqlStore checkpoints after marking
        # them when the same transaction cleared free text).
        self.enqueued: list[int] = []

    async def claim_event(self, event_key: str, at: datetime, user: UserKey) -> bool:
        user_id, made = await self._user_id_made(user, at)
        statement = self._record_event(event_key, at, user_id).returning(
            ProcessedEventRow.event_key
        )
        claimed = await self._session.scalar(statement) is not None
        if not claimed and made:
            await self._unmake_user(user_id)
        return claimed

    async def load_profile(self, user: UserKey) -> Profile:
        row = await self._session.scalar(
            select(UserRow)
            .where(UserRow.platform == user.platform, UserRow.platform_user_id == user.user_id)
            .execution_options(populate_existing=True)
        )
        if row is None:
            return Profile()
        # Profile fields and user columns share their names; see models.UserRow.
        profile = Profile(**{f.name: getattr(row, f.name) for f in fields(Profile)})
        return open_profile(profile, row.sealed, self._cipher)

    async def save_profile(self, user: UserKey, profile: Profile) -> None:
        user_id = await self._user_id(user, self._clock.now())
        await self._session.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(**seal_profile_values(asdict(profile), profile, self._cipher))
        )

    async def count_referral(self, day: date, country: str | None, signal: str) -> None:
        statement = insert_for(self._dialect, ReferralCountRow).values(
            day=day, country=country or UNKNOWN_COUNTRY, signal=signal, count=1
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    ReferralCountRow.day,
                    ReferralCountRow.country,
                    ReferralCountRow.signal,
                ],
                set_={ReferralCountRow.count: ReferralCountRow.count + 1},
            )
        )

    async def export_user(self, user: UserKey) -> dict[str, Any]:
        user_id = await self._session.scalar(_user_id_of(user))
        return await export_user_rows(self._session, user_id, self._cipher)

    async def forget_user(self, user: UserKey, *, asked_in: str | None = None) -> int:
        # Locked so that a concurrent event for the same person waits, then starts afresh.
        user_id = await self._session.scalar(_user_id_of(user).with_for_update())
        if user_id is None:
            return 0
        # A private chat's id is the person's own id on Telegram and the console.
        addressed = await delete_addressed_rows(self._session, user, {user.user_id})
        deleted = addressed + await delete_user_rows(self._session, user_id)
        if asked_in is not None:
            # An update id names nobody; kept, it stops a redelivery of the /forget
            # turn's own update (a crash before it was confirmed) from being taken
            # for a new person's first message.
            await self._session.execute(self._record_event(asked_in, self._clock.now(), None))
        return deleted

    def _record_event(self, event_key: str, at: datetime, user_id: int | None) -> Any:
        """The event's key recorded as processed (nothing if it already was)."""
        return (
            insert_for(self._dialect, ProcessedEventRow)
            .values(event_key=event_key, processed_at=at, user_id=user_id)
            .on_conflict_do_nothing(index_elements=[ProcessedEventRow.event_key])
        )

    async def load_state(self, user: UserKey, at: datetime) -> ConversationState:
        user_id = await self._user_id(user, at, lock=True)
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(last_seen_at=at)
        )
        row = await self._session.get(ConversationRow, user_id)
        if row is None:
            empty = ConversationState()
            self._session.add(self._conversation_row(user_id, empty, at))
            # Never written by the engine, so no `updated_at` to report.
            return empty
        variables = readable_variables(row.variables, self._cipher)
        if variables is None:
            # No key opens them: start afresh (the next save writes them anew).
            return ConversationState(
                turn=row.turn,
                content_version=row.content_version,
                chat_id=row.chat_id,
                updated_at=row.updated_at,
            )
        return ConversationState(
            flow_id=row.flow_id,
            node_id=row.node_id,
            variables=variables,
            turn=row.turn,
            content_version=row.content_version,
            chat_id=row.chat_id,
            updated_at=row.updated_at,
        )

    async def save_state(self, user: UserKey, state: ConversationState, at: datetime) -> None:
        user_id = await self._user_id(user, at)
        row = await self._session.get(ConversationRow, user_id)
        if row is None:
            self._session.add(self._conversation_row(user_id, state, at))
            return
        row.flow_id = state.flow_id
        row.node_id = state.node_id
        # A fresh dict: the ORM only notices reassignment of a JSON column, not mutation.
        row.variables = encode_variables(state.variables, self._cipher)
        row.turn = state.turn
        row.content_version = state.content_version
        row.chat_id = state.chat_id
        row.updated_at = at

    async def append_journal(
        self, user: UserKey, at: datetime, flow_id: str, node_id: str, kind: str, value: str
    ) -> None:
        user_id = await self._user_id(user, at)
        self._session.add(
            JournalEntryRow(
                user_id=user_id, at=at, flow_id=flow_id, node_id=node_id, kind=kind, value=value
            )
        )

    async def read_journal(self, user: UserKey, since: datetime) -> list[JournalEntry]:
        rows = await self._session.execute(
            select(
                JournalEntryRow.at,
                JournalEntryRow.flow_id,
                JournalEntryRow.node_id,
                JournalEntryRow.kind,
                JournalEntryRow.value,
            )
            .join(UserRow, UserRow.id == JournalEntryRow.user_id)
            .where(
                UserRow.platform == user.platform,
                UserRow.platform_user_id == user.user_id,
                JournalEntryRow.at >= since,
            )
            .order_by(JournalEntryRow.at, JournalEntryRow.id)
        )
        return [JournalEntry(*row) for row in rows]

    async def last_journal_value(
        self, user: UserKey, flow_id: str, node_id: str, kind: str
    ) -> str | None:
        # Served by the index on user_id; a person's journal is at most a year of taps.
        user_id = await self._user_id(user, self._clock.now())
        return await self._session.scalar(
            select(JournalEntryRow.value)
            .where(
                JournalEntryRow.user_id == user_id,
                JournalEntryRow.flow_id == flow_id,
                JournalEntryRow.node_id == node_id,
                JournalEntryRow.kind == kind,
            )
            .order_by(JournalEntryRow.id.desc())
            .limit(1)
        )

    async def schedule_followup(self, user: UserKey, request: FollowUpRequest) -> bool:
        now = self._clock.now()
        user_id = await self._user_id(user, now)
        statement = (
            insert_for(self._dialect, FollowUpRow)
            .values(
                user_id=user_id,
                chat_id=request.chat_id,
                flow_id=request.flow_id,
                due_at=request.due_at,
                expires_at=request.expires_at,
                status=FollowUpStatus.PENDING.value,
                dedupe_key=request.dedupe_key,
                kind=request.kind,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[FollowUpRow.dedupe_key])
            .returning(FollowUpRow.id)
        )
        if await self._session.scalar(statement) is None:
            return False
        # Every worker's dispatcher hears of it at commit (PostgreSQL; storage.notify).
        await announce_followup(self._session, self._dialect, user.platform, request.due_at)
        return True

    async def cancel_followups(self, user: UserKey, kind: str | None = None) -> int:
        condition = FollowUpRow.user_id == _user_id_of(user).scalar_subquery()
        if kind is not None:
            condition &= FollowUpRow.kind == kind
        else:
            # A reflection's step timer belongs to the group, not to the facilitator's
            # own plans: /stop or a crisis signal of theirs must not freeze it.
            condition &= FollowUpRow.kind != REFLECTION_TIMER
        return len(await self._cancel_pending(condition))

    async def cancel_followup(self, user: UserKey, followup_id: int) -> bool:
        # The owner is part of the condition: an id typed or replayed by someone
        # else cancels nothing and reveals nothing.
        cancelled = await self._cancel_pending(
            (FollowUpRow.id == followup_id)
            & (FollowUpRow.user_id == _user_id_of(user).scalar_subquery())
        )
        return bool(cancelled)

    async def mark_delivering(
        self, followup_id: int, messages: Sequence[Outbound], at: datetime
    ) -> None:
        """Also restarts the lease (claimed_at = at): `Store.recover` measures a
        delivery from here, not from the claim, however long the engine took."""
        row = await self._followup_row(followup_id)
        if row is None:
            # Unlike a status change, this must not pass silently: the caller is
            # about to send, and the person may have just been forgotten.
            raise StorageError(f"no follow-up with id {followup_id}")
        if row.status != FollowUpStatus.CLAIMED.value or not self._ours(row):
            raise FollowUpNotClaimed(f"follow-up {followup_id} is {row.status}, not our claim")
        row.status = FollowUpStatus.DELIVERING.value
        row.messages = encode_messages(messages, self._cipher)
        row.claimed_at = at
        row.claimed_by = self._worker
        row.updated_at = at

    async def queue_followup(
        self,
        followup_id: int,
        address: Address,
        messages: Sequence[Outbound],
        at: datetime,
        *,
        turn: int | None = None,
    ) -> list[OutboundRow]:
        # One statement, on a due follow-up's hot path: SENT if it is ours to send.
        owner = await self._session.scalar(
            update(FollowUpRow)
            .where(
                FollowUpRow.id == followup_id,
                FollowUpRow.status.in_(
                    (FollowUpStatus.CLAIMED.value, FollowUpStatus.DELIVERING.value)
                ),
                _claimed_by(self._worker),
            )
            .values(status=FollowUpStatus.SENT.value, messages=null(), sent_at=at, updated_at=at)
            .returning(FollowUpRow.user_id)
        )
        if owner is None:
            # As for mark_delivering: the caller is about to send.
            status = await self._session.scalar(
                select(FollowUpRow.status).where(FollowUpRow.id == followup_id)
            )
            if status is None:
                raise StorageError(f"no follow-up with id {followup_id}")
            raise FollowUpNotClaimed(f"follow-up {followup_id} is {status}, not our claim")
        # Follow-ups never carry files; were one to, its text still goes, as before.
        rows = await enqueue(
            self._session,
            self._dialect,
            owner,
            address,
            [
                replace(m, attachment=None, chart=None) if m.attachment or m.chart else m
                for m in messages
            ],
            at,
            OutboundKind.SCHEDULED,
            worker=self._worker,
            cipher=self._cipher,
            earlier=self.enqueued,
            turn=turn,
            followup_id=followup_id,
        )
        self.enqueued.extend(row.id for row in rows)
        return rows

    async def enqueue_outbound(
        self,
        owner: UserKey | None,
        address: Address,
        messages: Sequence[Outbound],
        at: datetime,
        kind: OutboundKind = OutboundKind.REPLY,
        *,
        turn: int | None = None,
    ) -> list[OutboundRow]:
        if not messages:
            return []
        owner_id = None if owner is None else await self._user_id(owner, at)
        rows = await enqueue(
            self._session,
            self._dialect,
            owner_id,
            address,
            messages,
            at,
            kind,
            worker=self._worker,
            cipher=self._cipher,
            earlier=self.enqueued,
            # A message's time is Telegram's stamp (whole seconds, and long past
            # when a backlog is handled): the lease runs from now, or another
            # worker's resend sweep would send the row while this one does.
            claimed_at=max(at, self._clock.now()),
            turn=turn,
        )
        self.enqueued.extend(row.id for row in rows)
        return rows

    async def pending_followups(self, user: UserKey) -> list[FollowUp]:
        return await select_followups(
            self._session,
            UserRow.platform == user.platform,
            UserRow.platform_user_id == user.user_id,
            FollowUpRow.status == FollowUpStatus.PENDING.value,
            FollowUpRow.kind != REFLECTION_TIMER,
            cipher=self._cipher,
        )

    async def get_followup(self, followup_id: int) -> FollowUp | None:
        found = await select_followups(
            self._session, FollowUpRow.id == followup_id, cipher=self._cipher
        )
        return found[0] if found else None

    async def open_followup(self, followup_id: int) -> tuple[FollowUp, Profile] | None:
        # The owner's row locked first; the status is read after it (storage.sql_store's
        # TurnSession does all of this in fewer statements).
        if await self._session.scalar(lock_followup_owner(followup_id)) is None:
            return None
        followup = await self.get_followup(followup_id)
        if followup is None:
            return None
        return followup, await self.load_profile(followup.user)

    async def set_followup_status(
        self,
        followup_id: int,
        status: FollowUpStatus,
        at: datetime,
        *,
        only_from: FollowUpStatus | None = None,
    ) -> None:
        """Any status but DELIVERING, which needs its messages (`mark_delivering`).
        Leaving DELIVERING drops the stored messages: they are only kept for a
        re-send, and may quote the person. With `only_from`, a follow-up in another
        status is left as it is (decided under the row's lock)."""
        if status is FollowUpStatus.DELIVERING:
            raise ValueError("a follow-up becomes DELIVERING through mark_delivering")
        row = await self._followup_row(followup_id)
        if row is None:
            # Deleting a user cascades to their follow-ups, possibly while the
            # dispatcher still holds one; there is nothing left to record.
            return
        if only_from is not None and (
            row.status != only_from.value
            or (row.status == FollowUpStatus.CLAIMED.value and not self._ours(row))
        ):
            return
        if row.status == FollowUpStatus.CLAIMED.value and not self._ours(row):
            # Another worker took the claim over (this one stalled, or was taken for
            # dead): what it records stands.
            raise FollowUpNotClaimed(f"follow-up {followup_id} is another worker's claim")
        row.status = status.value
        row.updated_at = at
        row.messages = None
        if status is FollowUpStatus.CLAIMED:
            row.claimed_at = at
            row.claimed_by = self._worker
        elif status is FollowUpStatus.SENT:
            row.sent_at = at

    async def postpone_followup(self, followup_id: int, due_at: datetime) -> None:
        row = await self._followup_row(followup_id)
        if row is None:
            raise StorageError(f"no follow-up with id {followup_id}")
        # Only the dispatcher holding the claim may postpone; reviving a cancelled or
        # sent follow-up here would message someone who opted out or was already reached.
        if row.status != FollowUpStatus.CLAIMED.value or not self._ours(row):
            raise FollowUpNotClaimed(f"follow-up {followup_id} is {row.status}, not our claim")
        row.status = FollowUpStatus.PENDING.value
        row.due_at = due_at
        row.claimed_at = None
        row.claimed_by = None
        row.updated_at = self._clock.now()
        if self._dialect == "postgresql":
            # Should this worker die before then, another wakes for it on time.
            platform = await self._session.scalar(
                select(UserRow.platform).where(UserRow.id == row.user_id)
            )
            await announce_followup(self._session, self._dialect, platform or "", due_at)

    async def _cancel_pending(self, condition: ColumnElement[bool]) -> Sequence[int]:
        """Cancel the pending follow-ups matching `condition`; their ids."""
        statement = (
            update(FollowUpRow)
            .where(condition, FollowUpRow.status == FollowUpStatus.PENDING.value)
            .values(status=FollowUpStatus.CANCELLED.value, updated_at=self._clock.now())
            .returning(FollowUpRow.id)
        )
        return (await self._session.scalars(statement)).all()

    def _ours(self, row: FollowUpRow) -> bool:
        """Whether a claimed follow-up's claim is this worker's (one claimed before
        migration 0014 names no claimer: the status alone decides, as before)."""
        return row.claimed_by is None or row.claimed_by == self._worker

    async def _followup_row(self, followup_id: int) -> FollowUpRow | None:
        return await self._session.get(
            FollowUpRow, followup_id, with_for_update=True, populate_existing=True
        )

    def _conversation_row(
        self, user_id: int, state: ConversationState, at: datetime
    ) -> ConversationRow:
        return ConversationRow(
            user_id=user_id,
            flow_id=state.flow_id,
            node_id=state.node_id,
            variables=encode_variables(state.variables, self._cipher),
            turn=state.turn,
            content_version=state.content_version,
            chat_id=state.chat_id,
            updated_at=at,
        )

    async def _user_id(self, user: UserKey, at: datetime, *, lock: bool = False) -> int:
        """The user's id, creating the user on first contact."""
        return (await self._user_id_made(user, at, lock=lock))[0]

    async def _user_id_made(
        self, user: UserKey, at: datetime, *, lock: bool = False
    ) -> tuple[int, bool]:
        """The user's id, and whether this call created the user."""
        query = _user_id_of(user)
        if lock:
            query = query.with_for_update()
        found = await self._session.scalar(query)
        if found is not None:
            return found, False
        # ON CONFLICT: a concurrent first event for the same person may insert first.
        made = await self._session.scalar(
            insert_for(self._dialect, UserRow)
            .values(
                platform=user.platform,
                platform_user_id=user.user_id,
                created_at=at,
                last_seen_at=at,
            )
            .on_conflict_do_nothing(index_elements=[UserRow.platform, UserRow.platform_user_id])
            .returning(UserRow.id)
        )
        if made is not None:
            return made, True
        return (await self._session.scalars(query)).one(), False

    async def _unmake_user(self, user_id: int) -> None:
        """Undo `_user_id_made`'s creation: the event that made the row was one
        already handled (a redelivery of someone /forget has deleted, say), and
        nothing of the person may come back unasked."""
        await self._session.execute(delete(UserRow).where(UserRow.id == user_id))


def lock_followup_owner(followup_id: Any) -> Select[int]:
    """Locks the user a follow-up belongs to (PostgreSQL; SQLite ignores FOR UPDATE and
    its transactions run one at a time); selects their id."""
    owner = select(FollowUpRow.user_id).where(FollowUpRow.id == followup_id).scalar_subquery()
    return select(UserRow.id).where(UserRow.id == owner).with_for_update()


def _claimed_by(worker: str) -> ColumnElement[bool]:
    """A follow-up's claim is `worker`'s (or names no claimer: claimed before
    migration 0014): another worker's claim is not ours to record."""
    return FollowUpRow.claimed_by.is_(None) | (FollowUpRow.claimed_by == worker)


def _user_id_of(user: UserKey) -> Select[int]:
    return select(UserRow.id).where(
        UserRow.platform == user.platform, UserRow.platform_user_id == user.user_id
    )

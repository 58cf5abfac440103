"""The reflection part of `SqlStoreSession` (dialogs.reflection.store).

A mixin, so the session stays one object with one transaction; it relies on the
session's `_session`, `_dialect`, `_cipher` and `_user_id`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.reflection.store import (
    Participant,
    ReflectionAnswer,
    ReflectionSession,
    ReflectionStatus,
)
from dialogs.store import FollowUpStatus, UserKey
from storage.crypto import VariableCipher, decode_variables, encode_variables
from storage.dialect_insert import insert_for
from storage.models import (
    FollowUpRow,
    ReflectionAnswerRow,
    ReflectionParticipantRow,
    ReflectionSessionRow,
    UserRow,
)
from storage.privacy import count_deleted

_OPEN = (ReflectionStatus.RUNNING.value, ReflectionStatus.PAUSED.value)


class ReflectionRows:
    _session: AsyncSession
    _dialect: str
    _cipher: VariableCipher | None

    if TYPE_CHECKING:
        # SqlStoreSession's; declared for the type checker only.
        async def _user_id(self, user: UserKey, at: datetime, *, lock: bool = False) -> int: ...

    async def create_reflection(
        self,
        *,
        token: str,
        platform: str,
        chat_id: str,
        reflection_id: str,
        facilitator: UserKey,
        minutes: int,
        at: datetime,
    ) -> ReflectionSession:
        row = ReflectionSessionRow(
            token=token,
            platform=platform,
            chat_id=chat_id,
            reflection_id=reflection_id,
            facilitator_id=await self._user_id(facilitator, at),
            minutes=minutes,
            step_index=0,
            status=ReflectionStatus.RUNNING.value,
            created_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return _session_of(row, facilitator)

    async def reflection_by_token(self, token: str) -> ReflectionSession | None:
        found = await self._sessions(ReflectionSessionRow.token == token)
        return found[0] if found else None

    async def open_reflection_in(self, platform: str, chat_id: str) -> ReflectionSession | None:
        found = await self._sessions(
            ReflectionSessionRow.platform == platform,
            ReflectionSessionRow.chat_id == chat_id,
            ReflectionSessionRow.status.in_(_OPEN),
        )
        return found[0] if found else None

    async def update_reflection(self, session: ReflectionSession) -> None:
        await self._session.execute(
            update(ReflectionSessionRow)
            .where(ReflectionSessionRow.id == session.id)
            .values(
                chat_id=session.chat_id,
                step_index=session.step_index,
                status=session.status.value,
                step_due_at=session.step_due_at,
                remaining_seconds=session.remaining_seconds,
                timer=session.timer,
                ended_at=session.ended_at,
            )
        )

    async def add_participant(
        self, session_id: int, user: UserKey, chat_id: str, at: datetime
    ) -> bool:
        statement = (
            insert_for(self._dialect, ReflectionParticipantRow)
            .values(
                session_id=session_id,
                user_id=await self._user_id(user, at),
                chat_id=chat_id,
                joined_at=at,
            )
            .on_conflict_do_nothing(
                index_elements=[
                    ReflectionParticipantRow.session_id,
                    ReflectionParticipantRow.user_id,
                ]
            )
            .returning(ReflectionParticipantRow.user_id)
        )
        return await self._session.scalar(statement) is not None

    async def participants(self, session_id: int) -> list[Participant]:
        rows = await self._session.execute(
            select(ReflectionParticipantRow, UserRow.platform, UserRow.platform_user_id)
            .join(UserRow, UserRow.id == ReflectionParticipantRow.user_id)
            .where(ReflectionParticipantRow.session_id == session_id)
            .order_by(ReflectionParticipantRow.joined_at, ReflectionParticipantRow.user_id)
        )
        return [
            Participant(UserKey(platform, user_id), row.chat_id, row.joined_at)
            for row, platform, user_id in rows
        ]

    async def reflections_joined(self, user: UserKey) -> list[ReflectionSession]:
        joined = (
            select(ReflectionParticipantRow.session_id)
            .join(UserRow, UserRow.id == ReflectionParticipantRow.user_id)
            .where(UserRow.platform == user.platform, UserRow.platform_user_id == user.user_id)
        )
        return await self._sessions(
            ReflectionSessionRow.id.in_(joined),
            ReflectionSessionRow.status.in_(_OPEN),
            newest_first=True,
        )

    async def save_answer(self, session_id: int, answer: ReflectionAnswer) -> None:
        user_id = await self._user_id(answer.user, answer.at)
        reflection_id = await self._session.scalar(
            select(ReflectionSessionRow.reflection_id).where(ReflectionSessionRow.id == session_id)
        )
        values: dict[str, Any] = {
            "choice": answer.choice,
            "text": None
            if answer.text is None
            else encode_variables({"text": answer.text}, self._cipher),
            "tally": answer.tally,
            "shared": answer.shared,
            "saved": answer.saved,
            "at": answer.at,
        }
        statement = insert_for(self._dialect, ReflectionAnswerRow).values(
            session_id=session_id,
            user_id=user_id,
            reflection_id=reflection_id or "",
            step_id=answer.step_id,
            **values,
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    ReflectionAnswerRow.session_id,
                    ReflectionAnswerRow.user_id,
                    ReflectionAnswerRow.step_id,
                ],
                set_=values,
            )
        )

    async def get_answer(
        self, session_id: int, user: UserKey, step_id: str
    ) -> ReflectionAnswer | None:
        rows = await self._answers(
            ReflectionAnswerRow.session_id == session_id,
            UserRow.platform == user.platform,
            UserRow.platform_user_id == user.user_id,
            ReflectionAnswerRow.step_id == step_id,
            with_text=True,
        )
        return rows[0] if rows else None

    async def mark_answer(
        self,
        session_id: int,
        user: UserKey,
        step_id: str,
        *,
        shared: bool | None = None,
        saved: bool | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if shared is not None:
            values["shared"] = shared
        if saved is not None:
            values["saved"] = saved
        if not values:
            return
        owner = select(UserRow.id).where(
            UserRow.platform == user.platform, UserRow.platform_user_id == user.user_id
        )
        await self._session.execute(
            update(ReflectionAnswerRow)
            .where(
                ReflectionAnswerRow.session_id == session_id,
                ReflectionAnswerRow.user_id == owner.scalar_subquery(),
                ReflectionAnswerRow.step_id == step_id,
            )
            .values(**values)
        )

    async def answers(self, session_id: int) -> list[ReflectionAnswer]:
        return await self._answers(ReflectionAnswerRow.session_id == session_id, with_text=False)

    async def cancel_timer(self, dedupe_key: str) -> bool:
        result = await self._session.scalars(
            update(FollowUpRow)
            .where(
                FollowUpRow.dedupe_key == dedupe_key,
                FollowUpRow.status == FollowUpStatus.PENDING.value,
            )
            .values(status=FollowUpStatus.CANCELLED.value)
            .returning(FollowUpRow.id)
        )
        return bool(result.all())

    async def _sessions(self, *where: Any, newest_first: bool = False) -> list[ReflectionSession]:
        query = (
            select(ReflectionSessionRow, UserRow.platform, UserRow.platform_user_id)
            .join(UserRow, UserRow.id == ReflectionSessionRow.facilitator_id)
            .where(*where)
            .execution_options(populate_existing=True)
        )
        order = ReflectionSessionRow.id.desc() if newest_first else ReflectionSessionRow.id
        rows = await self._session.execute(query.order_by(order))
        return [_session_of(row, UserKey(platform, user_id)) for row, platform, user_id in rows]

    async def _answers(self, *where: Any, with_text: bool) -> list[ReflectionAnswer]:
        rows = await self._session.execute(
            select(ReflectionAnswerRow, UserRow.platform, UserRow.platform_user_id)
            .join(UserRow, UserRow.id == ReflectionAnswerRow.user_id)
            .where(*where)
            .order_by(ReflectionAnswerRow.id)
            .execution_options(populate_existing=True)
        )
        return [
            ReflectionAnswer(
                user=UserKey(platform, user_id),
                step_id=row.step_id,
                choice=row.choice,
                text=_open_text(row.text, self._cipher) if with_text else None,
                tally=row.tally,
                shared=row.shared,
                saved=row.saved,
                at=row.at,
            )
            for row, platform, user_id in rows
        ]


async def purge_reflections(session: AsyncSession, now: datetime, max_age: timedelta) -> int:
    """See dialogs.store.Store.purge_reflections."""
    old = select(ReflectionSessionRow.id).where(
        ReflectionSessionRow.status == ReflectionStatus.ENDED.value,
        ReflectionSessionRow.ended_at < now - max_age,
    )
    answers = await count_deleted(
        session,
        delete(ReflectionAnswerRow).where(
            ReflectionAnswerRow.session_id.in_(old), ReflectionAnswerRow.saved.is_(False)
        ),
    )
    ids = (await session.scalars(old)).all()
    if ids:
        # Saved answers outlive the session: unlink them (ON DELETE SET NULL does the
        # same where foreign keys are enforced; this does not rely on it).
        await session.execute(
            update(ReflectionAnswerRow)
            .where(ReflectionAnswerRow.session_id.in_(ids))
            .values(session_id=None)
        )
        await session.execute(
            delete(ReflectionParticipantRow).where(ReflectionParticipantRow.session_id.in_(ids))
        )
        await session.execute(delete(ReflectionSessionRow).where(ReflectionSessionRow.id.in_(ids)))
    return answers


def _open_text(stored: dict[str, Any] | None, cipher: VariableCipher | None) -> str | None:
    if stored is None:
        return None
    value = decode_variables(stored, cipher).get("text")
    return None if value is None else str(value)


def _session_of(row: ReflectionSessionRow, facilitator: UserKey) -> ReflectionSession:
    return ReflectionSession(
        id=row.id,
        token=row.token,
        platform=row.platform,
        chat_id=row.chat_id,
        reflection_id=row.reflection_id,
        facilitator=facilitator,
        minutes=row.minutes,
        step_index=row.step_index,
        status=ReflectionStatus(row.status),
        step_due_at=row.step_due_at,
        remaining_seconds=row.remaining_seconds,
        timer=row.timer,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )

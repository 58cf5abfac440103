"""The reflection part of `SqlStoreSession` (dialogs.reflection.store).

A mixin, so the session stays one object with one transaction; it relies on the
session's `_session`, `_dialect`, `_cipher` and `_user_id`.

Participants and answers name their person by a member tag, not a user id
(storage.membership): the tables alone do not say who joined which reflection.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.reflection.store import (
    Participant,
    ReflectionAnswer,
    ReflectionSession,
    ReflectionStatus,
)
from dialogs.store import FollowUpStatus, UserKey
from storage.crypto import UnreadableData, VariableCipher, decode_variables, encode_variables
from storage.dialect_insert import insert_for
from storage.membership import open_member, seal_member, session_member_tag
from storage.models import (
    FollowUpRow,
    ReflectionAnswerRow,
    ReflectionParticipantRow,
    ReflectionSessionRow,
    UserRow,
)
from storage.privacy import count_deleted

log = logging.getLogger(__name__)

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
            origin_chat_id=chat_id,
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
            or_(
                ReflectionSessionRow.chat_id == chat_id,
                ReflectionSessionRow.origin_chat_id == chat_id,
            ),
            ReflectionSessionRow.status.in_(_OPEN),
        )
        # One running where it is asked about wins over one moved away from there.
        here = [session for session in found if session.chat_id == chat_id]
        return here[0] if here else found[0] if found else None

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

    async def _member(self, user: UserKey) -> str:
        return await session_member_tag(self._session, user, self._cipher)

    async def add_participant(
        self, session_id: int, user: UserKey, chat_id: str, at: datetime
    ) -> bool:
        statement = (
            insert_for(self._dialect, ReflectionParticipantRow)
            .values(
                session_id=session_id,
                member=await self._member(user),
                sealed=seal_member(user, chat_id, self._cipher),
                joined_at=at,
            )
            .on_conflict_do_nothing(
                index_elements=[
                    ReflectionParticipantRow.session_id,
                    ReflectionParticipantRow.member,
                ]
            )
            .returning(ReflectionParticipantRow.member)
        )
        return await self._session.scalar(statement) is not None

    async def participants(self, session_id: int) -> list[Participant]:
        rows = await self._session.scalars(
            select(ReflectionParticipantRow)
            .where(ReflectionParticipantRow.session_id == session_id)
            .order_by(ReflectionParticipantRow.joined_at, ReflectionParticipantRow.member)
            .execution_options(populate_existing=True)
        )
        found = []
        for row in rows:
            opened = open_member(row.sealed, self._cipher)
            if opened is None:
                # Sealed under a key no longer set: that one person gets no prompts.
                log.warning("unreadable participant skipped session=%d", session_id)
                continue
            found.append(Participant(opened[0], opened[1], row.joined_at))
        return found

    async def reflections_joined(self, user: UserKey) -> list[ReflectionSession]:
        joined = select(ReflectionParticipantRow.session_id).where(
            ReflectionParticipantRow.member == await self._member(user)
        )
        return await self._sessions(
            ReflectionSessionRow.id.in_(joined),
            ReflectionSessionRow.status.in_(_OPEN),
            newest_first=True,
        )

    async def save_answer(self, session_id: int, answer: ReflectionAnswer) -> None:
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
            member=await self._member(answer.user),
            reflection_id=reflection_id or "",
            step_id=answer.step_id,
            **values,
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    ReflectionAnswerRow.session_id,
                    ReflectionAnswerRow.member,
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
            ReflectionAnswerRow.member == await self._member(user),
            ReflectionAnswerRow.step_id == step_id,
            people={await self._member(user): user},
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
        await self._session.execute(
            update(ReflectionAnswerRow)
            .where(
                ReflectionAnswerRow.session_id == session_id,
                ReflectionAnswerRow.member == await self._member(user),
                ReflectionAnswerRow.step_id == step_id,
            )
            .values(**values)
        )

    async def answers(self, session_id: int) -> list[ReflectionAnswer]:
        # Whose each answer is comes from the session's own participants.
        people = {await self._member(p.user): p.user for p in await self.participants(session_id)}
        return await self._answers(ReflectionAnswerRow.session_id == session_id, people=people)

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

    async def _answers(
        self, *where: Any, people: dict[str, UserKey], with_text: bool = False
    ) -> list[ReflectionAnswer]:
        """Answers matching `where`; `people` maps member tags to their persons (an
        answer whose person is not there, a forgotten or unreadable one, is left out).
        With `with_text`, each answer's text, opened (None when no key opens it)."""
        rows = await self._session.scalars(
            select(ReflectionAnswerRow)
            .where(*where)
            .order_by(ReflectionAnswerRow.id)
            .execution_options(populate_existing=True)
        )
        return [
            ReflectionAnswer(
                user=people[row.member],
                step_id=row.step_id,
                choice=row.choice,
                text=_open_text(row.text, self._cipher) if with_text else None,
                tally=row.tally,
                shared=row.shared,
                saved=row.saved,
                at=row.at,
            )
            for row in rows
            if row.member in people
        ]


async def purge_reflections(session: AsyncSession, now: datetime, max_age: timedelta) -> int:
    """See dialogs.store.Store.purge_reflections. Also purges orphans: unsaved answers
    whose session is gone (left by a facilitator's /forget before it deleted them, or
    by a connection where foreign keys were not enforced)."""
    old = select(ReflectionSessionRow.id).where(
        ReflectionSessionRow.status == ReflectionStatus.ENDED.value,
        ReflectionSessionRow.ended_at < now - max_age,
    )
    orphaned = or_(
        ReflectionAnswerRow.session_id.is_(None),
        ReflectionAnswerRow.session_id.not_in(select(ReflectionSessionRow.id)),
    )
    answers = await count_deleted(
        session,
        delete(ReflectionAnswerRow).where(
            or_(ReflectionAnswerRow.session_id.in_(old), orphaned),
            ReflectionAnswerRow.saved.is_(False),
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


async def delete_member_rows(
    session: AsyncSession, user: UserKey, cipher: VariableCipher | None
) -> int:
    """A person's participant and answer rows (their /forget): found by member tag, so
    nothing needs decrypting."""
    member = await session_member_tag(session, user, cipher)
    deleted = await count_deleted(
        session, delete(ReflectionAnswerRow).where(ReflectionAnswerRow.member == member)
    )
    return deleted + await count_deleted(
        session,
        delete(ReflectionParticipantRow).where(ReflectionParticipantRow.member == member),
    )


async def delete_facilitated_answers(session: AsyncSession, facilitator_id: int) -> int:
    """Before a facilitator's sessions go with them (their /forget): the unsaved
    answers of everyone in those sessions, which ON DELETE SET NULL would otherwise
    leave behind, linked to nothing. Saved answers stay, their authors' own."""
    theirs = select(ReflectionSessionRow.id).where(
        ReflectionSessionRow.facilitator_id == facilitator_id
    )
    return await count_deleted(
        session,
        delete(ReflectionAnswerRow).where(
            ReflectionAnswerRow.session_id.in_(theirs), ReflectionAnswerRow.saved.is_(False)
        ),
    )


def _open_text(stored: dict[str, Any] | None, cipher: VariableCipher | None) -> str | None:
    if stored is None:
        return None
    try:
        value = decode_variables(stored, cipher).get("text")
    except UnreadableData:
        log.warning("unreadable reflection answer text read as empty")
        return None
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

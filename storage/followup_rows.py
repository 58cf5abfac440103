"""Reading follow-ups back as `dialogs.store.FollowUp` values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.store import FollowUp, FollowUpStatus, UserKey
from storage.crypto import VariableCipher
from storage.models import FollowUpRow, UserRow
from storage.outbound_json import decode_messages

_FOLLOWUPS = cast(Table, FollowUpRow.__table__)
# Plain columns, not ORM entities: a due follow-up's status is read again before it
# is rendered, once per follow-up of a wave, and loading an entity (identity map,
# refresh) cost more than the rest of that read.
COLUMNS = (
    _FOLLOWUPS.c.id,
    _FOLLOWUPS.c.chat_id,
    _FOLLOWUPS.c.flow_id,
    _FOLLOWUPS.c.due_at,
    _FOLLOWUPS.c.expires_at,
    _FOLLOWUPS.c.status,
    _FOLLOWUPS.c.created_at,
    _FOLLOWUPS.c.kind,
    _FOLLOWUPS.c.messages,
    UserRow.platform,
    UserRow.platform_user_id,
)


async def select_followups(
    session: AsyncSession,
    *where: ColumnElement[bool],
    cipher: VariableCipher | None,
    limit: int | None = None,
) -> list[FollowUp]:
    """Follow-ups matching `where`, oldest due first; `cipher` opens sealed messages."""
    statement = (
        select(*COLUMNS)
        .join(UserRow, UserRow.id == FollowUpRow.user_id)
        .where(*where)
        .order_by(FollowUpRow.due_at, FollowUpRow.id)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return [followup_from(row, cipher) for row in rows]


def followup_from(row: Sequence[Any], cipher: VariableCipher | None) -> FollowUp:
    """A `FollowUp` from the first `len(COLUMNS)` values of a result row."""
    (
        id_,
        chat_id,
        flow_id,
        due_at,
        expires_at,
        status,
        created_at,
        kind,
        messages,
        platform,
        platform_user_id,
    ) = row[: len(COLUMNS)]
    return FollowUp(
        id=id_,
        user=UserKey(platform=platform, user_id=platform_user_id),
        chat_id=chat_id,
        flow_id=flow_id,
        due_at=due_at,
        expires_at=expires_at,
        status=FollowUpStatus(status),
        created_at=created_at,
        kind=kind,
        messages=decode_messages(messages, cipher),
    )

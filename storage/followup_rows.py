"""Reading follow-ups back as `dialogs.store.FollowUp` values."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.store import FollowUp, FollowUpStatus, UserKey
from storage.crypto import VariableCipher
from storage.models import FollowUpRow, UserRow
from storage.outbound_json import decode_messages


async def select_followups(
    session: AsyncSession,
    *where: ColumnElement[bool],
    cipher: VariableCipher | None,
    limit: int | None = None,
) -> list[FollowUp]:
    """Follow-ups matching `where`, oldest due first; `cipher` opens sealed messages."""
    statement = (
        select(FollowUpRow, UserRow.platform, UserRow.platform_user_id)
        .join(UserRow, UserRow.id == FollowUpRow.user_id)
        .where(*where)
        .order_by(FollowUpRow.due_at, FollowUpRow.id)
        .limit(limit)
        # Bulk UPDATEs in the same session may have changed rows already loaded.
        .execution_options(populate_existing=True)
    )
    rows = (await session.execute(statement)).all()
    return [
        FollowUp(
            id=row.id,
            user=UserKey(platform=platform, user_id=platform_user_id),
            chat_id=row.chat_id,
            flow_id=row.flow_id,
            due_at=row.due_at,
            expires_at=row.expires_at,
            status=FollowUpStatus(row.status),
            created_at=row.created_at,
            kind=row.kind,
            messages=decode_messages(row.messages, cipher),
        )
        for row, platform, platform_user_id in rows
    ]

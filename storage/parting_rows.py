"""Outbox rows that belong to nobody: /forget's last words.

/forget deletes the person, and their outbox rows with them (ON DELETE CASCADE), in
the same transaction that says "Done. Everything I kept about you is deleted...".
Those words are still owed after the commit, and a kill -9 before their send must
not lose them, so they are an outbox row like any other, only with no owner
(`user_id` NULL, migration 0015): addressed by chat alone, sent and resent by
whichever worker's outbox takes them.

Nothing of the person may stay, so once such a row is settled (sent, dropped or
superseded) it is deleted, and the chat's sequence counter with it when nothing was
written to the chat after it and nothing there is still pending (/forget deleted the
counter; the last words had made a new one). A counter that has moved on belongs to
whoever wrote to the chat since, a new conversation for instance, and stays.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, delete, exists
from sqlalchemy.ext.asyncio import AsyncSession

from storage.outbound_rows import CHATS, OUTBOUND, PENDING


async def delete_settled_parting(session: AsyncSession, ids: Collection[int] | None) -> int:
    """Delete the rows with no owner among `ids` (every such row when None) that are
    no longer pending, and the counters they leave unused. Returns rows deleted."""
    conditions: list[ColumnElement[bool]] = [
        OUTBOUND.c.user_id.is_(None),
        OUTBOUND.c.status != PENDING,
    ]
    if ids is not None:
        if not ids:
            return 0
        conditions.append(OUTBOUND.c.id.in_(list(ids)))
    gone = (
        await session.execute(
            delete(OUTBOUND)
            .where(*conditions)
            .returning(OUTBOUND.c.platform, OUTBOUND.c.chat_id, OUTBOUND.c.seq)
        )
    ).all()
    for platform, chat_id, seq in gone:
        still_owed = exists().where(
            OUTBOUND.c.platform == platform,
            OUTBOUND.c.chat_id == chat_id,
            OUTBOUND.c.status == PENDING,
        )
        await session.execute(
            delete(CHATS).where(
                CHATS.c.platform == platform,
                CHATS.c.chat_id == chat_id,
                CHATS.c.last_seq == seq,
                ~still_owed,
            )
        )
    return len(gone)


__all__ = ["delete_settled_parting"]

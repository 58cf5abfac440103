"""What /metrics and /healthz read from the database: the same for every worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import FollowUpStatus
from storage.models import FollowUpRow
from storage.outbound_rows import OUTBOUND, PENDING


@dataclass(frozen=True, slots=True)
class Backlog:
    # Pending follow-ups whose due time has passed (none are, on a healthy guide).
    followups_due: int
    # Outbox rows not yet sent or given up.
    outbox_pending: int


async def backlog(engine: AsyncEngine, now: datetime) -> Backlog:
    """Two counts, each served by an index (status first)."""
    async with engine.connect() as connection:
        due = await connection.scalar(
            select(func.count())
            .select_from(FollowUpRow)
            .where(
                FollowUpRow.status == FollowUpStatus.PENDING.value,
                FollowUpRow.due_at <= now,
            )
        )
        pending = await connection.scalar(
            select(func.count()).select_from(OUTBOUND).where(OUTBOUND.c.status == PENDING)
        )
    return Backlog(int(due or 0), int(pending or 0))


async def database_answers(engine: AsyncEngine) -> None:
    """Raises when the database does not answer a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))

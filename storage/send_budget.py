"""A platform's overall cap, shared by every worker on one PostgreSQL database.

Each capped message takes the next free moment on one shared line per platform (the
`send_budgets` row): `reserve(seconds)` moves the row's `next_at` on by the message's
share of a second and says how long to wait for the moment it took. It is one
statement on one row, so concurrent workers queue on the row lock and each gets its
own moment; the moments are at least `seconds` apart whoever takes them, which is
the cap across processes. Time is the database's clock, the one clock every worker
shares. (A generic cell rate algorithm with no burst.)

Why PostgreSQL and not Redis: the workers already share the database and cannot work
without it; Redis would be a second service every worker needs, and a second point
of failure, for a statement per message at Telegram's 30 a second.

SQLite has one process per database: the outbox's in-memory window is the cap there
and this is not used.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_NOW = "extract(epoch from clock_timestamp())"
# Committed without waiting for the WAL's flush (`synchronous_commit` off for this
# transaction only, set in the statement so it stays one round trip). A commit that
# waited on a slow disk answered every worker late at once: each then waited out its
# moment from the late answer, and their messages went together (six within 28 ms at
# the fake after a 210 ms silence, 32 in that second). Losing the newest moments in a
# crash of the database itself hands them out again once: a second's burst, rarer
# than the slow flushes this avoids.
_RESERVE = text(
    f"""
    insert into send_budgets as b (platform, next_at)
    select :platform, {_NOW} + :seconds
    from (select set_config('synchronous_commit', 'off', true)) as unflushed
    on conflict (platform) do update
        set next_at = greatest(b.next_at, {_NOW}) + :seconds
    returning b.next_at - :seconds - {_NOW}
    """
)


class PostgresSendBudget:
    """The shared line of one platform (see the module)."""

    def __init__(self, engine: AsyncEngine, platform: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("a shared send budget needs PostgreSQL")
        self._engine = engine
        self._platform = platform

    async def reserve(self, seconds: float) -> float:
        """Take the next free moment for something costing `seconds` of the line;
        how long until that moment (0 when it is now)."""
        async with self._engine.begin() as connection:
            wait = await connection.scalar(
                _RESERVE, {"platform": self._platform, "seconds": seconds}
            )
        return max(0.0, float(wait or 0.0))

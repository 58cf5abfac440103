"""Wake-ups between workers on PostgreSQL: `NOTIFY` when work appears, `LISTEN` for it.

A worker that schedules a follow-up (or leaves outbox rows for another worker to send)
says so on a channel of its database, inside the transaction that wrote the rows:
PostgreSQL delivers a notification at commit, and never for a rollback. Every worker
listens on one connection of its own (`PostgresWakeups`) and tells its scheduler, so
a follow-up scheduled on one worker is dispatched on time by any worker, even when the
one that scheduled it has died since.

A notification is a hint, never the truth: the rows are. One lost (the listener's
connection dropped and came back) is covered by a round at once after every
reconnect (`Woken.missed_some`) and, always, by the scheduler's periodic sweep.

SQLite has one process per database, whose scheduler the engine nudges directly:
there the announcements do nothing and `NoWakeups` listens to nothing.

Channels are named after the schema (`current_schema()`), so deployments or tests
sharing one database in different schemas do not wake each other. Payloads carry a
platform and a time, nothing about a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

FOLLOWUP = "followup"
UNSENT = "unsent"


def _channel(kind: str) -> str:
    """The channel of a kind of wake-up (`kind` a bound parameter), in SQL. Channel
    names are identifiers: at most 63 bytes."""
    return f"left('pausecheck_' || {kind} || '_' || current_schema(), 63)"


_NOTIFY = text(f"select pg_notify({_channel(':kind')}, :payload)")
# The listener's query, in psycopg's own parameter style.
_CHANNELS = f"select {_channel('%s')}, {_channel('%s')}"
_SEPARATOR = "|"
# How long the listener waits for a notification before it checks its connection.
_IDLE_CHECK_SECONDS = 30.0
_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
_START_TIMEOUT_SECONDS = 10.0


async def announce_followup(
    session: AsyncSession, dialect: str, platform: str, due_at: datetime
) -> None:
    """In the transaction that scheduled (or moved) a follow-up of someone on
    `platform`: every worker hears of `due_at` when it commits."""
    if dialect == "postgresql":
        payload = f"{platform}{_SEPARATOR}{due_at.isoformat()}"
        await session.execute(_NOTIFY, {"kind": FOLLOWUP, "payload": payload})


async def announce_unsent(session: AsyncSession, dialect: str, platforms: set[str]) -> None:
    """In the transaction that left pending outbox rows to whichever worker sends for
    their platform: those workers take them at once, not after the next sweep."""
    if dialect == "postgresql":
        for platform in sorted(platforms):
            await session.execute(_NOTIFY, {"kind": UNSENT, "payload": platform})


class Woken(Protocol):
    """What a listener tells (the dispatch scheduler)."""

    def followup_scheduled(self, platform: str, due_at: datetime) -> None: ...

    def outbox_unsent(self, platform: str) -> None: ...

    def missed_some(self) -> None:
        """Notifications may have been lost (the connection was down): look now."""
        ...


class Wakeups(Protocol):
    async def start(self, target: Woken) -> None:
        """Listen; returns once listening (or once it gave up trying, for now)."""
        ...

    async def close(self) -> None: ...


class NoWakeups:
    """One process per database (SQLite): the engine's own nudges are enough."""

    async def start(self, target: Woken) -> None:
        return None

    async def close(self) -> None:
        return None


def wakeups_for(url: str) -> Wakeups:
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresWakeups(url)
    return NoWakeups()


class PostgresWakeups:
    """One connection of its own that LISTENs; reconnects (backing off up to 5 s)
    whenever it is lost, and then asks for a round at once."""

    def __init__(self, url: str, *, retry_seconds: tuple[float, ...] = _RETRY_SECONDS) -> None:
        # libpq's form of the URL (no `+psycopg`), search path options included.
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        # The server process of the listening connection, while there is one.
        self.backend_pid: int | None = None
        # How many times it has started listening (1 + reconnections).
        self.connections = 0

    async def start(self, target: Woken) -> None:
        if self._task is not None:
            raise RuntimeError("already listening")
        self._task = asyncio.create_task(self._run(target), name="pg-wakeups")
        try:
            await asyncio.wait_for(self._listening.wait(), _START_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("wake-up listener not connected yet; the sweep covers meanwhile")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, target: Woken) -> None:
        failures = 0
        while True:
            try:
                await self._listen(target)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection is lost: psycopg.OperationalError
                log.warning("wake-up listener lost its connection: %s", type(exc).__name__)
            self._listening.clear()
            self.backend_pid = None
            await asyncio.sleep(self._retry[min(failures, len(self._retry) - 1)])
            failures += 1

    async def _listen(self, target: Woken) -> None:
        import psycopg
        from psycopg import sql

        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            cursor = await conn.execute(_CHANNELS, (FOLLOWUP, UNSENT))
            channels: Any = await cursor.fetchone()
            followup_channel, unsent_channel = channels
            for channel in (followup_channel, unsent_channel):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.backend_pid = conn.info.backend_pid
            self.connections += 1
            self._listening.set()
            if self.connections > 1:
                target.missed_some()
            while True:
                async for note in conn.notifies(timeout=_IDLE_CHECK_SECONDS):
                    _deliver(target, note.channel == followup_channel, note.payload)
                # Quiet for a while: a connection that died without a word (a lost
                # machine) only shows when used.
                await conn.execute("select 1")


def _deliver(target: Woken, followup: bool, payload: str) -> None:
    try:
        if followup:
            platform, _, when = payload.partition(_SEPARATOR)
            target.followup_scheduled(platform, datetime.fromisoformat(when))
        else:
            target.outbox_unsent(payload)
    except Exception:
        # A malformed payload (another version of the guide?) must not stop listening.
        log.exception("wake-up not understood")

"""SQLAlchemy's aiosqlite driver, with a write transaction's statements run at once.

aiosqlite runs every call on its connection's thread and hands the result back to the
event loop; SQLAlchemy's adapter makes four such calls for a statement that returns
rows (open a cursor, execute, fetch all, close). On SQLite this process's
transactions take turns on one write lock (storage.write_lock), and every hand-off of
the transaction holding it waits for the thread to be scheduled and then for the
event loop to come round to it. With 200 people starting /pause at once
(bench/telegram_throughput.py, table (b)) a turn made about 35 hand-offs, held the
lock 16 to 25 ms of which about 4 ms was work, and the lock was held all the time:
it set the pace for everyone.

So, on the event loop's own thread:
- a statement inside a write transaction (after BEGIN IMMEDIATE, which holds
  SQLite's write lock, so in WAL mode nothing it does waits for another
  connection) runs at once, as plain sqlite3 would: microseconds of SQLite;
- BEGIN IMMEDIATE itself is tried at once without waiting (busy_timeout 0); only
  when another process holds the write lock does it go to the thread, to wait there
  with the connection's own busy_timeout, never blocking the loop;
- a long transaction (a wave's batch of follow-ups) still lets the other tasks run
  every `SHARE_THE_LOOP_EVERY` seconds, as its hand-offs used to;
- everything else goes to the connection's thread, one hand-off per statement
  (cursor, execute, rows, description, row count, last row id, cursor closed), and
  so does COMMIT (SQLAlchemy's own code): its fsync never blocks the loop.

Only which thread calls sqlite3 changes, never what is run or in what order: one
connection runs one statement at a time (the adapter's mutex), and sqlite3 is built
serialized (`sqlite3.threadsafety == 3`), so the connection is opened with
check_same_thread=False. This reads aiosqlite's `_execute` and `_conn`, as
SQLAlchemy's adapter does itself (its isolation level setter uses aiosqlite's queue);
both versions are pinned in constraints.txt.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

# What SQLAlchemy reads after a statement: description, row count, last row id, rows.
_Outcome = tuple[Any, int, int | None, list[Any] | None]
_Run = Callable[[sqlite3.Connection, Any, Any], _Outcome]
_BEGIN = "BEGIN IMMEDIATE"


class _Ran:
    """Stands in for the DBAPI cursor once its statement ran (the real cursor is
    closed by then): what SQLAlchemy reads from it."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self) -> None:
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1


def _run(connection: sqlite3.Connection, operation: Any, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: Any, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, None
    finally:
        cursor.close()


def _begin_now(connection: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if SQLite's write lock is free right now; False if another
    connection holds it (nothing begun)."""
    (timeout,) = connection.execute("PRAGMA busy_timeout").fetchone()
    connection.execute("PRAGMA busy_timeout=0")
    try:
        connection.execute(_BEGIN)
        return True
    except sqlite3.OperationalError as exc:
        if connection.in_transaction or exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        return False
    finally:
        connection.execute(f"PRAGMA busy_timeout={int(timeout)}")


# Statements run at once keep the loop to themselves; a long transaction (a wave's
# batch of follow-ups) lets the other tasks run every this many seconds.
SHARE_THE_LOOP_EVERY = 0.005
# When the statements run since the loop last had control began (None: it has had it).
_holding_since: float | None = None


def _loop_came_back() -> None:
    global _holding_since
    _holding_since = None


async def _share_the_loop() -> None:
    """Before a statement runs at once: if statements have kept the loop for a while,
    let the other tasks run first."""
    global _holding_since
    now = time.perf_counter()
    if _holding_since is not None and now - _holding_since < SHARE_THE_LOOP_EVERY:
        return
    if _holding_since is not None:
        await asyncio.sleep(0)
    _holding_since = time.perf_counter()
    # Runs as soon as the loop has control again, whoever gave it back.
    asyncio.get_running_loop().call_soon(_loop_came_back)


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> Any:
        return None  # a cursor is opened for each statement, where it runs

    def _aenter_cursor(self, cursor: Any) -> Any:
        return _Ran()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._ran(_run, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._ran(_run_many, operation, seq_of_parameters)

    async def _ran(self, run: _Run, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            raw = connection._conn
            if raw.in_transaction:
                await _share_the_loop()
                outcome = run(raw, operation, parameters)
            elif operation == _BEGIN and not parameters and _begin_now(raw):
                outcome = (None, -1, raw.cursor().lastrowid, None)
            else:
                outcome = await connection._execute(  # type: ignore[no-untyped-call]
                    run, raw, operation, parameters
                )
        description, rowcount, lastrowid, rows = outcome
        ran: _Ran = self._cursor  # type: ignore[assignment]
        ran.description, ran.rowcount, ran.lastrowid = description, rowcount, lastrowid
        if rows is not None:
            self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing to close: each statement's cursor was closed where it ran."""

    def close(self) -> None:
        self._rows.clear()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor

    def rollback(self) -> None:
        # The pool rolls back every connection it gets back, inside the caller's
        # hold on the write lock: with no transaction open there is nothing to do
        # (sqlite3's own rollback checks the same), so no hand-off for it.
        if self._connection._connection is not None and not self._connection._conn.in_transaction:
            return
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        # The statements above may run on the loop's thread (see the docstring).
        kw["check_same_thread"] = False
        adapted = super().connect(*arg, **kw)
        # The same object with this module's cursors (the class adds no state).
        adapted.__class__ = OneHopConnection
        return adapted


def one_hop_module() -> OneHopDBAPI:
    """The DBAPI module for `create_async_engine(..., module=...)` on aiosqlite."""
    return OneHopDBAPI(aiosqlite, sqlite3)

"""storage.one_hop_sqlite: a write transaction's statements run on the event loop's
thread without a hand-off to aiosqlite's thread; BEGIN IMMEDIATE while another
process holds SQLite's write lock waits on the thread, never blocking the loop; the
results are what plain aiosqlite gives (SQLite only: PostgreSQL has its own
driver)."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import one_hop_sqlite
from storage.engine import create_engine_for


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each function aiosqlite ran on its thread."""
    names: list[str] = []
    # aiosqlite leaves this private method unannotated.
    handed = cast(Callable[..., Awaitable[Any]], aiosqlite.Connection._execute)

    async def counted(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        names.append(getattr(fn, "__name__", repr(fn)))
        return await handed(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return names


async def test_a_write_transaction_hands_off_only_its_commit(
    engine: AsyncEngine, hand_offs: list[str]
) -> None:
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")  # connected, outside the count
        await connection.commit()
        hand_offs.clear()
        async with connection.begin():
            for n in range(5):
                await connection.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (f"v{n}",))
            rows = (await connection.exec_driver_sql("SELECT v FROM t ORDER BY id")).all()
    # BEGIN IMMEDIATE (the lock was free), five inserts and a select: all at once;
    # only COMMIT (its fsync) went to the thread. Plain aiosqlite made about 25.
    assert hand_offs == ["commit"]
    assert [v for (v,) in rows] == [f"v{n}" for n in range(5)]


async def test_results_read_as_they_do_through_aiosqlite(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.exec_driver_sql("INSERT INTO t (v) VALUES ('a')")
        assert inserted.lastrowid == 1
        await connection.exec_driver_sql("INSERT INTO t (v) VALUES ('b'), ('c')")
        updated = await connection.exec_driver_sql("UPDATE t SET v = v || '!' WHERE id > 1")
        assert updated.rowcount == 2
        result = await connection.exec_driver_sql("SELECT id, v FROM t ORDER BY id")
        assert list(result.keys()) == ["id", "v"]
        assert [tuple(row) for row in result] == [(1, "a"), (2, "b!"), (3, "c!")]
    async with engine.connect() as connection:
        # Outside a transaction (a read, a pragma): on the thread, same results.
        assert (await connection.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 3
        with pytest.raises(Exception, match="no such table"):
            await connection.exec_driver_sql("SELECT * FROM missing")


async def test_begin_waits_for_another_process_on_the_thread_not_on_the_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> float:
        async with engine.begin() as connection:
            began = time.monotonic()
            await connection.exec_driver_sql("INSERT INTO t (v) VALUES ('after')")
            return began

    ticking = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    try:
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock (busy_timeout, 5 s)...
        assert ticks >= 10  # ...while the loop runs on
        released = time.monotonic()
        other.execute("COMMIT")
        began = await asyncio.wait_for(writing, 5)
        assert began >= released
    finally:
        ticking.cancel()
        other.close()
    async with engine.connect() as connection:
        assert (await connection.exec_driver_sql("SELECT v FROM t")).scalar() == "after"
        # The connection's own busy_timeout is back after the attempt without one.
        assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000


@pytest.mark.parametrize("every", [0.0, 60.0])
async def test_a_long_transaction_shares_the_loop(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, every: float
) -> None:
    # Statements run at once keep the loop; after `every` seconds of them the other
    # tasks get a turn (a wave's long batch must not stall everyone's replies).
    monkeypatch.setattr(one_hop_sqlite, "SHARE_THE_LOOP_EVERY", every)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("INSERT INTO t (v) VALUES ('first')")
            before = ticks
            for n in range(50):
                await connection.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (f"v{n}",))
            during = ticks - before
    finally:
        ticking.cancel()
    if every:
        assert during == 0  # a short run of statements goes straight through
    else:
        assert during >= 45  # the loop had a turn before (nearly) each of them

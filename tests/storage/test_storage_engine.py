import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import ConversationState, UserKey
from storage import StorageError, open_store
from storage.engine import create_engine_for
from storage.models import UserRow

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")


async def _pragma(engine: AsyncEngine, name: str) -> object:
    async with engine.connect() as connection:
        return (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()


async def test_file_database_gets_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'db.sqlite'}")
    try:
        assert await _pragma(engine, "journal_mode") == "wal"
        assert await _pragma(engine, "foreign_keys") == 1
        assert await _pragma(engine, "busy_timeout") == 5000
    finally:
        await engine.dispose()
    assert (tmp_path / "nested" / "dir" / "db.sqlite").is_file()


async def test_memory_database_is_shared_by_all_sessions() -> None:
    store = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        async with store.session() as session:
            assert await session.claim_event("e1", NOW, ALICE)
        async with store.session() as session:
            assert not await session.claim_event("e1", NOW, ALICE)
    finally:
        await store.close()


async def test_a_transaction_takes_the_write_lock_when_it_begins(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine_for(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            # Only a read so far: a deferred BEGIN would hold no lock at this point.
            await connection.exec_driver_sql("SELECT 1")
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    finally:
        await engine.dispose()


async def test_corrupt_file_raises_storage_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StorageError, match=str(path)):
        await open_store(f"sqlite+aiosqlite:///{path}")


async def test_corrupt_file_with_valid_header_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    with pytest.raises(StorageError, match=str(path)):
        await open_store(f"sqlite+aiosqlite:///{path}")


async def test_uncreatable_directory_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "sub" / "db.sqlite"
    with pytest.raises(StorageError, match=str(path)):
        await open_store(f"sqlite+aiosqlite:///{path}")


async def test_debug_logs_and_errors_hold_no_personal_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    person = UserKey("telegram", "unique-user-okapi")
    store = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        with caplog.at_level(logging.DEBUG):
            async with store.session() as session:
                await session.save_state(
                    person, ConversationState(variables={"a": "unique-answer-narwhal"}), NOW
                )
            with pytest.raises(IntegrityError) as raised:
                async with store.engine.begin() as connection:
                    await connection.execute(
                        insert(UserRow).values(
                            platform="telegram",
                            platform_user_id="unique-user-okapi",
                            created_at=NOW,
                            last_seen_at=NOW,
                        )
                    )
    finally:
        await store.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in ("okapi", "narwhal"):
        assert text not in logged
        assert text not in str(raised.value)

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import Profile, UserKey
from storage import SqlStore, upgrade_database
from storage.engine import create_engine_for
from tests.storage.alembic_steps import migrate_to

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STAMP = "2026-01-05 12:00:00.000000"
CHILD_TABLES = ("conversations", "journal", "followups", "processed_events")


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            table: (await connection.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("users", *CHILD_TABLES)
        }


async def _engine_at_0001_with_data() -> AsyncEngine:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(migrate_to("0001"))
        for sql in (
            "INSERT INTO users (platform, platform_user_id, created_at, last_seen_at)"
            f" VALUES ('telegram', 'alice', '{STAMP}', '{STAMP}')",
            "INSERT INTO conversations (user_id, variables, turn, content_version, chat_id,"
            f" updated_at) VALUES (1, '{{}}', 3, 'v1', 'c1', '{STAMP}')",
            "INSERT INTO journal (user_id, at, flow_id, node_id, kind, value)"
            f" VALUES (1, '{STAMP}', 'f', 'n', 'choice', 'yes')",
            "INSERT INTO followups (user_id, chat_id, flow_id, due_at, expires_at, status,"
            " dedupe_key, created_at, updated_at) VALUES (1, 'c1', 'f',"
            f" '{STAMP}', '{STAMP}', 'pending', 'k', '{STAMP}', '{STAMP}')",
            f"INSERT INTO processed_events (event_key, processed_at) VALUES ('e1', '{STAMP}')",
        ):
            await connection.exec_driver_sql(sql)
    return engine


async def test_upgrade_keeps_every_existing_row() -> None:
    # Recreating `users` on SQLite would empty every child table by cascade.
    engine = await _engine_at_0001_with_data()
    try:
        await upgrade_database(engine)
        assert await _counts(engine) == dict.fromkeys(("users", *CHILD_TABLES), 1)
        store = SqlStore(engine)
        async with store.session() as session:
            assert await session.load_profile(UserKey("telegram", "alice")) == Profile()
            state = await session.load_state(UserKey("telegram", "alice"), T0)
            # The event claimed before 0002 has no owner and is still a duplicate.
            assert not await session.claim_event("e1", T0, UserKey("telegram", "alice"))
        assert state.turn == 3
    finally:
        await engine.dispose()


async def test_downgrade_to_0001_keeps_every_existing_row() -> None:
    engine = await _engine_at_0001_with_data()
    try:
        await upgrade_database(engine)
        async with engine.begin() as connection:
            await connection.run_sync(migrate_to("0001", down=True))
        assert await _counts(engine) == dict.fromkeys(("users", *CHILD_TABLES), 1)
        async with engine.connect() as connection:
            columns = await connection.exec_driver_sql("PRAGMA table_info(users)")
            assert "unsafe" not in {row._mapping["name"] for row in columns}
    finally:
        await engine.dispose()

"""0009 keeps where a group reflection started: existing sessions started where they
are now, and a downgrade drops the column again."""

from __future__ import annotations

from storage.engine import create_engine_for
from tests.storage.alembic_steps import migrate_to

STAMP = "2026-01-05 12:00:00.000000"


async def test_existing_sessions_started_where_they_are() -> None:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate_to("0008"))
            await connection.exec_driver_sql(
                "INSERT INTO users (platform, platform_user_id, created_at, last_seen_at)"
                f" VALUES ('discord', 'mod', '{STAMP}', '{STAMP}')"
            )
            for token, chat in (("t1", "thread-1"), ("t2", "channel-2")):
                await connection.exec_driver_sql(
                    "INSERT INTO reflection_sessions (token, platform, chat_id, reflection_id,"
                    " facilitator_id, minutes, step_index, status, created_at) VALUES"
                    f" ('{token}', 'discord', '{chat}', 'noticing', 1, 3, 0, 'running',"
                    f" '{STAMP}')"
                )
            await connection.run_sync(migrate_to("0009"))
            rows = await connection.exec_driver_sql(
                "SELECT token, origin_chat_id FROM reflection_sessions ORDER BY token"
            )
            assert [tuple(r) for r in rows] == [("t1", "thread-1"), ("t2", "channel-2")]

            await connection.run_sync(migrate_to("0008", down=True))
            columns = await connection.exec_driver_sql("PRAGMA table_info(reflection_sessions)")
            assert "origin_chat_id" not in {r._mapping["name"] for r in columns}
            tokens = await connection.exec_driver_sql("SELECT count(*) FROM reflection_sessions")
            assert tokens.scalar_one() == 2
    finally:
        await engine.dispose()

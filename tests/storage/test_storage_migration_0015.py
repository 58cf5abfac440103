"""0015 lets an outbox row belong to nobody (/forget's last words): the rebuilt SQLite
table keeps every row and the ids it has given out, and a downgrade drops the rows
with no owner before making the owner required again."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from storage.engine import create_engine_for
from tests.storage.alembic_steps import migrate_to

STAMP = "2026-01-05 12:00:00.000000"


def _row(id_: int | None, user_id: str) -> str:
    given = "" if id_ is None else f"{id_}, "
    return (
        "INSERT INTO outbound ("
        + ("id, " if id_ is not None else "")
        + "user_id, platform, chat_id, recipient, private, seq, kind, status, message,"
        " created_at, claimed_at, claimed_by, updated_at) VALUES ("
        f"{given}{user_id}, 'telegram', '42', '42', 1, 1, 'reply', 'pending', NULL,"
        f" '{STAMP}', '{STAMP}', 'w', '{STAMP}')"
    )


async def test_rows_and_given_ids_survive_and_the_owner_becomes_optional() -> None:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate_to("0014"))
            await connection.exec_driver_sql(
                "INSERT INTO users (platform, platform_user_id, created_at, last_seen_at)"
                f" VALUES ('telegram', '42', '{STAMP}', '{STAMP}')"
            )
            for id_ in (1, 2, 3):
                await connection.exec_driver_sql(_row(id_, "1"))
            # The newest row is gone: its id must never be given again.
            await connection.exec_driver_sql("DELETE FROM outbound WHERE id = 3")
            with pytest.raises(IntegrityError):
                async with connection.begin_nested():
                    await connection.exec_driver_sql(_row(None, "NULL"))

            await connection.run_sync(migrate_to("0015"))
            kept = await connection.exec_driver_sql("SELECT id, user_id FROM outbound ORDER BY id")
            assert [tuple(r) for r in kept] == [(1, 1), (2, 1)]
            await connection.exec_driver_sql(_row(None, "NULL"))
            newest = await connection.exec_driver_sql(
                "SELECT id FROM outbound WHERE user_id IS NULL"
            )
            assert newest.scalar_one() == 4

            await connection.run_sync(migrate_to("0014", down=True))
            left = await connection.exec_driver_sql("SELECT id FROM outbound ORDER BY id")
            assert [r[0] for r in left] == [1, 2]
            with pytest.raises(IntegrityError):
                async with connection.begin_nested():
                    await connection.exec_driver_sql(_row(None, "NULL"))
    finally:
        await engine.dispose()

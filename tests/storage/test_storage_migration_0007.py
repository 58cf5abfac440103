"""Reflection rows written before 0007 survive it, named by member tag and no longer
by user id (the tables alone do not say who joined what), and a downgrade back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import UserKey
from storage import SqlStore, upgrade_database
from storage.engine import create_engine_for
from tests.storage.alembic_steps import migrate_to

STAMP = "2026-01-05 12:00:00.000000"
ANN = UserKey("telegram", "ann")


@pytest.fixture
async def engine_at_0006() -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(migrate_to("0006"))
        for sql in (
            "INSERT INTO users (id, platform, platform_user_id, created_at, last_seen_at)"
            f" VALUES (1, 'telegram', 'mod', '{STAMP}', '{STAMP}'),"
            f" (2, 'telegram', 'ann', '{STAMP}', '{STAMP}')",
            "INSERT INTO reflection_sessions (id, token, platform, chat_id, reflection_id,"
            " facilitator_id, minutes, step_index, status, created_at) VALUES"
            f" (1, 'tok', 'telegram', '-100', 'noticing', 1, 3, 0, 'running', '{STAMP}')",
            "INSERT INTO reflection_participants (session_id, user_id, chat_id, joined_at)"
            f" VALUES (1, 2, 'ann-chat', '{STAMP}')",
            "INSERT INTO reflection_answers (session_id, user_id, reflection_id, step_id,"
            " choice, text, tally, shared, saved, at) VALUES (1, 2, 'noticing', 'alarm',"
            f" 'reach', '{{\"text\": \"my words\"}}', 'contact', 0, 1, '{STAMP}')",
        ):
            await connection.exec_driver_sql(sql)
    yield engine
    await engine.dispose()


async def test_rows_keep_their_person_by_tag_and_lose_the_user_id(
    engine_at_0006: AsyncEngine,
) -> None:
    engine = engine_at_0006
    await upgrade_database(engine)
    async with engine.connect() as connection:
        participant = (
            (await connection.exec_driver_sql("SELECT * FROM reflection_participants"))
            .one()
            ._mapping
        )
        answer = (await connection.exec_driver_sql("SELECT * FROM reflection_answers")).one()
    assert "user_id" not in participant and "user_id" not in answer._mapping
    assert len(participant["member"]) == 64  # an HMAC, not an id
    assert answer._mapping["member"] == participant["member"]
    store = SqlStore(engine)
    async with store.session() as session:
        [person] = await session.participants(1)
        assert (person.user, person.chat_id) == (ANN, "ann-chat")
        kept = await session.get_answer(1, ANN, "alarm")
        assert kept is not None and kept.text == "my words" and kept.saved
        assert [s.token for s in await session.reflections_joined(ANN)] == ["tok"]


async def test_a_downgrade_maps_the_tags_back_to_users(engine_at_0006: AsyncEngine) -> None:
    engine = engine_at_0006
    await upgrade_database(engine)
    async with engine.begin() as connection:
        await connection.run_sync(migrate_to("0006", down=True))
    async with engine.connect() as connection:
        participants = (
            await connection.exec_driver_sql(
                "SELECT session_id, user_id, chat_id FROM reflection_participants"
            )
        ).all()
        answers = (
            await connection.exec_driver_sql("SELECT user_id, step_id FROM reflection_answers")
        ).all()
    assert [tuple(p) for p in participants] == [(1, 2, "ann-chat")]
    assert [tuple(a) for a in answers] == [(2, "alarm")]

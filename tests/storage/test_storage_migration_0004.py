"""Data written at revision 0003 survives 0004 (users' timezone -> zone, follow-up
kinds and messages), and a downgrade back to 0003."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import FollowUpStatus, Profile, UserKey
from storage import SqlStore, upgrade_database
from storage.engine import create_engine_for
from tests.storage.alembic_steps import migrate_to

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STAMP = "2026-01-05 12:00:00.000000"
TABLES = ("users", "conversations", "journal", "followups", "processed_events", "referrals")
ALICE = UserKey("telegram", "alice")
BOB = UserKey("telegram", "bob")


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            table: (await connection.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(f"PRAGMA table_info({table})")
        return {row._mapping["name"] for row in rows}


@pytest.fixture
async def engine_at_0003() -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(migrate_to("0003"))
        for sql in (
            # Alice had her timezone set by hand; Bob has the column default.
            "INSERT INTO users (platform, platform_user_id, timezone, created_at, last_seen_at,"
            " consent_at, adult, country, unsafe, screened, role) VALUES ('telegram', 'alice',"
            f" 'Europe/Paris', '{STAMP}', '{STAMP}', '{STAMP}', 1, 'FR', 0, 1, 'space')",
            "INSERT INTO users (platform, platform_user_id, created_at, last_seen_at)"
            f" VALUES ('telegram', 'bob', '{STAMP}', '{STAMP}')",
            "INSERT INTO conversations (user_id, variables, turn, content_version, chat_id,"
            f" updated_at) VALUES (1, '{{}}', 3, 'v1', 'c1', '{STAMP}')",
            "INSERT INTO journal (user_id, at, flow_id, node_id, kind, value)"
            f" VALUES (1, '{STAMP}', 'f', 'n', 'choice', 'yes')",
            "INSERT INTO followups (user_id, chat_id, flow_id, due_at, expires_at, status,"
            " dedupe_key, created_at, updated_at) VALUES (1, 'c1', 'f',"
            f" '{STAMP}', '{STAMP}', 'pending', 'k1', '{STAMP}', '{STAMP}')",
            # Claimed by a dispatcher that was running when the upgrade happened.
            "INSERT INTO followups (user_id, chat_id, flow_id, due_at, expires_at, status,"
            " dedupe_key, created_at, updated_at, claimed_at) VALUES (2, 'c2', 'f',"
            f" '{STAMP}', '{STAMP}', 'claimed', 'k2', '{STAMP}', '{STAMP}', '{STAMP}')",
            "INSERT INTO processed_events (event_key, processed_at, user_id)"
            f" VALUES ('e1', '{STAMP}', 1)",
            "INSERT INTO referrals (day, country, signal, count)"
            " VALUES ('2026-01-05', 'FR', 'crisis', 2)",
        ):
            await connection.exec_driver_sql(sql)
    yield engine
    await engine.dispose()


async def test_upgrade_keeps_every_row_and_moves_a_set_timezone_to_zone(
    engine_at_0003: AsyncEngine,
) -> None:
    before = await _counts(engine_at_0003)
    await upgrade_database(engine_at_0003)

    assert await _counts(engine_at_0003) == before
    assert "timezone" not in await _columns(engine_at_0003, "users")
    store = SqlStore(engine_at_0003)
    async with store.session() as session:
        alice = await session.load_profile(ALICE)
        bob = await session.load_profile(BOB)
        [pending] = await session.pending_followups(ALICE)
        state = await session.load_state(ALICE, T0)
        assert not await session.claim_event("e1", T0, ALICE)
    assert alice == Profile(
        consent_at=T0, adult=True, country="FR", screened=True, role="space", zone="Europe/Paris"
    )
    assert bob == Profile()
    assert state.turn == 3
    assert (pending.kind, pending.messages) == ("once", ())
    # The claim left behind by the old dispatcher is recovered as usual.
    assert await store.recover(T0 + timedelta(hours=1), timedelta(minutes=10)) == []
    async with store.session() as session:
        [bobs] = await session.pending_followups(BOB)
    assert (bobs.status, bobs.kind) == (FollowUpStatus.PENDING, "once")


async def test_downgrade_to_0003_keeps_every_row_and_the_zone(
    engine_at_0003: AsyncEngine,
) -> None:
    before = await _counts(engine_at_0003)
    await upgrade_database(engine_at_0003)
    store = SqlStore(engine_at_0003)
    async with store.session() as session:
        await session.save_profile(BOB, Profile(zone="Asia/Tokyo", checkin_cadence="daily"))

    async with engine_at_0003.begin() as connection:
        await connection.run_sync(migrate_to("0003", down=True))

    assert await _counts(engine_at_0003) == before
    users = await _columns(engine_at_0003, "users")
    assert "timezone" in users
    assert not {"zone", "checkin_cadence", "unreachable_at"} & users
    assert not {"kind", "messages"} & await _columns(engine_at_0003, "followups")
    async with engine_at_0003.connect() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT platform_user_id, timezone, role FROM users ORDER BY id"
        )
        assert [tuple(row) for row in rows] == [
            ("alice", "Europe/Paris", "space"),
            ("bob", "Asia/Tokyo", None),
        ]

    # And up again: nothing lost on the round trip.
    await upgrade_database(engine_at_0003)
    assert await _counts(engine_at_0003) == before
    async with store.session() as session:
        assert (await session.load_profile(BOB)).zone == "Asia/Tokyo"
        assert (await session.load_profile(ALICE)).zone == "Europe/Paris"

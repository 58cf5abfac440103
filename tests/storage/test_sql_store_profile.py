from dataclasses import fields
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import Profile, UserKey
from storage import SqlStore
from storage.models import Base, ProcessedEventRow, ReferralCountRow, UserRow

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")
BOB = UserKey("telegram", "bob")
PARIS = timezone(timedelta(hours=1))


def _full_profile() -> Profile:
    # Every field away from its default, and times given in another offset.
    return Profile(
        consent_at=datetime(2026, 1, 5, 13, 0, tzinfo=PARIS),
        adult=True,
        country="GB",
        crisis_at=T0 + timedelta(minutes=1),
        unsafe=True,
        screened=True,
        session_started_at=T0 + timedelta(minutes=2),
        last_active_at=T0 + timedelta(minutes=3),
        reminded_at=T0 + timedelta(minutes=4),
        role="space",
        zone="America/Argentina/ComodRivadavia",
        quiet_start="22:30",
        quiet_end="07:15",
        checkin_cadence="weekly",
        checkin_time="19:00",
        checkin_weekday=6,
        checkin_paused_until=datetime(2026, 1, 12, 9, 0, tzinfo=PARIS),
        unreachable_at=T0 + timedelta(minutes=5),
    )


async def _total_rows(engine: AsyncEngine) -> int:
    total = 0
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            total += await connection.scalar(select(func.count()).select_from(table)) or 0
    return total


def test_every_profile_field_has_a_users_column() -> None:
    columns = set(UserRow.__table__.columns.keys())
    assert {field.name for field in fields(Profile)} <= columns


async def test_profile_round_trip(store: SqlStore) -> None:
    profile = _full_profile()
    async with store.session() as session:
        await session.save_profile(ALICE, profile)
    async with store.session() as session:
        loaded = await session.load_profile(ALICE)
    assert loaded == profile
    for field in fields(Profile):
        value = getattr(loaded, field.name)
        if isinstance(value, datetime):
            assert value.tzinfo is UTC, field.name
    assert loaded.consent_at is not None
    assert loaded.consent_at.hour == 12
    assert loaded.checkin_paused_until == datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


def test_the_full_profile_sets_every_field() -> None:
    # Guards the round trip above: a field left at its default proves nothing.
    full, empty = _full_profile(), Profile()
    assert [
        f.name for f in fields(Profile) if getattr(full, f.name) == getattr(empty, f.name)
    ] == []


async def test_saving_the_empty_profile_clears_every_field(store: SqlStore) -> None:
    async with store.session() as session:
        await session.save_profile(ALICE, _full_profile())
    async with store.session() as session:
        await session.save_profile(ALICE, Profile())
    async with store.session() as session:
        assert await session.load_profile(ALICE) == Profile()


async def test_save_profile_only_touches_that_user(store: SqlStore) -> None:
    async with store.session() as session:
        await session.save_profile(ALICE, _full_profile())
        await session.save_profile(BOB, Profile(country="FR"))
    async with store.session() as session:
        assert await session.load_profile(ALICE) == _full_profile()
        assert await session.load_profile(BOB) == Profile(country="FR")


async def test_profile_is_seen_within_the_same_session(store: SqlStore) -> None:
    async with store.session() as session:
        assert await session.load_profile(ALICE) == Profile()
        await session.save_profile(ALICE, Profile(unsafe=True))
        assert await session.load_profile(ALICE) == Profile(unsafe=True)


async def test_load_profile_of_an_unknown_user_creates_nothing(
    store: SqlStore, engine: AsyncEngine
) -> None:
    async with store.session() as session:
        assert await session.load_profile(ALICE) == Profile()
    assert await _total_rows(engine) == 0


async def test_new_users_start_with_the_empty_profile(store: SqlStore) -> None:
    async with store.session() as session:
        await session.load_state(ALICE, T0)
    async with store.session() as session:
        assert await session.load_profile(ALICE) == Profile()


async def test_claim_event_links_the_event_to_the_user(
    store: SqlStore, engine: AsyncEngine
) -> None:
    async with store.session() as session:
        assert await session.claim_event("telegram:1", T0, ALICE)
        assert not await session.claim_event("telegram:1", T0 + timedelta(seconds=1), ALICE)
    async with store.session() as session:
        # A duplicate never moves the event to someone else.
        assert not await session.claim_event("telegram:1", T0, BOB)
        assert await session.claim_event("telegram:2", T0, BOB)
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                ProcessedEventRow.event_key,
                ProcessedEventRow.processed_at,
                UserRow.platform_user_id,
            )
            .join(UserRow, UserRow.id == ProcessedEventRow.user_id)
            .order_by(ProcessedEventRow.event_key)
        )
        linked = [tuple(row) for row in rows]
    assert linked == [("telegram:1", T0, "alice"), ("telegram:2", T0, "bob")]


async def test_claim_event_creates_the_user(store: SqlStore, engine: AsyncEngine) -> None:
    async with store.session() as session:
        assert await session.claim_event("e1", T0, ALICE)
    async with engine.connect() as connection:
        users = (await connection.execute(select(UserRow.platform, UserRow.created_at))).all()
    assert [tuple(user) for user in users] == [("telegram", T0)]


async def _referrals(engine: AsyncEngine) -> dict[tuple[date, str, str], int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                ReferralCountRow.day,
                ReferralCountRow.country,
                ReferralCountRow.signal,
                ReferralCountRow.count,
            )
        )
        return {(day, country, signal): count for day, country, signal, count in rows}


async def test_count_referral_counts_per_day_country_and_signal(
    store: SqlStore, engine: AsyncEngine
) -> None:
    day, next_day = date(2026, 1, 5), date(2026, 1, 6)
    async with store.session() as session:
        await session.count_referral(day, "GB", "crisis")
        await session.count_referral(day, "GB", "crisis")
        await session.count_referral(day, "GB", "unsafe")
        await session.count_referral(day, None, "crisis")
    async with store.session() as session:
        await session.count_referral(day, "GB", "crisis")
        await session.count_referral(next_day, "GB", "crisis")
        await session.count_referral(day, None, "crisis")
    assert await _referrals(engine) == {
        (day, "GB", "crisis"): 3,
        (day, "GB", "unsafe"): 1,
        (day, "unknown", "crisis"): 2,
        (next_day, "GB", "crisis"): 1,
    }
    # Counting creates no user either.
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(UserRow)) == 0


async def test_referrals_cannot_be_linked_to_a_person(engine: AsyncEngine) -> None:
    def shape(connection: Connection) -> tuple[list[str], list[object]]:
        inspector = inspect(connection)
        columns = [column["name"] for column in inspector.get_columns("referrals")]
        return columns, list(inspector.get_foreign_keys("referrals"))

    async with engine.connect() as connection:
        columns, foreign_keys = await connection.run_sync(shape)
    assert sorted(columns) == ["count", "country", "day", "signal"]
    assert foreign_keys == []
    assert not ReferralCountRow.__table__.foreign_keys

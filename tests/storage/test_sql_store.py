from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Table, delete, func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import ConversationState, FollowUpRequest, JournalEntry, UserKey
from storage import SqlStore
from storage.models import (
    Base,
    ConversationRow,
    FollowUpRow,
    JournalEntryRow,
    ProcessedEventRow,
    UserRow,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")


def _request(key: str = "k1", due_at: datetime = T0) -> FollowUpRequest:
    return FollowUpRequest("checkin", "chat-1", due_at, due_at + timedelta(hours=2), key)


async def _count(engine: AsyncEngine, model: type[Base] | Table) -> int:
    async with engine.connect() as connection:
        total = await connection.scalar(select(func.count()).select_from(model))
    assert total is not None
    return total


async def test_first_contact_creates_an_empty_state(store: SqlStore, engine: AsyncEngine) -> None:
    async with store.session() as session:
        assert await session.load_state(ALICE, T0) == ConversationState()
    assert await _count(engine, UserRow) == 1
    assert await _count(engine, ConversationRow) == 1


async def test_saved_state_is_loaded_back(store: SqlStore) -> None:
    state = ConversationState(
        flow_id="breathe",
        node_id="ask",
        variables={"mood": "tense", "score": 3},
        turn=4,
        content_version="abc123",
        chat_id="chat-1",
    )
    async with store.session() as session:
        await session.load_state(ALICE, T0)
        await session.save_state(ALICE, state, T0 + timedelta(minutes=1))
    async with store.session() as session:
        loaded = await session.load_state(ALICE, T0 + timedelta(minutes=2))
    assert loaded == ConversationState(
        flow_id="breathe",
        node_id="ask",
        variables={"mood": "tense", "score": 3},
        turn=4,
        content_version="abc123",
        chat_id="chat-1",
        updated_at=T0 + timedelta(minutes=1),
    )


async def test_save_state_without_load_creates_the_user(store: SqlStore) -> None:
    async with store.session() as session:
        await session.save_state(ALICE, ConversationState(flow_id="f", turn=1), T0)
    async with store.session() as session:
        loaded = await session.load_state(ALICE, T0)
    assert (loaded.flow_id, loaded.turn, loaded.updated_at) == ("f", 1, T0)


async def test_load_state_updates_last_seen(store: SqlStore, engine: AsyncEngine) -> None:
    later = T0 + timedelta(days=3)
    async with store.session() as session:
        await session.load_state(ALICE, T0)
    async with store.session() as session:
        await session.load_state(ALICE, later)
    async with engine.connect() as connection:
        row = (await connection.execute(select(UserRow.created_at, UserRow.last_seen_at))).one()
    assert tuple(row) == (T0, later)


async def test_users_are_keyed_by_platform_and_id(store: SqlStore, engine: AsyncEngine) -> None:
    async with store.session() as session:
        await session.save_state(UserKey("telegram", "1"), ConversationState(turn=1), T0)
        await session.save_state(UserKey("cli", "1"), ConversationState(turn=2), T0)
    async with store.session() as session:
        assert (await session.load_state(UserKey("telegram", "1"), T0)).turn == 1
        assert (await session.load_state(UserKey("cli", "1"), T0)).turn == 2
    assert await _count(engine, UserRow) == 2


async def test_claim_event_once(store: SqlStore) -> None:
    async with store.session() as session:
        assert await session.claim_event("telegram:42", T0, ALICE)
        assert not await session.claim_event("telegram:42", T0, ALICE)
    async with store.session() as session:
        assert not await session.claim_event("telegram:42", T0, ALICE)
        assert await session.claim_event("telegram:43", T0, ALICE)


async def test_exception_rolls_back_everything(store: SqlStore, engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.session() as session:
            assert await session.claim_event("e1", T0, ALICE)
            await session.load_state(ALICE, T0)
            await session.save_state(ALICE, ConversationState(flow_id="f"), T0)
            await session.append_journal(ALICE, T0, "f", "n", "choice", "yes")
            assert await session.schedule_followup(ALICE, _request())
            await session.count_referral(T0.date(), "GB", "crisis")
            raise RuntimeError("boom")
    for table in Base.metadata.sorted_tables:
        assert await _count(engine, table) == 0, table.name
    async with store.session() as session:
        assert await session.claim_event("e1", T0, ALICE)


async def test_journal_records_choices(store: SqlStore, engine: AsyncEngine) -> None:
    async with store.session() as session:
        await session.append_journal(ALICE, T0, "breathe", "ask", "choice", "calm")
        await session.append_journal(ALICE, T0, "breathe", "rate", "rating", "4")
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(JournalEntryRow.kind, JournalEntryRow.value, JournalEntryRow.at).order_by(
                    JournalEntryRow.id
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [("choice", "calm", T0), ("rating", "4", T0)]


async def test_read_journal_is_one_person_s_from_a_time_on_oldest_first(
    store: SqlStore,
) -> None:
    bob = UserKey("telegram", "bob")
    async with store.session() as session:
        await session.append_journal(ALICE, T0 + timedelta(hours=2), "pause", "rate", "rating", "7")
        await session.append_journal(ALICE, T0 - timedelta(days=1), "pause", "rate", "rating", "9")
        await session.append_journal(ALICE, T0, "followup", "helped", "choice", "moving")
        await session.append_journal(bob, T0, "pause", "rate", "rating", "3")
    async with store.session() as session:
        read = await session.read_journal(ALICE, T0)
        assert read == [
            JournalEntry(T0, "followup", "helped", "choice", "moving"),
            JournalEntry(T0 + timedelta(hours=2), "pause", "rate", "rating", "7"),
        ]
        assert read[0].at.tzinfo is not None
        assert await session.read_journal(UserKey("telegram", "nobody"), T0) == []


async def test_datetimes_come_back_utc_aware(store: SqlStore) -> None:
    paris = timezone(timedelta(hours=1))
    due = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=paris)
    async with store.session() as session:
        await session.schedule_followup(ALICE, _request(due_at=due))
        [followup] = await session.pending_followups(ALICE)
    assert followup.due_at == due
    assert followup.due_at.tzinfo is UTC
    assert followup.due_at.hour == 8
    async with store.session() as session:
        [again] = await session.pending_followups(ALICE)
    assert again.due_at == due
    assert again.due_at.tzinfo is UTC


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(StatementError, match="naive"):
        async with store.session() as session:
            await session.claim_event("e1", datetime(2026, 1, 5, 12, 0), ALICE)


async def test_deleting_a_user_cascades(store: SqlStore, engine: AsyncEngine) -> None:
    async with store.session() as session:
        await session.save_state(ALICE, ConversationState(flow_id="f"), T0)
        await session.append_journal(ALICE, T0, "f", "n", "choice", "yes")
        await session.schedule_followup(ALICE, _request())
        await session.claim_event("e1", T0, ALICE)
    async with engine.begin() as connection:
        await connection.execute(delete(UserRow))
    for model in (ConversationRow, JournalEntryRow, FollowUpRow, ProcessedEventRow):
        assert await _count(engine, model) == 0, model.__tablename__

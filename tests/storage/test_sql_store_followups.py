import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.store import ConversationState, FollowUpRequest, FollowUpStatus, Profile, UserKey
from storage import SqlStore, StorageError, open_store
from storage.models import UserRow

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = UserKey("telegram", "alice")
BOB = UserKey("telegram", "bob")


def _request(key: str, due_at: datetime = T0) -> FollowUpRequest:
    return FollowUpRequest("checkin", "chat-1", due_at, due_at + timedelta(hours=2), key)


async def _schedule(store: SqlStore, user: UserKey, *requests: FollowUpRequest) -> None:
    async with store.session() as session:
        for request in requests:
            assert await session.schedule_followup(user, request)


async def test_duplicate_dedupe_key_is_ignored(store: SqlStore) -> None:
    async with store.session() as session:
        assert await session.schedule_followup(ALICE, _request("same"))
        assert not await session.schedule_followup(ALICE, _request("same", T0 + timedelta(1)))
    async with store.session() as session:
        assert not await session.schedule_followup(BOB, _request("same"))
        [only] = await session.pending_followups(ALICE)
        assert await session.pending_followups(BOB) == []
    assert only.due_at == T0


async def test_pending_followups_are_ordered_by_due_time(store: SqlStore) -> None:
    await _schedule(
        store,
        ALICE,
        _request("late", T0 + timedelta(hours=3)),
        _request("early", T0 + timedelta(hours=1)),
    )
    await _schedule(store, BOB, _request("bob", T0))
    async with store.session() as session:
        pending = await session.pending_followups(ALICE)
    assert [f.due_at for f in pending] == [T0 + timedelta(hours=1), T0 + timedelta(hours=3)]
    assert {f.user for f in pending} == {ALICE}
    assert {f.status for f in pending} == {FollowUpStatus.PENDING}


async def test_cancel_followups_only_touches_the_users_pending_rows(store: SqlStore) -> None:
    await _schedule(store, ALICE, _request("a1"), _request("a2", T0 + timedelta(hours=1)))
    await _schedule(store, BOB, _request("b1"))
    [claimed] = await store.claim_due(T0, 1)
    assert claimed.user == ALICE
    async with store.session() as session:
        assert await session.cancel_followups(ALICE) == 1
        assert await session.cancel_followups(ALICE) == 0
        assert await session.cancel_followups(UserKey("telegram", "nobody")) == 0
        assert await session.pending_followups(ALICE) == []
        assert len(await session.pending_followups(BOB)) == 1
        still_claimed = await session.get_followup(claimed.id)
    assert still_claimed is not None
    assert still_claimed.status is FollowUpStatus.CLAIMED


async def test_cancelled_status_is_visible_in_the_same_session(store: SqlStore) -> None:
    async with store.session() as session:
        await session.schedule_followup(ALICE, _request("a1"))
        [pending] = await session.pending_followups(ALICE)
        await session.cancel_followups(ALICE)
        cancelled = await session.get_followup(pending.id)
    assert cancelled is not None
    assert cancelled.status is FollowUpStatus.CANCELLED


async def test_next_due_at_is_the_earliest_pending(store: SqlStore) -> None:
    assert await store.next_due_at() is None
    await _schedule(
        store,
        ALICE,
        _request("a", T0 + timedelta(hours=2)),
        _request("b", T0 + timedelta(hours=1)),
    )
    assert await store.next_due_at() == T0 + timedelta(hours=1)
    await store.claim_due(T0 + timedelta(hours=1), 10)
    assert await store.next_due_at() == T0 + timedelta(hours=2)
    async with store.session() as session:
        await session.cancel_followups(ALICE)
    assert await store.next_due_at() is None


async def test_claim_due_returns_due_rows_once_oldest_first(store: SqlStore) -> None:
    await _schedule(
        store,
        ALICE,
        _request("second", T0 - timedelta(minutes=1)),
        _request("first", T0 - timedelta(minutes=5)),
        _request("future", T0 + timedelta(seconds=1)),
    )
    claimed = await store.claim_due(T0, 10)
    assert [f.due_at for f in claimed] == [T0 - timedelta(minutes=5), T0 - timedelta(minutes=1)]
    assert {f.status for f in claimed} == {FollowUpStatus.CLAIMED}
    assert await store.claim_due(T0, 10) == []
    [future] = await store.claim_due(T0 + timedelta(seconds=1), 10)
    assert future.due_at == T0 + timedelta(seconds=1)


async def test_claim_due_respects_the_limit(store: SqlStore) -> None:
    await _schedule(store, ALICE, *(_request(f"k{i}", T0 - timedelta(minutes=i)) for i in range(5)))
    first = await store.claim_due(T0, 2)
    rest = await store.claim_due(T0, 10)
    assert [f.due_at for f in first] == [T0 - timedelta(minutes=4), T0 - timedelta(minutes=3)]
    assert len(rest) == 3
    assert not {f.id for f in first} & {f.id for f in rest}


async def test_claim_due_only_takes_the_given_platforms(store: SqlStore) -> None:
    carol = UserKey("discord", "carol")
    await _schedule(store, ALICE, _request("telegram", T0 - timedelta(minutes=1)))
    await _schedule(store, carol, _request("discord", T0))
    assert await store.claim_due(T0, 10, platforms=()) == []
    assert await store.next_due_at(platforms=["discord"]) == T0
    [claimed] = await store.claim_due(T0, 10, platforms=["discord"])
    assert claimed.user == carol
    assert await store.next_due_at(platforms=["discord"]) is None
    assert await store.next_due_at() == T0 - timedelta(minutes=1)
    [rest] = await store.claim_due(T0, 10)
    assert rest.user == ALICE


async def test_concurrent_claims_never_share_a_row(database_url: str) -> None:
    url = database_url
    one, two = await open_store(url), await open_store(url)
    try:
        await _schedule(
            one, ALICE, *(_request(f"k{i}", T0 - timedelta(seconds=i)) for i in range(40))
        )
        claimed: list[int] = []
        for _ in range(5):
            first, second = await asyncio.gather(one.claim_due(T0, 5), two.claim_due(T0, 5))
            claimed += [f.id for f in first] + [f.id for f in second]
        assert len(claimed) == 40
        assert len(set(claimed)) == 40
    finally:
        await one.close()
        await two.close()


async def test_set_status_and_get_followup(store: SqlStore) -> None:
    await _schedule(store, ALICE, _request("a"))
    [claimed] = await store.claim_due(T0, 1)
    async with store.session() as session:
        await session.set_followup_status(claimed.id, FollowUpStatus.SENT, T0)
        sent = await session.get_followup(claimed.id)
        assert await session.get_followup(claimed.id + 1000) is None
    assert sent is not None
    assert sent.status is FollowUpStatus.SENT
    assert (sent.user, sent.chat_id, sent.flow_id) == (ALICE, "chat-1", "checkin")


async def test_set_status_of_a_vanished_followup_is_a_no_op(store: SqlStore) -> None:
    # The user may have been deleted (cascading to the row) while it was claimed.
    async with store.session() as session:
        await session.set_followup_status(404, FollowUpStatus.FAILED, T0)
        assert await session.get_followup(404) is None


async def test_postpone_of_an_unknown_followup_fails(store: SqlStore) -> None:
    with pytest.raises(StorageError, match="404"):
        async with store.session() as session:
            await session.postpone_followup(404, T0)


async def test_postpone_returns_a_claimed_followup_to_pending(store: SqlStore) -> None:
    await _schedule(store, ALICE, _request("a"))
    [claimed] = await store.claim_due(T0, 1)
    later = T0 + timedelta(minutes=10)
    async with store.session() as session:
        await session.postpone_followup(claimed.id, later)
    assert await store.next_due_at() == later
    assert await store.claim_due(T0 + timedelta(minutes=9), 1) == []
    [again] = await store.claim_due(later, 1)
    assert again.id == claimed.id


async def test_postpone_refuses_a_followup_that_is_not_claimed(store: SqlStore) -> None:
    await _schedule(store, ALICE, _request("a"))
    async with store.session() as session:
        [pending] = await session.pending_followups(ALICE)
        await session.cancel_followups(ALICE)
    with pytest.raises(StorageError, match="cancelled"):
        async with store.session() as session:
            await session.postpone_followup(pending.id, T0 + timedelta(hours=1))
    assert await store.next_due_at() is None


async def test_open_followup_reads_the_row_the_profile_and_the_conversation(
    store: SqlStore, engine: AsyncEngine
) -> None:
    """One read for a due follow-up; the turn it opens reads nothing more, and only
    a turn that opens stamps last seen (a follow-up held back is not the person)."""
    async with store.session() as session:
        await session.save_state(ALICE, ConversationState(flow_id="f", turn=3), T0)
        await session.save_profile(ALICE, Profile(consent_at=T0, zone="Europe/Paris"))
        assert await session.schedule_followup(ALICE, _request("a", T0 - timedelta(hours=1)))
    [claimed] = await store.claim_due(T0, 1)
    later = T0 + timedelta(hours=1)
    async with store.session() as session:
        assert await session.open_followup(claimed.id + 1000) is None
        opened = await session.open_followup(claimed.id)
        assert opened is not None
        followup, profile = opened
        assert followup == claimed
        assert (profile.consent_at, profile.zone) == (T0, "Europe/Paris")
    assert await _last_seen(engine) == T0  # held back: no turn opened
    async with store.session() as session:
        opened = await session.open_followup(claimed.id)
        assert opened is not None
        state = await session.load_state(ALICE, later)
        assert (state.flow_id, state.turn) == ("f", 3)
        assert await session.load_profile(ALICE) == opened[1]
    assert await _last_seen(engine) == later


async def test_open_followup_waits_for_the_owners_turn_and_sees_it(database_url: str) -> None:
    """Two workers: while one person's turn holds their row, a dispatcher opening
    their due follow-up waits, then reads what that turn committed (on PostgreSQL
    the owner's row is locked before the read; SQLite runs them one at a time)."""
    one, two = await open_store(database_url), await open_store(database_url)
    try:
        async with one.session() as session:
            await session.save_profile(ALICE, Profile(consent_at=T0))
            assert await session.schedule_followup(ALICE, _request("a"))
        [claimed] = await one.claim_due(T0, 1)
        opening: asyncio.Task[object] | None = None

        async def open_it() -> object:
            async with two.session() as session:
                return await session.open_followup(claimed.id)

        async with one.session() as session:
            await session.load_state(ALICE, T0)  # the person's turn, their row locked
            await session.save_profile(ALICE, Profile(consent_at=None))  # they stop
            opening = asyncio.create_task(open_it())
            await asyncio.sleep(0.3)  # let the dispatcher's read begin
            assert not opening.done()
        opened = await opening
        assert isinstance(opened, tuple)
        assert opened[1].consent_at is None
    finally:
        await one.close()
        await two.close()


async def _last_seen(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as connection:
        return await connection.scalar(select(UserRow.last_seen_at))

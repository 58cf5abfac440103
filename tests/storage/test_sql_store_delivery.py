"""Follow-up kinds, single cancellation, the DELIVERING step and crash recovery."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from dialogs.events import Choice, Outbound
from dialogs.store import FollowUp, FollowUpRequest, FollowUpStatus, UserKey
from storage import SqlStore, StorageError, VariableCipher, open_store
from storage.models import FollowUpRow

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)
ALICE = UserKey("telegram", "alice")
BOB = UserKey("telegram", "bob")
CAROL = UserKey("discord", "carol")
MESSAGES = (
    Outbound("How did the talk go, Sam?", choices=(Choice("c:3:ok", "Fine"),)),
    Outbound("Only for you", private_only=True, image="images/calm.png"),
)


def _request(key: str, kind: str = "once", due_at: datetime = T0) -> FollowUpRequest:
    return FollowUpRequest("checkin", "chat-1", due_at, due_at + timedelta(hours=2), key, kind)


async def _schedule(store: SqlStore, user: UserKey, *requests: FollowUpRequest) -> list[int]:
    async with store.session() as session:
        for request in requests:
            assert await session.schedule_followup(user, request)
        return [f.id for f in await session.pending_followups(user)]


async def _get(store: SqlStore, followup_id: int) -> FollowUp:
    async with store.session() as session:
        found = await session.get_followup(followup_id)
    assert found is not None
    return found


async def _claimed(store: SqlStore, user: UserKey, key: str, at: datetime) -> int:
    """A follow-up of `user` claimed at `at` (no other row may be due by then)."""
    await _schedule(store, user, _request(key, due_at=at))
    [claimed] = await store.claim_due(at, 1)
    assert claimed.user == user
    return claimed.id


async def _delivering(store: SqlStore, user: UserKey, key: str, at: datetime) -> int:
    """A follow-up of `user` claimed and marked DELIVERING at `at`."""
    followup_id = await _claimed(store, user, key, at)
    async with store.session() as session:
        await session.mark_delivering(followup_id, MESSAGES, at)
    return followup_id


# ------------------------------------------------------------------- kinds


async def test_kind_is_stored_and_defaults_to_once(store: SqlStore) -> None:
    await _schedule(
        store,
        ALICE,
        FollowUpRequest("checkin", "chat-1", T0, T0 + timedelta(hours=1), "default"),
        _request("weekly", "checkin", T0 + timedelta(hours=1)),
    )
    async with store.session() as session:
        pending = await session.pending_followups(ALICE)
    assert [(f.kind, f.messages) for f in pending] == [("once", ()), ("checkin", ())]


async def test_cancel_followups_of_one_kind(store: SqlStore) -> None:
    await _schedule(store, ALICE, _request("a-once"), _request("a-check", "checkin"))
    await _schedule(store, ALICE, _request("a-check-2", "checkin", T0 + timedelta(days=7)))
    await _schedule(store, BOB, _request("b-check", "checkin"))
    async with store.session() as session:
        assert await session.cancel_followups(ALICE, kind="checkin") == 2
        assert await session.cancel_followups(ALICE, kind="checkin") == 0
        assert await session.cancel_followups(ALICE, kind="nonexistent") == 0
        assert [f.kind for f in await session.pending_followups(ALICE)] == ["once"]
        assert [f.kind for f in await session.pending_followups(BOB)] == ["checkin"]
        # Without a kind, every kind goes.
        assert await session.cancel_followups(ALICE) == 1
        assert await session.pending_followups(ALICE) == []


# ------------------------------------------------------ cancelling one row


async def test_cancel_followup_cancels_only_that_row(store: SqlStore) -> None:
    first, second = await _schedule(
        store, ALICE, _request("a1"), _request("a2", due_at=T0 + timedelta(hours=1))
    )
    async with store.session() as session:
        assert await session.cancel_followup(ALICE, first)
        assert not await session.cancel_followup(ALICE, first)
        assert [f.id for f in await session.pending_followups(ALICE)] == [second]
    assert (await _get(store, first)).status is FollowUpStatus.CANCELLED


async def test_cancel_followup_of_someone_else_changes_nothing(
    store: SqlStore, engine: AsyncEngine
) -> None:
    [alices] = await _schedule(store, ALICE, _request("a1"))
    await _schedule(store, BOB, _request("b1"))

    async def snapshot() -> list[tuple[object, ...]]:
        async with engine.connect() as connection:
            rows = await connection.execute(select(FollowUpRow).order_by(FollowUpRow.id))
            return [tuple(row) for row in rows]

    before = await snapshot()
    async with store.session() as session:
        assert not await session.cancel_followup(BOB, alices)
        assert not await session.cancel_followup(UserKey("telegram", "nobody"), alices)
        assert not await session.cancel_followup(ALICE, alices + 1000)
    assert await snapshot() == before


async def test_cancel_followup_leaves_a_claimed_row(store: SqlStore) -> None:
    followup_id = await _claimed(store, ALICE, "a", T0)
    async with store.session() as session:
        assert not await session.cancel_followup(ALICE, followup_id)
    assert (await _get(store, followup_id)).status is FollowUpStatus.CLAIMED


# --------------------------------------------------------------- delivering


async def test_mark_delivering_stores_the_messages(store: SqlStore) -> None:
    followup_id = await _claimed(store, ALICE, "a", T0)
    async with store.session() as session:
        await session.mark_delivering(followup_id, MESSAGES, T0 + timedelta(minutes=1))
        seen_in_session = await session.get_followup(followup_id)
    assert seen_in_session is not None
    assert seen_in_session.messages == MESSAGES
    delivering = await _get(store, followup_id)
    assert delivering.status is FollowUpStatus.DELIVERING
    assert delivering.messages == MESSAGES
    assert delivering.messages[0].choices == (Choice("c:3:ok", "Fine"),)
    assert delivering.messages[1].private_only
    # Not pending: neither listed nor claimable again.
    async with store.session() as session:
        assert await session.pending_followups(ALICE) == []
    assert await store.claim_due(T0 + timedelta(days=1), 10) == []


async def test_mark_delivering_with_no_messages(store: SqlStore) -> None:
    followup_id = await _claimed(store, ALICE, "a", T0)
    async with store.session() as session:
        await session.mark_delivering(followup_id, [], T0)
    delivering = await _get(store, followup_id)
    assert (delivering.status, delivering.messages) == (FollowUpStatus.DELIVERING, ())


async def test_mark_delivering_needs_a_claimed_row(store: SqlStore) -> None:
    # Due later, so that the claim below takes the other row.
    [pending] = await _schedule(store, ALICE, _request("a", due_at=T0 + timedelta(days=1)))
    with pytest.raises(StorageError, match="pending"):
        async with store.session() as session:
            await session.mark_delivering(pending, MESSAGES, T0)
    with pytest.raises(StorageError, match="404"):
        async with store.session() as session:
            await session.mark_delivering(404, MESSAGES, T0)
    delivering = await _delivering(store, BOB, "b", T0)
    with pytest.raises(StorageError, match="delivering"):
        async with store.session() as session:
            await session.mark_delivering(delivering, (Outbound("again"),), T0)
    assert (await _get(store, pending)).status is FollowUpStatus.PENDING
    assert (await _get(store, delivering)).messages == MESSAGES


async def test_sent_after_delivering_drops_the_messages(
    store: SqlStore, engine: AsyncEngine
) -> None:
    followup_id = await _delivering(store, ALICE, "a", T0)
    async with store.session() as session:
        await session.set_followup_status(followup_id, FollowUpStatus.SENT, T0)
    sent = await _get(store, followup_id)
    assert (sent.status, sent.messages) == (FollowUpStatus.SENT, ())
    async with engine.connect() as connection:
        raw = await connection.scalar(select(FollowUpRow.messages))
        sent_at = await connection.scalar(select(FollowUpRow.sent_at))
    assert (raw, sent_at) == (None, T0)


async def test_delivering_is_only_reached_through_mark_delivering(store: SqlStore) -> None:
    followup_id = await _claimed(store, ALICE, "a", T0)
    with pytest.raises(ValueError, match="mark_delivering"):
        async with store.session() as session:
            await session.set_followup_status(followup_id, FollowUpStatus.DELIVERING, T0)
    assert (await _get(store, followup_id)).status is FollowUpStatus.CLAIMED


async def test_messages_are_sealed_with_a_cipher(engine: AsyncEngine, clock: ManualClock) -> None:
    cipher = VariableCipher(Fernet.generate_key().decode())
    store = SqlStore(engine, clock=clock, cipher=cipher)
    followup_id = await _delivering(store, ALICE, "a", T0)
    async with engine.connect() as connection:
        raw = await connection.exec_driver_sql("SELECT CAST(messages AS TEXT) FROM followups")
        stored = str(raw.scalar_one())
    assert "Sam" not in stored
    assert set(json.loads(stored)) == {"_enc"}
    assert (await _get(store, followup_id)).messages == MESSAGES
    async with store.session() as session:
        [exported] = (await session.export_user(ALICE))["followups"]
    assert exported["messages"][0]["text"] == "How did the talk go, Sam?"
    with pytest.raises(StorageError, match="encrypted"):
        await _get(SqlStore(engine, clock=clock), followup_id)


# ----------------------------------------------------------------- recovery


async def test_recover_returns_a_stale_claim_to_pending(store: SqlStore) -> None:
    followup_id = await _claimed(store, ALICE, "a", T0)
    assert await store.recover(T0 + LEASE, LEASE) == []
    assert (await _get(store, followup_id)).status is FollowUpStatus.CLAIMED

    assert await store.recover(T0 + LEASE + timedelta(microseconds=1), LEASE) == []
    pending = await _get(store, followup_id)
    assert pending.status is FollowUpStatus.PENDING
    assert await store.next_due_at() == T0
    [again] = await store.claim_due(T0 + LEASE + timedelta(seconds=1), 1)
    assert again.id == followup_id


async def test_recover_reclaims_a_stale_delivery(store: SqlStore, engine: AsyncEngine) -> None:
    followup_id = await _delivering(store, ALICE, "a", T0)
    assert await store.recover(T0 + LEASE, LEASE) == []

    now = T0 + LEASE + timedelta(seconds=1)
    [recovered] = await store.recover(now, LEASE)
    assert (recovered.id, recovered.user, recovered.chat_id) == (followup_id, ALICE, "chat-1")
    assert recovered.status is FollowUpStatus.DELIVERING
    assert recovered.messages == MESSAGES
    async with engine.connect() as connection:
        claimed_at = await connection.scalar(select(FollowUpRow.claimed_at))
    assert claimed_at == now
    # Re-claimed: not handed out again within the new lease, only after it.
    assert await store.recover(now + LEASE, LEASE) == []
    [later] = await store.recover(now + LEASE + timedelta(seconds=1), LEASE)
    assert later.id == followup_id


async def test_the_lease_of_a_delivery_starts_when_it_is_marked(store: SqlStore) -> None:
    # A slow engine run must not make a fresh delivery look abandoned.
    followup_id = await _claimed(store, ALICE, "a", T0)
    marked = T0 + LEASE - timedelta(seconds=1)
    async with store.session() as session:
        await session.mark_delivering(followup_id, MESSAGES, marked)
    assert await store.recover(T0 + LEASE + timedelta(seconds=1), LEASE) == []
    [recovered] = await store.recover(marked + LEASE + timedelta(seconds=1), LEASE)
    assert recovered.id == followup_id


async def test_recover_leaves_every_other_row_alone(store: SqlStore, engine: AsyncEngine) -> None:
    now = T0 + LEASE + timedelta(minutes=1)
    # Due after every claim below, so that none of them takes it.
    [pending] = await _schedule(store, BOB, _request("b-pending", due_at=now + LEASE))
    stale_claim = await _claimed(store, ALICE, "stale-claim", T0)
    fresh_claim = await _claimed(store, ALICE, "fresh-claim", now - LEASE)
    stale_delivery = await _delivering(store, ALICE, "stale-delivery", T0)
    fresh_delivery = await _delivering(store, ALICE, "fresh-delivery", now - LEASE)
    sent = await _delivering(store, ALICE, "sent", T0)
    async with store.session() as session:
        await session.set_followup_status(sent, FollowUpStatus.SENT, T0)

    recovered = await store.recover(now, LEASE)

    assert [f.id for f in recovered] == [stale_delivery]
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(FollowUpRow.id, FollowUpRow.status, FollowUpRow.claimed_at)
        )
        found = {row.id: (row.status, row.claimed_at) for row in rows}
    assert found == {
        pending: ("pending", None),
        stale_claim: ("pending", None),
        fresh_claim: ("claimed", now - LEASE),
        stale_delivery: ("delivering", now),
        fresh_delivery: ("delivering", now - LEASE),
        sent: ("sent", T0),
    }
    assert (await _get(store, fresh_delivery)).messages == MESSAGES


async def test_recover_only_touches_the_given_platforms(store: SqlStore) -> None:
    now = T0 + LEASE + timedelta(minutes=1)
    alice_claim = await _claimed(store, ALICE, "a-claim", T0)
    alice_delivery = await _delivering(store, ALICE, "a-delivery", T0)
    carol_claim = await _claimed(store, CAROL, "c-claim", T0)
    carol_delivery = await _delivering(store, CAROL, "c-delivery", T0)

    assert await store.recover(now, LEASE, platforms=()) == []
    [recovered] = await store.recover(now, LEASE, platforms=["discord"])
    assert recovered.id == carol_delivery
    assert recovered.user == CAROL
    assert (await _get(store, carol_claim)).status is FollowUpStatus.PENDING
    assert (await _get(store, alice_claim)).status is FollowUpStatus.CLAIMED

    [recovered] = await store.recover(now, LEASE, platforms=["telegram", "slack"])
    assert recovered.id == alice_delivery
    assert (await _get(store, alice_claim)).status is FollowUpStatus.PENDING


async def test_concurrent_recoveries_never_share_a_row(database_url: str) -> None:
    url = database_url
    one, two = await open_store(url), await open_store(url)
    try:
        delivering = [await _delivering(one, ALICE, f"d{i}", T0) for i in range(20)]
        claimed = [await _claimed(one, BOB, f"c{i}", T0) for i in range(5)]
        got: list[int] = []
        # Several rounds with times far enough apart that each round may take
        # everything again: within a round, a row still goes to one caller only.
        for round_ in range(3):
            now = T0 + (round_ + 1) * (LEASE + timedelta(seconds=1))
            first, second = await asyncio.gather(one.recover(now, LEASE), two.recover(now, LEASE))
            ids = [f.id for f in first] + [f.id for f in second]
            assert sorted(ids) == delivering
            assert {len(m) for m in (f.messages for f in (*first, *second))} == {len(MESSAGES)}
            got += ids
        assert len(got) == 3 * len(delivering)
        for followup_id in claimed:
            assert (await _get(two, followup_id)).status is FollowUpStatus.PENDING
    finally:
        await one.close()
        await two.close()


async def test_forget_removes_a_delivery_in_progress(store: SqlStore, engine: AsyncEngine) -> None:
    followup_id = await _delivering(store, ALICE, "a", T0)
    async with store.session() as session:
        assert await session.forget_user(ALICE) > 0
    assert await store.recover(T0 + 2 * LEASE, LEASE) == []
    async with engine.connect() as connection:
        assert (await connection.execute(select(FollowUpRow))).all() == []
    with pytest.raises(StorageError, match=str(followup_id)):
        async with store.session() as session:
            await session.mark_delivering(followup_id, MESSAGES, T0)

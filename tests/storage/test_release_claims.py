"""A graceful stop gives back what this process claimed (`SqlStore.release_claims`),
and only that: another worker's claims, and a claim another worker took over after
the lease, stay theirs. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore
from storage.models import FollowUpRow
from storage.outbound_rows import OUTBOUND

USER = UserKey("test", "u1")


async def plan(store: SqlStore, clock: ManualClock, n: int) -> None:
    now = clock.now()
    async with store.session() as s:
        for i in range(n):
            request = FollowUpRequest("followup", "c1", now, now + timedelta(hours=1), f"k{i}")
            await s.schedule_followup(USER, request)


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(FollowUpRow.id, FollowUpRow.status))
        return {id_: status for id_, status in rows}


async def outbox_claims(engine: AsyncEngine) -> dict[int, tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OUTBOUND.c.id, OUTBOUND.c.status, OUTBOUND.c.claimed_by)
        )
        return {id_: (status, by) for id_, status, by in rows}


async def owe(engine: AsyncEngine, clock: ManualClock, by: str, status: str, seq: int) -> None:
    now = clock.now()
    async with engine.begin() as connection:
        await connection.execute(
            insert(OUTBOUND).values(
                user_id=1,
                platform="test",
                chat_id="c1",
                recipient="u1",
                private=True,
                seq=seq,
                kind="reply",
                status=status,
                created_at=now,
                claimed_at=now,
                claimed_by=by,
                updated_at=now,
            )
        )


async def test_only_this_process_claims_go_back(
    store: SqlStore, engine: AsyncEngine, clock: ManualClock
) -> None:
    other = SqlStore(engine, clock=clock)
    await plan(store, clock, 4)
    ours = await store.claim_due(clock.now(), 2)
    theirs = await other.claim_due(clock.now(), 1)
    assert len(ours) == 2 and len(theirs) == 1
    await owe(engine, clock, store.worker, "pending", 1)
    await owe(engine, clock, store.worker, "sent", 2)
    await owe(engine, clock, other.worker, "pending", 3)

    assert await store.release_claims(clock.now()) == (2, 1)

    after = await statuses(engine)
    assert [after[f.id] for f in ours] == ["pending", "pending"]
    assert after[theirs[0].id] == "claimed"
    assert sorted(await outbox_claims(engine)) == [1, 2, 3]
    assert (await outbox_claims(engine)) == {
        1: ("pending", ""),  # released: any worker's sweep takes it at once
        2: ("sent", store.worker),
        3: ("pending", other.worker),
    }
    # Released once; a second stop finds nothing of ours.
    assert await store.release_claims(clock.now()) == (0, 0)


async def test_a_claim_taken_over_after_the_lease_stays_with_its_new_holder(
    store: SqlStore, engine: AsyncEngine, clock: ManualClock
) -> None:
    other = SqlStore(engine, clock=clock)
    await plan(store, clock, 1)
    [mine] = await store.claim_due(clock.now(), 1)
    # This process hangs past the lease; another worker takes the row back and claims it.
    clock.advance(timedelta(minutes=6))
    await other.recover(clock.now(), timedelta(minutes=5))
    assert [f.id for f in await other.claim_due(clock.now(), 1)] == [mine.id]

    assert await store.release_claims(clock.now()) == (0, 0)
    assert (await statuses(engine))[mine.id] == "claimed"

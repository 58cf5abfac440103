"""The webhook inbox's rows (storage.inbox_rows), on SQLite and PostgreSQL: stored
once, claimed per person by one worker at a time in update order, taken over after a
lease, deleted once handled, typed text sealed at rest."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from dialogs.store import Profile, UserKey
from storage import SqlStore
from storage.crypto import VariableCipher
from storage.inbox_rows import INBOX, InboxRows

LEASE = timedelta(seconds=10)
KEY = "0" * 43 + "="


def body(update_id: int, person: str, text: str = "hello") -> dict[str, Any]:
    return {"update_id": update_id, "message": {"from": {"id": int(person)}, "text": text}}


def rows(store: SqlStore, worker: str) -> InboxRows:
    return InboxRows(store, "telegram", worker=worker)


async def put(inbox: InboxRows, clock: ManualClock, person: str, *update_ids: int) -> None:
    for update_id in update_ids:
        await inbox.put(update_id, person, body(update_id, person), clock.now())


async def test_a_redelivered_update_is_stored_once(store: SqlStore, clock: ManualClock) -> None:
    inbox = rows(store, "a")
    assert await inbox.put(7, "1", body(7, "1"), clock.now())
    assert not await inbox.put(7, "1", body(7, "1"), clock.now())
    assert await inbox.count() == 1


async def test_one_worker_claims_a_person_at_a_time_oldest_first(
    store: SqlStore, clock: ManualClock
) -> None:
    a, b = rows(store, "a"), rows(store, "b")
    await put(a, clock, "1", 12, 10, 11)
    await put(b, clock, "2", 20)
    claimed = await a.claim("1", clock.now(), LEASE)
    assert [item.update_id for item in claimed] == [10, 11, 12]
    # Another worker takes nothing of that person while the lease runs, not even a
    # row stored after the claim; another person is free.
    await put(b, clock, "1", 13)
    assert await b.claim("1", clock.now(), LEASE) == []
    assert [item.update_id for item in await b.claim("2", clock.now(), LEASE)] == [20]
    # The holder finishes and claims again: the row stored meanwhile is its.
    await a.finish(claimed)
    assert [item.update_id for item in await a.claim("1", clock.now(), LEASE)] == [13]


async def test_the_delete_claims_in_its_transaction_what_another_worker_stored_meanwhile(
    store: SqlStore, clock: ManualClock
) -> None:
    async with store.session() as session:
        await session.save_profile(UserKey("telegram", "1"), Profile(adult=True))
    a, b = rows(store, "a"), rows(store, "b")
    await put(a, clock, "1", 10)
    claimed = await a.claim("1", clock.now(), LEASE)
    # Stored and left to the holder by another worker (its lease is live), and one
    # older than the batch in hand: both taken by the delete's own claim, in order.
    await put(b, clock, "1", 12, 9)
    assert await b.claim("1", clock.now(), LEASE) == []
    then = await a.finish_and_claim(claimed, ("1", clock.now(), LEASE))
    assert [(item.update_id, item.late) for item in then] == [(9, True), (12, False)]
    assert await last_update_id(store) == 10
    assert await b.claim("1", clock.now(), LEASE) == []
    # Nothing left: the last delete claims nothing, and holds nothing.
    assert await a.finish_and_claim(then, ("1", clock.now(), LEASE)) == []
    assert await a.count() == 0
    assert await last_update_id(store) == 12


async def test_a_dead_workers_rows_are_taken_over_after_the_lease_in_order(
    store: SqlStore, clock: ManualClock
) -> None:
    a, b = rows(store, "a"), rows(store, "b")
    await put(a, clock, "1", 1, 2)
    await a.claim("1", clock.now(), LEASE)
    await put(b, clock, "1", 3)
    assert await b.waiting(clock.now(), unclaimed_before=clock.now()) == []
    clock.advance(LEASE - timedelta(seconds=1))
    assert await b.claim("1", clock.now(), LEASE) == []
    clock.advance(timedelta(seconds=2))
    assert await b.waiting(clock.now(), unclaimed_before=clock.now()) == ["1"]
    assert [item.update_id for item in await b.claim("1", clock.now(), LEASE)] == [1, 2, 3]


async def test_a_renewed_lease_holds(store: SqlStore, clock: ManualClock) -> None:
    a, b = rows(store, "a"), rows(store, "b")
    await put(a, clock, "1", 1)
    claimed = await a.claim("1", clock.now(), LEASE)
    clock.advance(LEASE - timedelta(seconds=1))
    await a.renew(claimed, clock.now() + LEASE)
    clock.advance(timedelta(seconds=2))
    assert await b.claim("1", clock.now(), LEASE) == []


async def test_released_claims_are_taken_at_once(store: SqlStore, clock: ManualClock) -> None:
    a, b = rows(store, "a"), rows(store, "b")
    await put(a, clock, "1", 1)
    await a.claim("1", clock.now(), LEASE)
    assert await a.release() == 1
    assert [item.update_id for item in await b.claim("1", clock.now(), LEASE)] == [1]


async def test_unclaimed_rows_wait_for_their_receiver_before_the_sweep_takes_them(
    store: SqlStore, clock: ManualClock
) -> None:
    a = rows(store, "a")
    await put(a, clock, "1", 1)
    grace = timedelta(seconds=2)
    assert await a.waiting(clock.now(), unclaimed_before=clock.now() - grace) == []
    clock.advance(grace * 2)
    assert await a.waiting(clock.now(), unclaimed_before=clock.now() - grace) == ["1"]


async def test_finished_rows_are_deleted_and_a_late_update_is_known(
    store: SqlStore, clock: ManualClock
) -> None:
    async with store.session() as session:
        await session.save_profile(UserKey("telegram", "1"), Profile(adult=True))
    a = rows(store, "a")
    await put(a, clock, "1", 5, 6)
    first = await a.claim("1", clock.now(), LEASE)
    assert [item.late for item in first] == [False, False]
    await a.finish(first)
    assert await a.count() == 0
    # Update 4 was sent before 6 but arrives after it was handled: late, and the
    # person's last update id stays at 6.
    await put(a, clock, "1", 4, 7)
    later = await a.claim("1", clock.now(), LEASE)
    assert [(item.update_id, item.late) for item in later] == [(4, True), (7, False)]
    await a.finish(later[:1])
    assert await last_update_id(store) == 6
    await a.finish(later[1:])
    assert await last_update_id(store) == 7


async def last_update_id(store: SqlStore) -> int | None:
    from storage.models import UserRow

    async with store.transaction() as session:
        value: int | None = await session.scalar(
            select(UserRow.last_update_id).where(UserRow.platform_user_id == "1")
        )
        return value


async def test_an_update_that_keeps_killing_its_worker_is_dropped(
    store: SqlStore, clock: ManualClock
) -> None:
    inbox = InboxRows(store, "telegram", worker="a", max_attempts=3)
    await put(inbox, clock, "1", 1)
    for attempt in range(3):
        taken = await InboxRows(store, "telegram", worker=f"w{attempt}").claim(
            "1", clock.now(), LEASE
        )
        assert len(taken) == 1
        clock.advance(LEASE * 2)  # its worker died
    assert await inbox.claim("1", clock.now(), LEASE) == []
    assert await inbox.count() == 0


async def test_typed_text_is_sealed_at_rest_with_a_key(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    store = SqlStore(engine, clock=clock, cipher=VariableCipher(KEY))
    inbox = rows(store, "a")
    await inbox.put(1, "1", body(1, "1", "my-secret-words"), clock.now())
    async with engine.connect() as connection:
        stored = (await connection.execute(select(INBOX.c.body))).scalar_one()
    assert "my-secret-words" not in repr(stored)
    [item] = await inbox.claim("1", clock.now(), LEASE)
    assert item.body["message"]["text"] == "my-secret-words"


async def test_two_workers_claiming_at_once_never_both_take_a_person(
    store: SqlStore, clock: ManualClock
) -> None:
    """The claim locks the person's rows while it decides: of two claims at the same
    moment, one takes everything and the other nothing."""
    a, b = rows(store, "a"), rows(store, "b")
    for round_ in range(30):
        person = str(100 + round_)
        await put(a, clock, person, *(1000 * round_ + n for n in range(3)))
        first, second = await asyncio.gather(
            a.claim(person, clock.now(), LEASE), b.claim(person, clock.now(), LEASE)
        )
        assert sorted([len(first), len(second)]) == [0, 3], round_


async def test_a_reply_to_an_old_message_is_held_by_its_writer_for_the_whole_lease(
    store: SqlStore, clock: ManualClock
) -> None:
    """A message's time is Telegram's stamp; handled a minute later (a backlog, a
    takeover), its reply rows are still the writer's for the outbox lease from the
    moment they were written, not already stale: another worker's resend sweep would
    send them while the writer does (a duplicate)."""
    from dialogs.events import Address, Outbound

    person = UserKey("telegram", "1")
    stamped = clock.now() - timedelta(minutes=1)
    async with store.session() as session:
        await session.open_event("telegram:1", stamped, person)
        await session.enqueue_outbound(
            person, Address("telegram", "1", "1", True), [Outbound("hello")], stamped
        )
    lease = timedelta(seconds=30)
    assert await store.claim_unsent(clock.now(), lease, ["telegram"]) == []
    clock.advance(lease + timedelta(seconds=1))
    assert len(await store.claim_unsent(clock.now(), lease, ["telegram"])) == 1

"""storage.leases on SQLite and PostgreSQL, with an injected clock: one holder at a
time, takeover only after expiry or release, and a token that counts the tenures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dialogs.clock import ManualClock
from storage import SqlStore
from storage.leases import Leases

NAME = "discord:gateway:0"
TTL = timedelta(seconds=10)


@pytest.fixture
def leases(store: SqlStore, clock: ManualClock) -> Leases:
    return Leases(store, clock=clock)


async def test_the_first_to_ask_holds_it_and_the_others_do_not(leases: Leases) -> None:
    first = await leases.acquire(NAME, "a", TTL)
    assert first is not None and first.holder == "a" and first.token == 1
    assert await leases.acquire(NAME, "b", TTL) is None
    current = await leases.current(NAME)
    assert current is not None and current.holder == "a"


async def test_a_lease_is_taken_over_only_once_it_has_expired(
    leases: Leases, clock: ManualClock
) -> None:
    first = await leases.acquire(NAME, "a", TTL)
    assert first is not None
    clock.advance(TTL - timedelta(milliseconds=1))
    assert await leases.acquire(NAME, "b", TTL) is None
    clock.advance(timedelta(milliseconds=1))
    assert await leases.current(NAME) is None
    taken = await leases.acquire(NAME, "b", TTL)
    assert taken is not None and taken.holder == "b"
    assert taken.token == first.token + 1
    assert taken.expires_at == clock.now() + TTL


async def test_renewing_keeps_it_past_the_first_expiry(leases: Leases, clock: ManualClock) -> None:
    await leases.acquire(NAME, "a", TTL)
    for _ in range(5):
        clock.advance(TTL / 2)
        renewed = await leases.renew(NAME, "a", TTL)
        assert renewed is not None and renewed.token == 1
        assert await leases.acquire(NAME, "b", TTL) is None


async def test_a_holder_that_lost_it_cannot_renew_it(leases: Leases, clock: ManualClock) -> None:
    await leases.acquire(NAME, "a", TTL)
    clock.advance(TTL)
    assert await leases.acquire(NAME, "b", TTL) is not None
    assert await leases.renew(NAME, "a", TTL) is None
    current = await leases.current(NAME)
    assert current is not None and current.holder == "b"


async def test_renewing_needs_the_lease(leases: Leases) -> None:
    assert await leases.renew(NAME, "a", TTL) is None  # never taken
    assert await leases.current(NAME) is None


async def test_an_expired_lease_nobody_took_is_still_its_holders(
    leases: Leases, clock: ManualClock
) -> None:
    await leases.acquire(NAME, "a", TTL)
    clock.advance(TTL * 3)
    renewed = await leases.renew(NAME, "a", TTL)
    assert renewed is not None and renewed.token == 1


async def test_asking_again_for_ones_own_lease_renews_it(
    leases: Leases, clock: ManualClock
) -> None:
    await leases.acquire(NAME, "a", TTL)
    clock.advance(TTL / 2)
    again = await leases.acquire(NAME, "a", TTL)
    assert again is not None and again.token == 1 and again.expires_at == clock.now() + TTL


async def test_a_released_lease_is_free_at_once(leases: Leases) -> None:
    await leases.acquire(NAME, "a", TTL)
    assert not await leases.release(NAME, "b")  # not b's to give up
    assert await leases.release(NAME, "a")
    assert await leases.current(NAME) is None
    assert await leases.renew(NAME, "a", TTL) is None
    taken = await leases.acquire(NAME, "b", TTL)
    assert taken is not None and taken.token == 2
    assert not await leases.release(NAME, "a")


async def test_leases_are_independent_by_name(leases: Leases) -> None:
    assert await leases.acquire("discord:gateway:0", "a", TTL) is not None
    assert await leases.acquire("discord:gateway:1", "b", TTL) is not None


async def test_many_asking_at_once_gives_exactly_one_holder(leases: Leases) -> None:
    # The row exists and is free: only its lock can keep two from taking it.
    await leases.acquire(NAME, "a", TTL)
    await leases.release(NAME, "a")
    results = await asyncio.gather(*(leases.acquire(NAME, f"w{n}", TTL) for n in range(8)))
    assert len([r for r in results if r is not None]) == 1


async def test_a_time_to_live_must_be_positive(leases: Leases) -> None:
    with pytest.raises(ValueError, match="positive"):
        await leases.acquire(NAME, "a", timedelta(0))


async def test_without_an_injected_clock_the_databases_own_is_used(store: SqlStore) -> None:
    # PostgreSQL's clock_timestamp(), SQLite's system clock: a fresh lease expires
    # about one TTL from the real now.
    from datetime import UTC, datetime

    real = Leases(store)
    before = datetime.now(UTC)
    lease = await real.acquire(NAME, "a", TTL)
    assert lease is not None
    assert lease.expires_at - before > TTL - timedelta(seconds=60)
    assert lease.expires_at - before < TTL + timedelta(seconds=60)

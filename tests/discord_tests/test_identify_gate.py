"""The IDENTIFY gate (bot.discord.identify): turns spaced across workers through the
`discord:identify` lease, the lowest connecting shard of a worker first, and a gate
that cannot ask the database falls back to discord.py's own wait."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.discord.identify import IdentifyGate, LocalTurns, StoredTurns
from dialogs.clock import ManualClock
from storage import SqlStore
from storage.leases import Leases

SPACING = 5.0


class Seconds:
    """A monotonic clock that moves only when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_connecting_lower_shard_takes_the_first_turn() -> None:
    seconds = Seconds()
    gate = IdentifyGate(
        LocalTurns(SPACING, seconds), spacing=SPACING, poll=0.25, sleep=seconds.sleep
    )
    order: list[tuple[int, float]] = []

    async def identify(shard: int) -> None:
        await gate.wait_turn(shard)
        order.append((shard, seconds()))

    gate.expect(0)
    gate.expect(1)
    # Shard 1 reaches the gate first, while shard 0 is still connecting.
    one = asyncio.create_task(identify(1))
    for _ in range(10):
        await asyncio.sleep(0)
    assert order == []
    await asyncio.gather(identify(0), one)
    assert [shard for shard, _ in order] == [0, 1]
    assert order[1][1] - order[0][1] >= SPACING


async def test_a_turn_is_every_workers_and_the_next_comes_after_the_spacing(
    store: SqlStore, clock: ManualClock
) -> None:
    leases = Leases(store, clock=clock)
    a = StoredTurns(leases, "worker-a", SPACING)
    b = StoredTurns(leases, "worker-b", SPACING)
    assert await a.take()
    assert not await b.take()
    # Nor the worker that had the last turn: each turn is a new holder.
    assert not await a.take()
    clock.advance(timedelta(seconds=SPACING - 0.1))
    assert not await b.take()
    clock.advance(timedelta(seconds=0.1))
    assert await b.take()
    assert not await a.take()


async def test_without_the_database_a_shard_waits_the_spacing_and_identifies() -> None:
    class Down:
        async def take(self) -> bool:
            raise ConnectionError("database gone")

    seconds = Seconds()
    gate = IdentifyGate(Down(), spacing=SPACING, sleep=seconds.sleep)
    await asyncio.wait_for(gate.wait_turn(0), timeout=5)
    assert seconds() == SPACING

"""A live worker's outbox rows are never taken for their time lease (issue 19): its
send may rightly wait longer than the 30 s (a wave's messages behind the cap), and
another worker taking the row meanwhile sent it a second time. In a three-worker
soak (seed 2) a wave row written by one worker waited 31 s in its outbox; another's
resend sweep took and sent it, then the first sent it too. The liveness lease
(storage/liveness.py) says whether the claimer is alive; only then is the time lease
disregarded. Two stores on one schema play two workers, on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from dialogs.clock import ManualClock
from dialogs.delivery import LEASE as OUTBOX_LEASE
from dialogs.events import Outbound
from storage import open_store
from tests.workers.test_liveness_postgres import ADDRESS, USER, Workers, outbox_claims

pytestmark = pytest.mark.backends("postgresql")


@pytest.fixture
async def pair(store_url: str, clock: ManualClock) -> AsyncIterator[Workers]:
    """`dead` writes the row (and beats, or not); `live` is the other worker."""
    writer = await open_store(store_url, clock=clock)
    other = await open_store(store_url, clock=clock)
    try:
        yield Workers(writer, other, clock)
    finally:
        await other.close()
        await writer.close()


async def write_row(w: Workers, clock: ManualClock) -> None:
    """The writer's reply row, claimed by it as it is written."""
    async with w.dead.session() as s:
        await s.enqueue_outbound(USER, ADDRESS, [Outbound("hi")], clock.now())


async def taken_by_the_other(w: Workers, clock: ManualClock) -> tuple[int, int]:
    """(rows the other worker's resend sweep takes, rows its send to the chat takes)."""
    now = clock.now()
    unsent = await w.live.claim_unsent(now, OUTBOX_LEASE, ["test"])
    chat = await w.live.take_chat(ADDRESS, 10**6, now, OUTBOX_LEASE, have={})
    return len(unsent), len(chat.rows)


async def test_a_live_worker_s_row_is_not_taken_after_its_outbox_lease(
    pair: Workers, clock: ManualClock
) -> None:
    assert not await pair.dead_liveness.beat()  # "dead" only by name: it beats on
    await write_row(pair, clock)
    for _ in range(int(OUTBOX_LEASE.total_seconds()) + 10):
        clock.advance(timedelta(seconds=1))
        assert await pair.dead_liveness.beat()
        assert await taken_by_the_other(pair, clock) == (0, 0)
    assert await outbox_claims(pair.live) == [pair.dead.worker]
    # Its own sweep still takes it once the lease is over (a send of its that failed).
    assert len(await pair.dead.claim_unsent(clock.now(), OUTBOX_LEASE, ["test"])) == 1


async def test_a_claimer_whose_liveness_lapsed_loses_its_rows_to_the_time_lease_too(
    pair: Workers, clock: ManualClock
) -> None:
    """Without a takeover (no heartbeat looked yet), an expired liveness lease proves
    nothing alive: the time lease applies as before."""
    assert not await pair.dead_liveness.beat()
    await write_row(pair, clock)
    clock.advance(OUTBOX_LEASE + timedelta(seconds=1))
    assert await taken_by_the_other(pair, clock) == (1, 0)
    assert await outbox_claims(pair.live) == [pair.live.worker]

"""A dead worker's claims come back as soon as its liveness lapses (storage/liveness.py,
bot/heartbeat.py; issue 19), on the real PostgreSQL.

Two stores on one schema play two workers: each has its own `SqlStore.worker`. Time
comes from an injected clock, for the leases and the claims alike, except in the last
test, where a real guide's heartbeat takes over a lease that lapsed on the database's
clock and its dispatcher delivers at once, its sweep an hour long."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import open_guide
from bot.config import Settings
from bot.heartbeat import Heartbeat
from dialogs.clock import ManualClock
from dialogs.delivery import LEASE as OUTBOX_LEASE
from dialogs.events import Address, Outbound
from dialogs.store import FollowUpRequest, FollowUpStatus, UserKey
from storage import SqlStore, open_store
from storage.errors import FollowUpNotClaimed
from storage.liveness import WorkerLiveness, lease_name
from storage.models import FollowUpRow, LeaseRow
from storage.outbound_rows import OUTBOUND
from tests.conftest import onboard

pytestmark = pytest.mark.backends("postgresql")

TTL = timedelta(seconds=5)
FOLLOWUP_LEASE = timedelta(minutes=5)
ADDRESS = Address("test", "u1", "c1", True)
USER = UserKey("test", "u1")


async def plan(store: SqlStore, clock: ManualClock, key: str = "k1") -> None:
    now = clock.now()
    async with store.session() as s:
        await s.schedule_followup(
            USER, FollowUpRequest("followup", "c1", now, now + timedelta(hours=1), key)
        )


async def followup_claim(store: SqlStore) -> tuple[str, str | None]:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(FollowUpRow.status, FollowUpRow.claimed_by))).one()
        return row[0], row[1]


async def outbox_claims(store: SqlStore) -> list[str]:
    async with store.engine.connect() as conn:
        return list(await conn.scalars(select(OUTBOUND.c.claimed_by).order_by(OUTBOUND.c.id)))


async def lease_rows(store: SqlStore) -> set[str]:
    async with store.engine.connect() as conn:
        return set(await conn.scalars(select(LeaseRow.name)))


class Workers:
    """`dead` beats once, claims a follow-up and writes an outbox row, then stops
    beating; `live` looks on."""

    def __init__(self, dead: SqlStore, live: SqlStore, clock: ManualClock) -> None:
        self.dead, self.live, self.clock = dead, live, clock
        self.dead_liveness = WorkerLiveness(dead, TTL, clock=clock)
        self.live_liveness = WorkerLiveness(live, TTL, clock=clock)

    async def dead_claims(self) -> int:
        """The dead worker's claims: its follow-up and its reply row (seq returned)."""
        assert not await self.dead_liveness.beat()  # its first beat
        await onboard(self.dead, self.clock, ADDRESS)
        await plan(self.dead, self.clock)
        assert len(await self.dead.claim_due(self.clock.now(), 10, ["test"])) == 1
        async with self.dead.session() as s:
            [row] = await s.enqueue_outbound(USER, ADDRESS, [Outbound("hi")], self.clock.now())
        return row.seq

    async def live_looks(self) -> tuple[int, int, int]:
        """The live worker beats, takes over what lapsed, then claims what is free:
        (follow-ups claimed, outbox rows claimed by the resend sweep, rows take_chat
        would send)."""
        await self.live_liveness.beat()
        await self.live_liveness.take_over_dead()
        now = self.clock.now()
        chat = await self.live.take_chat(ADDRESS, 10**6, now, OUTBOX_LEASE, have={})
        unsent = await self.live.claim_unsent(now, OUTBOX_LEASE, ["test"])
        await self.live.recover(now, FOLLOWUP_LEASE, ["test"])
        due = await self.live.claim_due(now, 10, ["test"])
        return len(due), len(unsent), len(chat.rows)


@pytest.fixture
async def workers(store_url: str, clock: ManualClock) -> AsyncIterator[Workers]:
    dead = await open_store(store_url, clock=clock)
    live = await open_store(store_url, clock=clock)
    try:
        yield Workers(dead, live, clock)
    finally:
        await live.close()
        await dead.close()


async def test_a_dead_workers_claims_are_taken_as_soon_as_its_liveness_lapses(
    workers: Workers, clock: ManualClock
) -> None:
    await workers.dead_claims()
    # Within its TTL it may be alive: its rows stay its own, though their leases
    # (30 s, 5 minutes) are far from over either way.
    clock.advance(TTL - timedelta(milliseconds=1))
    assert await workers.live_looks() == (0, 0, 0)
    assert await followup_claim(workers.live) == ("claimed", workers.dead.worker)
    assert await outbox_claims(workers.live) == [workers.dead.worker]
    # Its liveness lapses: the next look takes both over, long before their leases.
    clock.advance(timedelta(milliseconds=2))
    taken = await workers.live_liveness.take_over_dead()
    assert (taken.workers, taken.followups, taken.rows) == ((workers.dead.worker,), 1, 1)
    assert await followup_claim(workers.live) == ("pending", None)
    assert await outbox_claims(workers.live) == [""]
    # Nothing is left of the dead worker; the live one's lease stays.
    assert await lease_rows(workers.live) == {lease_name(workers.live.worker)}
    # Whichever way the live worker looks for them, they are free now.
    assert await workers.live_looks() == (1, 0, 1)
    assert await followup_claim(workers.live) == ("claimed", workers.live.worker)
    assert await outbox_claims(workers.live) == [workers.live.worker]


async def test_the_resend_sweep_takes_a_dead_workers_rows_after_its_liveness_lapses(
    workers: Workers, clock: ManualClock
) -> None:
    """As the test above, through `claim_unsent` rather than `take_chat`."""
    await workers.dead_claims()
    clock.advance(TTL + timedelta(seconds=1))
    await workers.live_liveness.beat()
    await workers.live_liveness.take_over_dead()
    assert len(await workers.live.claim_unsent(clock.now(), OUTBOX_LEASE, ["test"])) == 1


async def test_a_live_worker_keeps_its_claims_however_long_it_takes(
    workers: Workers, clock: ManualClock
) -> None:
    """Renewing every second, for longer than the outbox lease: nothing is taken,
    and its own writes go through."""
    await workers.dead_claims()  # "dead" only by name here: it keeps beating
    for _ in range(20):
        clock.advance(timedelta(seconds=1))
        assert await workers.dead_liveness.beat()
        assert await workers.live_looks() == (0, 0, 0)
    assert await followup_claim(workers.live) == ("claimed", workers.dead.worker)
    assert await outbox_claims(workers.live) == [workers.dead.worker]
    async with workers.dead.session() as s:
        await s.queue_followup(1, ADDRESS, [Outbound("on time")], clock.now())
    assert (await followup_claim(workers.live))[0] == "sent"


async def test_a_worker_taken_for_dead_records_nothing_after_the_takeover(
    workers: Workers, clock: ManualClock
) -> None:
    """Stalled past its TTL, not dead: its claim was taken over and claimed again by
    the live worker, so its late writes raise ClaimLost and its failure mark is
    skipped. When it beats again, it is told it lost its tenure and takes a new one."""
    await workers.dead_claims()
    clock.advance(TTL + timedelta(seconds=1))
    assert await workers.live_looks() == (1, 0, 1)
    with pytest.raises(FollowUpNotClaimed):
        async with workers.dead.session() as s:
            await s.queue_followup(1, ADDRESS, [Outbound("late")], clock.now())
    async with workers.dead.session() as s:
        await s.set_followup_status(
            1, FollowUpStatus.FAILED, clock.now(), only_from=FollowUpStatus.CLAIMED
        )
    assert await followup_claim(workers.live) == ("claimed", workers.live.worker)
    assert not await workers.dead_liveness.beat()  # taken for dead: a new tenure
    assert await workers.dead_liveness.beat()


async def test_a_claimer_without_a_lease_keeps_the_time_leases(
    workers: Workers, clock: ManualClock
) -> None:
    """Nothing proves a worker that never beat dead (it died before its first beat,
    or runs code from before liveness): its rows wait for their own leases."""
    await onboard(workers.dead, clock, ADDRESS)
    await plan(workers.dead, clock)
    assert len(await workers.dead.claim_due(clock.now(), 10, ["test"])) == 1
    async with workers.dead.session() as s:
        await s.enqueue_outbound(USER, ADDRESS, [Outbound("hi")], clock.now())
    clock.advance(OUTBOX_LEASE - timedelta(seconds=1))
    assert await workers.live_looks() == (0, 0, 0)
    clock.advance(timedelta(seconds=2))
    assert await workers.live_looks() == (0, 0, 1)  # the outbox lease is over
    clock.advance(FOLLOWUP_LEASE)
    assert (await workers.live_looks())[0] == 1


async def test_graceful_release_and_dead_workers_leave_no_lease_rows(
    workers: Workers, clock: ManualClock
) -> None:
    assert not await workers.dead_liveness.beat()
    assert not await workers.live_liveness.beat()
    clock.advance(TTL + timedelta(seconds=1))
    # A dead worker that held nothing is cleaned up all the same.
    assert await workers.live_liveness.beat()
    taken = await workers.live_liveness.take_over_dead()
    assert taken.workers == (workers.dead.worker,) and not taken
    assert await lease_rows(workers.live) == {lease_name(workers.live.worker)}
    await workers.live_liveness.release()
    assert await lease_rows(workers.live) == set()


class Arrivals:
    def __init__(self) -> None:
        self.users: list[str] = []
        self.changed = asyncio.Event()

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.users.append(address.user_id)
        self.changed.set()


async def test_a_running_guide_delivers_a_dead_workers_follow_up_at_once(
    store_url: str, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide as `pausecheck run` builds it (sweep an hour): a worker claims a due
    follow-up and dies, its liveness lapsing on the database's clock; the guide's
    heartbeat takes the claim over and its dispatcher sends the follow-up in seconds,
    long before the five-minute lease or the sweep."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", store_url)
    guide = await open_guide(Settings(), clock, sweep_seconds=3600)
    dead = await open_store(store_url, clock=clock)
    try:
        assert isinstance(guide.heartbeat, Heartbeat)
        arrivals = Arrivals()
        guide.senders["test"] = arrivals
        await guide.scheduler.start()
        await onboard(dead, clock, ADDRESS)
        # The database's clock: it lapses a tenth of a second after this beat.
        await WorkerLiveness(dead, timedelta(milliseconds=100)).beat()
        await plan(dead, clock)
        assert len(await dead.claim_due(clock.now(), 10, ["test"])) == 1
        async with asyncio.timeout(30):
            while "u1" not in arrivals.users:
                arrivals.changed.clear()
                await arrivals.changed.wait()
        assert await followup_claim(dead) == ("sent", guide.store.worker)
        # Its own lease goes with a graceful stop; the dead worker's went at takeover.
        assert await lease_rows(dead) == {lease_name(guide.store.worker)}
        await guide.close()
        assert await lease_rows(dead) == set()
    finally:
        await dead.close()
        await guide.close()


async def test_the_heartbeat_asks_for_a_round_when_it_took_claims_over(
    store_url: str, clock: ManualClock
) -> None:
    """Its own way to a round (the notification is the other): called once a dead
    worker's claims were taken, not for a dead worker that held nothing."""
    dead = await open_store(store_url, clock=clock)
    live = await open_store(store_url, clock=clock)
    rounds: list[int] = []
    asked = asyncio.Event()

    def round_now() -> None:
        rounds.append(1)
        asked.set()

    heartbeat = Heartbeat(live, every=0.01)
    try:
        await WorkerLiveness(dead, timedelta(milliseconds=1)).beat()
        await asyncio.sleep(0.01)
        await heartbeat.start(round_now)
        assert rounds == []  # the dead worker held nothing
        # Its row first, then its lease (lapsing at once): nothing to take before.
        await onboard(dead, clock, ADDRESS)
        async with dead.session() as s:
            await s.enqueue_outbound(USER, ADDRESS, [Outbound("hi")], clock.now())
        await WorkerLiveness(dead, timedelta(milliseconds=1)).beat()
        await asyncio.wait_for(asked.wait(), 30)
        assert await outbox_claims(live) == [""]
    finally:
        await heartbeat.close()
        await live.close()
        await dead.close()

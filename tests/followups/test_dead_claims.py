"""A crash between claiming a due follow-up and committing what it said (issue 15,
item 2): a restarted process takes the dead claim back at once, not after the
five-minute lease, and in demo mode (`--clock-scale`) the lease shrinks with the
clock, so a claim left behind comes back before the follow-up's own shrunk limit
would record it missed. Time comes from an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text as sql

from bot.app import open_guide
from bot.config import Settings
from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.events import Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUp, FollowUpRequest, FollowUpStatus, UserKey
from storage import SqlStore, open_store
from storage.errors import FollowUpNotClaimed
from tests.conftest import Chat, make_engine, onboard, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")


async def plan(store: SqlStore, clock: ManualClock, limit: timedelta) -> None:
    now = clock.now()
    async with store.session() as s:
        await s.schedule_followup(USER, FollowUpRequest("followup", "c1", now, now + limit, "k1"))


async def statuses(store: SqlStore) -> list[str]:
    async with store.engine.connect() as conn:
        return [r[0] for r in await conn.execute(sql("select status from followups order by id"))]


async def a_process_claims_and_dies(url: str, clock: ManualClock) -> None:
    """Claimed, and killed before the engine committed anything."""
    doomed = await open_store(url, clock=clock)
    assert len(await doomed.claim_due(clock.now(), 10, ["test"])) == 1
    await doomed.close()


# On PostgreSQL another worker may be rendering it right now: the lease decides there
# (the next test, on both backends).
@pytest.mark.backends("sqlite")
async def test_a_restarted_process_takes_a_dead_claim_back_at_once(
    store_url: str,
    clock: ManualClock,
    chat: Chat,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    url = store_url
    store = await open_store(url, clock=clock)
    try:
        await onboard(store, clock, chat.address)
        await plan(store, clock, timedelta(hours=1))
        await a_process_claims_and_dies(url, clock)
        assert await statuses(store) == ["claimed"]
        clock.advance(timedelta(seconds=1))  # far inside the five-minute lease
        restarted = make_engine(content, store, clock, safety_screen, resources)
        sender = RecordingSender()
        dispatcher = Dispatcher(store, restarted, {"test": sender}, clock)
        assert await dispatcher.run_due() == 1
        assert "checking in like you asked" in texts(sender.sent[0][1])
        assert await statuses(store) == ["sent"]
    finally:
        await store.close()


async def test_after_its_first_round_a_process_leaves_fresh_claims_alone(
    store_url: str,
    clock: ManualClock,
    chat: Chat,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    """Another process may be rendering it right now: only the lease says it died."""
    url = store_url
    store = await open_store(url, clock=clock)
    try:
        await onboard(store, clock, chat.address)
        engine = make_engine(content, store, clock, safety_screen, resources)
        dispatcher = Dispatcher(store, engine, {"test": RecordingSender()}, clock)
        assert await dispatcher.run_due() == 0  # its start
        await plan(store, clock, timedelta(hours=1))
        await a_process_claims_and_dies(url, clock)
        clock.advance(timedelta(minutes=4, seconds=59))
        assert await dispatcher.run_due() == 0
        assert await statuses(store) == ["claimed"]
        clock.advance(timedelta(seconds=2))  # past the lease
        assert await dispatcher.run_due() == 1
        assert await statuses(store) == ["sent"]
    finally:
        await store.close()


async def test_in_demo_mode_the_lease_shrinks_with_the_clock(
    tmp_path: Path, store_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = store_url
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", url)
    guide = await open_guide(Settings(), clock, delay_scale=60)
    try:
        sender = RecordingSender()
        guide.senders["test"] = sender
        assert await guide.dispatcher.run_due() == 0  # its start
        await onboard(guide.store, clock, Chat(guide.engine).address)
        # A follow-up asked for with a 2-hour limit: 2 minutes at 60 times.
        await plan(guide.store, clock, timedelta(hours=2) / 60)
        await a_process_claims_and_dies(url, clock)
        # The five-minute lease is 5 s at 60 times: taken back well inside the limit.
        clock.advance(timedelta(seconds=6))
        assert await guide.dispatcher.run_due() == 1
        assert await statuses(guide.store) == ["sent"]
        assert "checking in like you asked" in texts(sender.sent[0][1])
    finally:
        await guide.close()


class LosesItsClaim:
    """An engine that stalls past its claim's lease in the middle of starting the
    follow-up: meanwhile another worker takes the claim over and sends it, so the
    stalled start's write finds the follow-up no longer claimed and raises, as the
    real engine's does (storage/session.py)."""

    def __init__(self, engine: object, take_over: Callable[[], Awaitable[str]]) -> None:
        self._engine = engine
        self._take_over = take_over

    async def start_due(self, followup: FollowUp) -> object:
        status = await self._take_over()
        raise FollowUpNotClaimed(f"follow-up {followup.id} is {status}, not claimed")

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)


# Several workers share a database on PostgreSQL only; on SQLite the other dispatcher
# would wait for the stalled one's write lock, in this one process, for ever.
@pytest.mark.backends("postgresql")
async def test_a_claim_taken_over_while_its_worker_stalled_is_not_recorded_failed(
    store_url: str,
    clock: ManualClock,
    chat: Chat,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    """The stalled worker's own start fails (the follow-up is no longer its claim);
    what the other worker recorded stands: sent once, not failed (found by the soak
    with three workers, at a lease shrunk to half a second)."""
    store = await open_store(store_url, clock=clock)
    try:
        await onboard(store, clock, chat.address)
        engine = make_engine(content, store, clock, safety_screen, resources)
        other_sender = RecordingSender()
        other = Dispatcher(store, engine, {"test": other_sender}, clock)
        assert await other.run_due() == 0  # its start

        async def take_over() -> str:
            clock.advance(timedelta(minutes=5, seconds=1))  # past the lease
            assert await other.run_due() == 1
            return "sent"

        stalled_sender = RecordingSender()
        stalled = Dispatcher(
            store,
            LosesItsClaim(engine, take_over),  # type: ignore[arg-type]
            {"test": stalled_sender},
            clock,
        )
        await plan(store, clock, timedelta(hours=1))
        await stalled.run_due()
        assert await statuses(store) == ["sent"]
        assert len(other_sender.sent) == 1 and stalled_sender.sent == []
    finally:
        await store.close()


@pytest.mark.backends("postgresql")
async def test_a_stalled_worker_leaves_the_claim_another_worker_holds_now(
    store_url: str,
    clock: ManualClock,
    chat: Chat,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    """Taken back after the lease and claimed again by another worker that has not
    finished yet: the stalled worker's failure must not mark that claim failed (the
    other's start would then find it failed, and the follow-up would be lost)."""
    store = await open_store(store_url, clock=clock)
    other_store = await open_store(store_url, clock=clock)
    try:
        await onboard(store, clock, chat.address)
        engine = make_engine(content, store, clock, safety_screen, resources)

        async def take_over() -> str:
            clock.advance(timedelta(minutes=5, seconds=1))  # past the lease
            await other_store.recover(clock.now(), timedelta(minutes=5))
            assert len(await other_store.claim_due(clock.now(), 10, ["test"])) == 1
            return "pending"

        stalled = Dispatcher(
            store,
            LosesItsClaim(engine, take_over),  # type: ignore[arg-type]
            {"test": RecordingSender()},
            clock,
        )
        await plan(store, clock, timedelta(hours=1))
        await stalled.run_due()
        assert await statuses(store) == ["claimed"]  # the other worker's, untouched
    finally:
        await other_store.close()
        await store.close()


async def test_a_claim_taken_over_and_claimed_again_is_not_the_stalled_workers_to_record(
    store_url: str, clock: ManualClock, chat: Chat
) -> None:
    """The claim names its worker (migration 0014): once another worker has taken it
    back and claimed it again, the stalled worker's late writes are refused (its send
    and its postponement raise ClaimLost, its failure mark is skipped), though the
    status still reads CLAIMED, and the other worker's claim stands."""
    stalled = await open_store(store_url, clock=clock)
    other = await open_store(store_url, clock=clock)
    try:
        await onboard(stalled, clock, chat.address)
        await plan(stalled, clock, timedelta(hours=1))
        [followup] = await stalled.claim_due(clock.now(), 10, ["test"])
        clock.advance(timedelta(minutes=5, seconds=1))  # past the lease
        await other.recover(clock.now(), timedelta(minutes=5))
        assert len(await other.claim_due(clock.now(), 10, ["test"])) == 1
        address = chat.address
        with pytest.raises(FollowUpNotClaimed):
            async with stalled.session() as s:
                await s.queue_followup(followup.id, address, [Outbound("late")], clock.now())
        with pytest.raises(FollowUpNotClaimed):
            async with stalled.session() as s:
                await s.postpone_followup(followup.id, clock.now() + timedelta(hours=1))
        async with stalled.session() as s:
            await s.set_followup_status(
                followup.id, FollowUpStatus.FAILED, clock.now(), only_from=FollowUpStatus.CLAIMED
            )
        assert await statuses(stalled) == ["claimed"]
        async with other.engine.connect() as conn:
            by = (await conn.execute(sql("select claimed_by from followups"))).scalar_one()
        assert by == other.worker
        assert await outbox_rows(other) == 0
        # The other worker's own write goes through.
        async with other.session() as s:
            await s.queue_followup(followup.id, address, [Outbound("on time")], clock.now())
        assert await statuses(other) == ["sent"]
    finally:
        await other.close()
        await stalled.close()


async def outbox_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(sql("select count(*) from outbound"))).scalar_one())


@pytest.mark.backends("postgresql")
async def test_taking_back_passes_over_a_claim_another_transaction_holds(
    store: SqlStore, clock: ManualClock, chat: Chat
) -> None:
    """A row locked now is being worked on (a batch marking it sent): the take-back
    leaves it for its next round rather than wait, which deadlocked against a batch
    that then reached a row the take-back held."""
    await onboard(store, clock, chat.address)
    await plan(store, clock, timedelta(hours=1))
    [claimed] = await store.claim_due(clock.now(), 10, ["test"])
    clock.advance(timedelta(minutes=6))  # past the lease
    async with store.engine.connect() as batch:
        await batch.execute(
            sql("select id from followups where id = :id for update"), {"id": claimed.id}
        )
        # Waiting for the lock would never end: `batch` commits only below.
        await asyncio.wait_for(store.recover(clock.now(), timedelta(minutes=5)), 30)
        await batch.commit()
    assert await statuses(store) == ["claimed"]
    await store.recover(clock.now(), timedelta(minutes=5))
    assert await statuses(store) == ["pending"]

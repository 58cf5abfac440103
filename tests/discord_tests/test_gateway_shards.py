"""Several gateway shards (PAUSECHECK_DISCORD_SHARDS), each under its own lease, on one
PostgreSQL database: in one process, two workers with the real adapter, discord.py's
login and gateway handshake (tests/discord_tests/fake_gateway.py) and the lease rows;
in separate processes, three workers and two shards, the holders killed with -9.

A worker connects each shard whose lease it takes, identifying as that shard, and may
hold several; a shard another worker holds stays shut here; an event is handled only
while the lease of the shard it came on is this worker's; and when a holder dies,
the others take its shards, each within the TTL plus one retry (plus time to connect),
plus one IDENTIFY turn for each shard identified before it: Discord's one IDENTIFY per
5 s is played by the fake, and shard 0 goes first (bot/discord/identify.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import Guide, open_guide
from bot.discord.lease import Timing, lease_name
from dialogs.clock import ManualClock
from storage import open_store
from storage.leases import Lease, Leases
from tests.discord_tests.conftest import discord_settings
from tests.discord_tests.fake_gateway import FakeSocket, Identifies, Script
from tests.discord_tests.test_start import OfflineAdapter
from tests.postgres import postgres_schema_url
from tests.workers.gateway_worker import Swarm

TIMING = Timing(
    ttl=1.5, renew_every=0.2, retry_every=0.1, margin=0.7, failure_backoff=1.0, identify_every=1.0
)
PATIENCE = 20.0  # seconds before a wait counts as a hang; nothing asserts speed
SHARDS = 2
PERSON = 5000  # their DM channel is 5001 (fake_gateway)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - state the code under test changes
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout=PATIENCE)


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
async def guides(database_url: str) -> AsyncIterator[list[Guide]]:
    """Two workers' guides on the same database, both configured for two shards."""
    opened = [
        await open_guide(
            discord_settings(database_url=database_url, discord_shards=SHARDS), ManualClock()
        )
        for _ in range(2)
    ]
    yield opened
    for guide in opened:
        await guide.close()


async def worker(guide: Guide, script: Script, **kw: Any) -> OfflineAdapter:
    adapter = OfflineAdapter(guide, guide.settings, script, timing=TIMING, **kw)
    await guide.add_platform("discord", adapter)
    return adapter


def identified_as(script: Script) -> list[list[int] | None]:
    """The shard each gateway connection identified as, in order."""
    return [socket.shard for socket in script.sockets if socket.shard is not None]


def open_socket(script: Script, shard: int) -> FakeSocket:
    [socket] = [s for s in script.sockets if s.shard == [shard, SHARDS] and not s.closed]
    return socket


def replies_to_person(script: Script) -> int:
    return sum(1 for channel, _ in script.posted if channel == PERSON + 1)


async def test_a_worker_takes_every_free_shard_and_another_takes_them_when_it_stops(
    guides: list[Guide],
) -> None:
    first, second = Script(), Script()
    a, b = await worker(guides[0], first), await worker(guides[1], second)
    try:
        await a.start()
        assert a.held_shards() == [0, 1]
        assert sorted(identified_as(first)) == [[0, 2], [1, 2]]  # type: ignore[type-var]
        await b.start()
        assert b.held_shards() == []
        await asyncio.sleep(TIMING.ttl)  # a renews both; b keeps asking for both
        assert identified_as(second) == []
        leases = Leases(guides[0].store)
        for shard in range(SHARDS):
            current = await leases.current(lease_name(shard))
            assert current is not None and current.token == 1, shard
        # Only shard 0's client synced the commands: one application, one list.
        assert len([r for r in first.requests if r[0] == "PUT"]) == 1

        await a.stop()  # a deploy: a releases both leases on its way out
        await until(lambda: b.held_shards() == [0, 1])
        assert sorted(identified_as(second)) == [[0, 2], [1, 2]]  # type: ignore[type-var]
    finally:
        await a.stop()
        await b.stop()


async def test_shards_freed_at_once_identify_shard_0_first_spaced_as_discord_allows(
    guides: list[Guide],
) -> None:
    """Discord refuses a bot's IDENTIFY sooner than its limit after the last one,
    whichever worker sends it (the fake's limit here is half the gate's spacing, so
    only an IDENTIFY that skipped the gate is refused). A worker taking two shards at
    once identifies shard 0 first and shard 1 a turn later, at the start and when
    another worker frees both; none is refused and retried."""
    seen = Identifies(every=TIMING.identify_every / 2)
    first, second = Script(identifies=seen), Script(identifies=seen)
    a, b = await worker(guides[0], first), await worker(guides[1], second)
    try:
        await a.start()
        assert a.held_shards() == [0, 1]
        await b.start()
        await a.stop()  # both shards free at once
        await until(lambda: b.held_shards() == [0, 1])
        assert seen.refused == []
        assert [shard for _, shard in seen.accepted] == [[0, 2], [1, 2], [0, 2], [1, 2]]
        assert sorted(identified_as(second)) == [[0, 2], [1, 2]]  # type: ignore[type-var]
    finally:
        await a.stop()
        await b.stop()


async def test_each_shard_is_its_own_lease(guides: list[Guide]) -> None:
    """A shard held elsewhere stays shut here while this worker holds the other, and
    is taken once it comes free."""
    leases = Leases(guides[0].store)
    # Another worker, somewhere, holds shard 1.
    assert await leases.acquire(lease_name(1), "elsewhere", timedelta(seconds=60)) is not None
    script = Script()
    a = await worker(guides[0], script)
    try:
        await a.start()
        assert a.held_shards() == [0]
        assert identified_as(script) == [[0, 2]]
        await asyncio.sleep(TIMING.ttl)
        assert a.held_shards() == [0]
        assert await leases.release(lease_name(1), "elsewhere")
        await until(lambda: a.held_shards() == [0, 1])
        assert sorted(identified_as(script)) == [[0, 2], [1, 2]]  # type: ignore[type-var]
    finally:
        await a.stop()


async def test_an_event_is_handled_only_in_the_tenure_of_the_shard_it_came_on(
    guides: list[Guide],
) -> None:
    """A DM through shard 1's connection after shard 1's lease ran out here (a frozen
    event loop: the keeper has not closed it yet) is left alone, though this worker
    still holds shard 0; the same through shard 0 is answered."""
    script = Script()
    a = await worker(guides[0], script)
    try:
        await a.start()
        assert a.held_shards() == [0, 1]
        # Shard 1's deadline has passed, as after a freeze; its keeper has not run yet.
        a._keepers[1]._deadline = 0.0
        open_socket(script, 1).direct_message(PERSON, "/help", message_id=700000000000000001)
        await asyncio.sleep(0.5)
        assert replies_to_person(script) == 0

        open_socket(script, 0).direct_message(PERSON, "/help", message_id=700000000000000002)
        await until(lambda: replies_to_person(script) > 0)
    finally:
        await a.stop()


# ------------------------------------------------------------- kill -9, in processes

BOUND = Timing().ttl + Timing().retry_every + 5.0  # as test_gateway_failover.py
# Each shard a survivor takes after another waits one IDENTIFY turn more.
TURN = Timing().identify_every


async def _migrate_and_read(url: str) -> dict[int, Lease | None]:
    store = await open_store(url)
    try:
        return {shard: await Leases(store).current(lease_name(shard)) for shard in range(SHARDS)}
    finally:
        await store.close()


def holders(swarm: Swarm) -> dict[int, int | None]:
    """Shard -> the worker whose gateway of it is open (raises on two at once)."""
    return {shard: swarm.holder(shard) for shard in range(SHARDS)}


def test_three_workers_two_shards_the_survivors_take_a_killed_holders_shards(
    tmp_path: Path,
) -> None:
    with postgres_schema_url() as url:
        assert asyncio.run(_migrate_and_read(url)) == {0: None, 1: None}
        swarm = Swarm(url, tmp_path / "events", shards=SHARDS)
        try:
            workers = {swarm.spawn() for _ in range(3)}
            for pid in workers:
                swarm.wait_for("started", pid=pid)
            held = holders(swarm)
            assert None not in held.values(), held

            # Kill whoever holds shard 1 (the first to start holds both, usually):
            # each of its shards comes back at one of the two others.
            victim = held[1]
            assert victim is not None
            lost = [shard for shard, pid in held.items() if pid == victim]
            killed_at = swarm.kill(victim)
            for turn, shard in enumerate(lost):
                who, ready_at = swarm.wait_for("ready", after=killed_at, shard=shard, timeout=60)
                assert who in workers - {victim}
                late = ready_at - killed_at
                assert late < BOUND + turn * TURN, f"shard {shard}: {late:.1f} s"
            held = holders(swarm)
            assert set(held.values()) <= workers - {victim}, held

            # Again: kill the holder of shard 1 now; the last worker holds both.
            victim2 = held[1]
            assert victim2 is not None
            [last] = workers - {victim, victim2}
            killed_at = swarm.kill(victim2)
            for turn, shard in enumerate(s for s, pid in held.items() if pid == victim2):
                who, ready_at = swarm.wait_for("ready", after=killed_at, shard=shard, timeout=60)
                assert who == last
                late = ready_at - killed_at
                assert late < BOUND + turn * TURN, f"shard {shard}: {late:.1f} s"
            assert holders(swarm) == {0: last, 1: last}

            leases = asyncio.run(_migrate_and_read(url))
            for shard, lease in leases.items():
                assert lease is not None and f":{last}:" in lease.holder, shard
        finally:
            swarm.stop_all()

"""Two Discord workers on one PostgreSQL database, in one process: the real adapter,
discord.py's login and gateway handshake (tests/discord_tests/fake_gateway.py) and the
lease row (storage.leases). One connects; the other sends through REST only and takes
the gateway over when the first stops or can no longer renew. The kill -9 case, in
separate processes, is tests/discord_tests/test_gateway_failover.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bot.app import Guide, open_guide
from bot.discord.lease import StoredLease, Timing, holder_name, lease_name
from dialogs.clock import ManualClock
from dialogs.events import Address, Outbound
from storage.leases import Leases
from tests.discord_tests.conftest import discord_settings
from tests.discord_tests.fake_gateway import Script
from tests.discord_tests.test_start import OfflineAdapter
from tests.postgres import postgres_schema_url

TIMING = Timing(ttl=1.5, renew_every=0.2, retry_every=0.1, margin=0.7, failure_backoff=1.0)
PATIENCE = 20.0  # seconds before a wait counts as a hang; nothing asserts speed


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - state the code under test changes
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout=PATIENCE)


class StallingLease(StoredLease):
    """The stored lease, whose calls can be made to hang: a holder cut off from the
    database (a network partition), still connected to Discord."""

    stalled = False

    async def acquire(self) -> bool:
        if self.stalled:
            await asyncio.Event().wait()
        return await super().acquire()

    async def renew(self) -> bool:
        if self.stalled:
            await asyncio.Event().wait()
        return await super().renew()


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
async def guides(database_url: str) -> AsyncIterator[list[Guide]]:
    """Two workers' guides on the same database."""
    opened = [
        await open_guide(discord_settings(database_url=database_url), ManualClock())
        for _ in range(2)
    ]
    yield opened
    for guide in opened:
        await guide.close()


def worker(guide: Guide, script: Script, **kw: Any) -> OfflineAdapter:
    return OfflineAdapter(guide, guide.settings, script, timing=TIMING, **kw)


def identified(script: Script) -> bool:
    return any(p["op"] == 2 for p in script.sent_to_gateway)


async def test_one_worker_holds_the_gateway_and_the_other_sends_through_rest(
    guides: list[Guide],
) -> None:
    first, second = Script(), Script()
    a, b = worker(guides[0], first), worker(guides[1], second)
    await guides[1].add_platform("discord", b)
    try:
        await a.start()
        assert a.holds_gateway and identified(first)
        await b.start()
        assert not b.holds_gateway
        await asyncio.sleep(TIMING.ttl)  # a renews; b keeps asking
        assert not identified(second)
        current = await Leases(guides[0].store).current(lease_name(0))
        assert current is not None and current.token == 1

        # Without the gateway, b still delivers: a check-in goes to the person's DMs.
        await b.send(Address("discord", "5000", "5000"), [Outbound("Time to check in")])
        assert [(c, r["json"]["content"]) for c, r in second.posted] == [(5001, "Time to check in")]

        await a.stop()  # a deploy: a releases the lease on its way out
        await until(lambda: b.holds_gateway)
        assert identified(second)
    finally:
        await a.stop()
        await b.stop()


async def test_a_holder_cut_off_from_the_database_disconnects_before_another_takes_over(
    guides: list[Guide],
) -> None:
    first, second = Script(), Script()
    stalling = StallingLease(Leases(guides[0].store), lease_name(0), holder_name(), TIMING.ttl)
    a = worker(guides[0], first, lease=stalling)
    b = worker(guides[1], second)
    seen_at_takeover: list[bool] = []
    try:
        await a.start()
        await b.start()
        assert a.holds_gateway and not b.holds_gateway
        old_socket = a.client.ws if a.client is not None else None
        assert old_socket is not None and old_socket.open

        async def watch() -> None:
            assert b.client is not None
            await b.client.gateway_ready.wait()
            # The moment the new holder is ready: is the old one still connected?
            seen_at_takeover.append(a.holds_gateway or old_socket.open)

        watcher = asyncio.create_task(watch())
        stalling.stalled = True  # a's calls to the database hang from now on
        await asyncio.wait_for(watcher, timeout=PATIENCE)
        assert seen_at_takeover == [False]
        assert identified(second)
    finally:
        await a.stop()
        await b.stop()

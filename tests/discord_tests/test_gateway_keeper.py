"""`GatewayKeeper` (bot.discord.lease) with a scripted lease and gateway: the gateway
is open only while the lease is held, a renewal that fails, errs or hangs closes it at
once, and a worker without the lease stands by and takes it when it comes free.

Small timings keep the tests short; every wait has a generous limit only so that a
broken keeper fails instead of hanging, and no assertion is about speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from bot.discord.lease import GatewayKeeper, SoleLease, StoredLease, Timing, gateway_lease
from storage import SqlStore
from tests.discord_tests.conftest import SIMULATED, World, texts

FAST = Timing(ttl=0.6, renew_every=0.05, retry_every=0.02, margin=0.3, failure_backoff=0.2)
PATIENCE = 10.0  # seconds before a wait counts as a hang


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - state the code under test changes
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout=PATIENCE)


@dataclass
class ScriptedLease:
    """A lease someone else may hold; renewals can be refused, fail or hang."""

    shared = True
    free: bool = True
    renewal: str = "ok"  # "ok", "refused", "error" or "hang"
    log: list[str] = field(default_factory=list)
    renewals: int = 0
    attempts: int = 0
    cancelled_renewals: int = 0

    async def acquire(self) -> bool:
        self.attempts += 1
        if self.free:
            self.free = False
            self.log.append("acquired")
            return True
        return False

    async def renew(self) -> bool:
        if self.renewal == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled_renewals += 1
                raise
        if self.renewal == "error":
            raise ConnectionError("the database went away")
        if self.renewal == "refused":
            return False
        self.renewals += 1
        return True

    async def release(self) -> None:
        self.log.append("released")
        self.free = True


@dataclass
class ScriptedGateway:
    log: list[str]
    fail_with: Exception | None = None
    opened: int = 0
    is_running: bool = False
    before_ready: Callable[[], Awaitable[object]] | None = None

    async def open(self) -> None:
        if self.before_ready is not None:
            await self.before_ready()
        if self.fail_with is not None:
            raise self.fail_with
        self.opened += 1
        self.is_running = True
        self.log.append("open")

    def running(self) -> bool:
        return self.is_running

    async def close(self) -> None:
        if self.is_running:
            self.log.append("closed")
        self.is_running = False


@pytest.fixture
def lease() -> ScriptedLease:
    return ScriptedLease()


@pytest.fixture
def gateway(lease: ScriptedLease) -> ScriptedGateway:
    return ScriptedGateway(lease.log)


@pytest.fixture
async def keeper(lease: ScriptedLease, gateway: ScriptedGateway) -> AsyncIterator[GatewayKeeper]:
    k = GatewayKeeper(lease, gateway, FAST)
    yield k
    await k.stop()


async def test_the_holder_opens_the_gateway_renews_and_on_stop_closes_then_releases(
    keeper: GatewayKeeper, lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    assert await keeper.start()
    assert keeper.holding and gateway.is_running
    await until(lambda: lease.renewals >= 3)
    assert gateway.opened == 1
    await keeper.stop()
    assert lease.log == ["acquired", "open", "closed", "released"]
    assert not keeper.holding


async def test_without_the_lease_the_gateway_stays_shut_until_it_comes_free(
    keeper: GatewayKeeper, lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    lease.free = False  # another worker holds it
    assert not await keeper.start()
    await until(lambda: lease.attempts >= 5)
    assert gateway.opened == 0 and not keeper.holding
    lease.free = True  # its holder released it, or it expired
    await until(lambda: keeper.holding)
    assert lease.log == ["acquired", "open"]


@pytest.mark.parametrize("renewal", ["refused", "error", "hang"])
async def test_a_renewal_that_does_not_succeed_closes_the_gateway(
    keeper: GatewayKeeper, lease: ScriptedLease, gateway: ScriptedGateway, renewal: str
) -> None:
    assert await keeper.start()
    await until(lambda: lease.renewals >= 1)
    lease.renewal = renewal
    await until(lambda: not gateway.is_running)
    assert lease.log[:3] == ["acquired", "open", "closed"]
    assert not keeper.holding
    if renewal == "hang":
        # It was not waited for past the deadline: the keeper gave it up.
        await until(lambda: lease.cancelled_renewals == 1)


async def test_after_losing_it_the_worker_asks_again_and_does_not_reconnect_meanwhile(
    keeper: GatewayKeeper, lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    assert await keeper.start()
    lease.renewal = "refused"  # another worker took it over
    await until(lambda: not gateway.is_running)
    attempts = lease.attempts
    await until(lambda: lease.attempts >= attempts + 5)
    assert gateway.opened == 1


async def test_a_gateway_that_cannot_open_fails_the_start_and_frees_the_lease(
    lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    gateway.fail_with = RuntimeError("intents not allowed")
    keeper = GatewayKeeper(lease, gateway, FAST)
    with pytest.raises(RuntimeError, match="intents"):
        await keeper.start()
    await keeper.stop()
    assert lease.log == ["acquired", "released"]
    assert lease.free


async def test_a_gateway_that_ends_by_itself_frees_the_lease_for_another_worker(
    keeper: GatewayKeeper, lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    assert await keeper.start()
    gateway.is_running = False  # discord.py gave up (a revoked token)
    await until(lambda: "released" in lease.log)
    assert not keeper.holding


async def test_a_renewal_failing_while_connecting_abandons_the_connection(
    lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    ready = asyncio.Event()
    gateway.before_ready = ready.wait  # Discord is slow to say READY
    lease.renewal = "refused"
    keeper = GatewayKeeper(lease, gateway, FAST)
    try:
        # The first attempt ends without the gateway: start does not wait for ever.
        assert not await asyncio.wait_for(keeper.start(), timeout=PATIENCE)
        assert gateway.opened == 0
    finally:
        await keeper.stop()


async def test_a_stop_during_the_first_attempt_ends_it(
    lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    gateway.before_ready = asyncio.Event().wait  # never ready
    keeper = GatewayKeeper(lease, gateway, FAST)
    starting = asyncio.create_task(keeper.start())
    await until(lambda: lease.renewals >= 1)
    await keeper.stop()
    # Whoever was waiting for the first attempt hears that the gateway is not held.
    assert not await asyncio.wait_for(starting, timeout=PATIENCE)
    assert lease.log == ["acquired", "released"]


def test_the_holder_gives_up_before_the_lease_can_expire() -> None:
    timing = Timing()
    assert timing.deadline(100.0) < 100.0 + timing.ttl
    assert timing.renew_every < timing.ttl - timing.margin
    # Takeover after a holder dies: at most TTL + one retry, inside the 15 s promised.
    assert timing.ttl + timing.retry_every < 15.0
    with pytest.raises(ValueError, match="renew_every"):
        Timing(ttl=5.0, renew_every=4.0, margin=2.0)


async def test_the_lease_is_a_row_on_postgresql_and_always_held_on_sqlite(
    store: SqlStore, backend: str
) -> None:
    lease = gateway_lease(store, Timing())
    assert isinstance(lease, SoleLease if backend == "sqlite" else StoredLease)


class ManualMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_past_its_deadline_a_holder_handles_nothing_even_before_it_wakes(
    lease: ScriptedLease, gateway: ScriptedGateway
) -> None:
    clock = ManualMonotonic()
    keeper = GatewayKeeper(lease, gateway, FAST, clock=clock)
    try:
        assert await keeper.start()
        assert keeper.in_tenure()
        # Frozen past the deadline (a blocked event loop, a paused VM): the next
        # thing to run may be an event from the socket, not the keeper.
        clock.now += FAST.ttl - FAST.margin + 0.01
        assert not keeper.in_tenure()
    finally:
        await keeper.stop()
    assert not keeper.in_tenure()


async def test_alone_on_sqlite_the_holder_is_always_in_tenure(gateway: ScriptedGateway) -> None:
    clock = ManualMonotonic()
    keeper = GatewayKeeper(SoleLease(), gateway, FAST, clock=clock)
    try:
        assert await keeper.start()
        clock.now += 3600
        assert keeper.in_tenure()
    finally:
        await keeper.stop()


class OutOfTenure:
    holding = True

    def in_tenure(self) -> bool:
        return False

    async def stop(self) -> None:
        return None


@SIMULATED
async def test_an_event_arriving_after_the_lease_ran_out_is_left_alone(world: World) -> None:
    world.adapter._keepers = {0: OutOfTenure()}  # type: ignore[dict-item]
    await world.alice.send_dm("/pause")
    await world.env.settle()
    assert [m for m in world.alice.user.dm_channel.history() if m.author.bot] == []
    assert (await world.state(world.alice)).flow_id is None

    world.adapter._keepers = {}  # in tenure again: the same DM is handled
    await world.alice.send_dm("/pause")
    assert "pause for a minute" in texts(
        [m for m in world.alice.user.dm_channel.history() if m.author.bot]
    )

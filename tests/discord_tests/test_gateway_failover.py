"""Two Discord worker processes on the real PostgreSQL (tests/workers/gateway_worker.py):
the one holding the gateway is killed with -9, and the other takes the gateway over.

The promise is 15 s; the design gives at most the TTL plus one retry (11 s) plus the
time to connect. The bound asserted here adds 5 s to the design's for connecting on a
loaded machine; `bench/gateway_failover.py` prints the real figures.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.discord.lease import Timing, lease_name
from storage import open_store
from storage.leases import Lease, Leases
from tests.postgres import postgres_schema_url
from tests.workers.gateway_worker import Swarm

TIMING = Timing()
BOUND = TIMING.ttl + TIMING.retry_every + 5.0


async def _migrate_and_read(url: str) -> Lease | None:
    store = await open_store(url)
    try:
        return await Leases(store).current(lease_name(0))
    finally:
        await store.close()


def test_when_the_holder_is_killed_another_worker_takes_the_gateway_over(
    tmp_path: Path,
) -> None:
    with postgres_schema_url() as url:
        # Migrated before the workers start, so they do not race to create tables.
        assert asyncio.run(_migrate_and_read(url)) is None
        swarm = Swarm(url, tmp_path / "events")
        try:
            workers = {swarm.spawn(), swarm.spawn()}
            for pid in workers:
                swarm.wait_for("started", pid=pid)  # up: holding, or standing by
            first = swarm.holder()
            assert first is not None
            [second] = workers - {first}

            killed_at = swarm.kill(first)
            who, ready_at = swarm.wait_for("ready", after=killed_at, timeout=60)
            assert who == second
            failover = ready_at - killed_at
            assert failover < BOUND, f"took {failover:.1f} s"

            lease = asyncio.run(_migrate_and_read(url))
            assert lease is not None and f":{second}:" in lease.holder
            assert lease.token == 2
        finally:
            swarm.stop_all()

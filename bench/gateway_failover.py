"""How long Discord is without a gateway when the worker holding it dies (issue 19).

Three worker processes on the real PostgreSQL (tests/workers/gateway_worker.py: the
real adapter and lease keeper, discord.py's own login and gateway handshake against a
fake that opens no socket). One holds the gateway lease; the holder is killed with
-9 at a random moment of its renewal cycle, and the time from the kill to another
worker's READY is the failover. A new worker replaces each killed one, so two always
stand by. After every takeover the notes are checked for two holders at once.

The design's window: the lease expires between TTL - renew interval and TTL after the
kill, and a standby asks once per retry interval, so takeover comes between
TTL - renew (5 s) and TTL + retry (8 s), plus the time to connect. The promise is
15 s.

Run: `python -m bench.gateway_failover` (about a minute and a half; `--kills 2` for a
short one). Needs PostgreSQL at PAUSECHECK_TEST_POSTGRES_URL (tests/postgres.py).
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bot.discord.lease import Timing
from storage import open_store
from tests.postgres import postgres_schema_url
from tests.workers.gateway_worker import Swarm

PROMISE = 15.0


async def _migrate(url: str) -> None:
    store = await open_store(url)
    await store.close()


def measure(url: str, kills: int, workers: int, seed: int) -> list[float]:
    timing = Timing()
    rng = random.Random(seed)
    failovers: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        swarm = Swarm(url, Path(folder) / "events")
        try:
            started = {swarm.spawn() for _ in range(workers)}
            for round_ in range(1, kills + 1):
                for pid in started:
                    swarm.wait_for("started", pid=pid)
                holder = swarm.holder()
                while holder is None:  # the first one is still connecting
                    time.sleep(0.05)
                    holder = swarm.holder()
                # Anywhere in the holder's renewal cycle.
                time.sleep(rng.uniform(0, timing.renew_every))
                killed_at = swarm.kill(holder)
                who, ready_at = swarm.wait_for("ready", after=killed_at, timeout=60)
                failovers.append(ready_at - killed_at)
                swarm.holder()  # raises if two were connected at once
                print(f"  kill {round_}: worker {who} took over in {failovers[-1]:.2f} s")
                started = {swarm.spawn()}
        finally:
            swarm.stop_all()
    return failovers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args(argv)
    timing = Timing()
    print(
        f"== Discord gateway failover: {args.workers} workers on PostgreSQL, "
        f"{args.kills} kill -9 of the holder =="
    )
    print(
        f"   TTL {timing.ttl:g} s, renewal every {timing.renew_every:g} s, "
        f"standbys ask every {timing.retry_every:g} s"
    )
    try:
        schema = postgres_schema_url()
        url = schema.__enter__()
    except BaseException as exc:  # pytest's skip, outside pytest
        print(f"   skipped: {exc}")
        return
    try:
        asyncio.run(_migrate(url))
        failovers = measure(url, args.kills, args.workers, args.seed)
    finally:
        schema.__exit__(None, None, None)
    low, high = timing.ttl - timing.renew_every, timing.ttl + timing.retry_every
    print(
        f"   failover p50 {statistics.median(failovers):.2f} s, max {max(failovers):.2f} s "
        f"(design: {low:g} to {high:g} s plus connecting; promise {PROMISE:g} s); "
        f"never two holders"
    )
    print(f"   load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

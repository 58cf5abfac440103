"""psycopg 3 or asyncpg under the guide on PostgreSQL: the same engine work through
each driver (issue 19, item 1: "measure both and record the choice").

Per driver, in a database of its own (bench/pg.py), with the real engine, content,
safety screen and store:
- turns: the pause flow walked by `--people` people, 10 events at a time (as
  bench/engine_turns.py does on SQLite): events/s, p50 and p99 of `engine.handle`;
- wave: `--followups` follow-ups due now, through `Dispatcher.run_due()` with the caps
  off and a sender that only counts: follow-ups/s.
The drivers take turns, `--rounds` times, so the machine's load drifts over both alike;
the table shows each driver's median and asyncpg's figure over psycopg's.

asyncpg is not a dependency: `pip install asyncpg` to measure it (the run says so and
measures psycopg alone otherwise). Run: `python -m bench.pg_drivers`. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bench.engine_turns import CONCURRENCY, WALK, _p50_p99, _run
from bench.guide_parts import adult_profile, make_engine
from bench.pg import database_url, plant_followups, temporary_database
from dialogs.clock import SystemClock
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import UserKey
from storage import open_store

DRIVERS = ("psycopg", "asyncpg")
PLATFORM = "bench"


@dataclass
class Figures:
    turns_per_second: float
    p50: float
    p99: float
    wave_per_second: float


class CountingSender:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent += 1


async def measure(driver: str, people: int, followups: int) -> Figures:
    with temporary_database() as database:
        url = database_url(database, driver)
        store = await open_store(url)
        engine = make_engine(store)
        clock = SystemClock()
        users = [UserKey("walk", f"p{n}") for n in range(people)]
        async with store.session() as s:
            for user in users:
                await s.save_profile(user, adult_profile(clock.now()))

        async def turn(user: UserKey, i: int, _n: int) -> None:
            address = Address("walk", user.user_id, user.user_id)
            what = WALK[i]
            kind = {"command": what} if isinstance(what, Command) else {"text": what}
            inbound = Inbound(address, f"e{user.user_id}-{i}", clock.now(), **kind)
            replies = await engine.handle(inbound)
            if not replies or "went wrong" in replies[0].text:
                raise RuntimeError(f"{driver}: the engine failed at step {i}: {replies}")

        elapsed, latencies = await _run(users, turn)
        p50, p99 = _p50_p99(latencies)
        turns = len(latencies) / elapsed

        await plant_followups(
            url, PLATFORM, followups, clock.now() - timedelta(minutes=1), timedelta(seconds=50)
        )
        sender = CountingSender()
        dispatcher = Dispatcher(store, engine, {PLATFORM: sender}, clock)
        began = time.perf_counter()
        while await dispatcher.run_due():
            pass
        wave = time.perf_counter() - began
        await store.close()
        if sender.sent != followups:
            raise RuntimeError(f"{driver}: {sender.sent} of {followups} follow-ups sent")
        return Figures(turns, p50, p99, followups / wave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--followups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    drivers = [d for d in DRIVERS if importlib.util.find_spec(d) is not None]
    if "asyncpg" not in drivers:
        print("asyncpg is not installed (pip install asyncpg): measuring psycopg alone\n")
    runs: dict[str, list[Figures]] = {d: [] for d in drivers}
    for n in range(args.rounds):
        # Alternate who goes first, so a trend in the load favours neither.
        for driver in drivers if n % 2 == 0 else reversed(drivers):
            runs[driver].append(asyncio.run(measure(driver, args.people, args.followups)))
    medians = {
        d: Figures(
            *(statistics.median(getattr(f, name) for f in got) for name in Figures.__annotations__)
        )
        for d, got in runs.items()
    }
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.people} people x {len(WALK)} events of the pause flow, {CONCURRENCY} at a "
        f"time; then a wave of {args.followups} due follow-ups, caps off. Median of "
        f"{args.rounds} rounds per driver, taking turns. Load average: {load}\n"
    )
    header = f"{'driver':<16}{'turns/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'wave/s':>9}"
    print(header)
    print("-" * len(header))
    for driver, f in medians.items():
        print(
            f"{driver:<16}{f.turns_per_second:>9.0f}{f.p50 * 1000:>9.1f}"
            f"{f.p99 * 1000:>9.1f}{f.wave_per_second:>9.0f}"
        )
    if len(medians) == 2:
        a, p = medians["asyncpg"], medians["psycopg"]
        wave = a.wave_per_second / p.wave_per_second
        print(
            f"{'asyncpg/psycopg':<16}{a.turns_per_second / p.turns_per_second:>9.2f}"
            f"{a.p50 / p.p50:>9.2f}{a.p99 / p.p99:>9.2f}{wave:>9.2f}"
        )


if __name__ == "__main__":
    main()

"""One worker process of bench/workers.py: the real engine and dispatcher on a shared
database, started together with the others (it waits for GO_FILE).

  python -m bench.worker_proc turns URL OUT GO INDEX WORKERS PEOPLE
      walks the pause flow for people p<i> with i % WORKERS == INDEX, 10 events at a
      time; writes {"events", "began", "ended", "latencies"} as JSON to OUT.
  python -m bench.worker_proc dispatch URL OUT GO LEASE_SECONDS UNTIL
      runs due follow-ups until the wall clock passes UNTIL (a Unix time), asking for
      more every POLL seconds when nothing is due; appends "user_id unix_time" to OUT
      for every follow-up sent, flushed at once (it may be killed with -9).
  python -m bench.worker_proc scheduled URL OUT GO LEASE_SECONDS UNTIL [without-liveness]
      the same, woken as `pausecheck run` is: bot.scheduler.DispatchScheduler at the
      next due time, by LISTEN/NOTIFY from the other workers (storage.notify) and by
      its 30 s sweep, with its liveness heartbeat (bot/heartbeat.py) on PostgreSQL
      unless told `without-liveness` (the baseline: the leases alone).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from bench.engine_turns import WALK, _run
from bench.guide_parts import make_engine
from bot.heartbeat import Heartbeat
from bot.scheduler import DispatchScheduler
from dialogs.clock import SystemClock
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import UserKey
from storage import open_store
from storage.notify import wakeups_for

POLL = 0.1  # seconds between looks when nothing is due (no LISTEN here: see workers.py)


async def _go(go: Path) -> None:
    while not go.exists():  # noqa: ASYNC110, ASYNC240 - another process makes the file
        await asyncio.sleep(0.01)


async def turns(url: str, out: Path, go: Path, index: int, workers: int, people: int) -> None:
    store = await open_store(url)
    engine = make_engine(store)
    clock = SystemClock()
    users = [UserKey("walk", f"p{n}") for n in range(people) if n % workers == index]
    out.with_suffix(".ready").write_text("ready")
    await _go(go)

    async def turn(user: UserKey, i: int, _n: int) -> None:
        address = Address("walk", user.user_id, user.user_id)
        what = WALK[i]
        kind = {"command": what} if isinstance(what, Command) else {"text": what}
        inbound = Inbound(address, f"e{user.user_id}-{i}", clock.now(), **kind)  # type: ignore[arg-type]
        replies = await engine.handle(inbound)
        if not replies or "went wrong" in replies[0].text:
            raise RuntimeError(f"the engine failed at step {i}: {replies}")

    began = time.time()
    _, latencies = await _run(users, turn)
    ended = time.time()
    await store.close()
    out.write_text(  # noqa: ASYNC240 - the run is over
        json.dumps(
            {"events": len(latencies), "began": began, "ended": ended, "latencies": latencies}
        )
    )


class FileSender:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self._file.write(f"{address.user_id} {time.time():.6f}\n")


async def dispatch(
    url: str,
    out: Path,
    go: Path,
    lease: float,
    until: float,
    *,
    scheduled: bool = False,
    liveness: bool = True,
) -> None:
    store = await open_store(url)
    engine = make_engine(store)
    clock = SystemClock()
    sender = FileSender(out)
    dispatcher = Dispatcher(store, engine, {"bench": sender}, clock, lease=timedelta(seconds=lease))
    # Its name on the rows it claims: bench/workers.py kills it while it holds some.
    out.with_suffix(".ready").write_text(store.worker)
    await _go(go)
    if scheduled:
        postgres = store.engine.dialect.name == "postgresql"
        heartbeat = Heartbeat(store) if postgres and liveness else None
        scheduler = DispatchScheduler(
            dispatcher,
            store,
            sweep_seconds=30.0,
            clock=clock,
            wakeups=wakeups_for(url),
            heartbeat=heartbeat,
        )
        await scheduler.start()
        await asyncio.sleep(max(0.0, until - time.time()))
        await scheduler.shutdown()
        if heartbeat is not None:
            await heartbeat.close()
    else:
        while time.time() < until:
            if not await dispatcher.run_due():
                await asyncio.sleep(POLL)
    await store.close()


def main(argv: list[str]) -> None:
    mode, url, out, go = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    if mode == "turns":
        asyncio.run(turns(url, out, go, int(argv[4]), int(argv[5]), int(argv[6])))
    elif mode in ("dispatch", "scheduled"):
        scheduled = mode == "scheduled"
        liveness = "without-liveness" not in argv[6:]
        lease, until = float(argv[4]), float(argv[5])
        asyncio.run(dispatch(url, out, go, lease, until, scheduled=scheduled, liveness=liveness))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

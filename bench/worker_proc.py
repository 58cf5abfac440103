"""One worker process of bench/workers.py: the real engine and dispatcher on a shared
database, started together with the others (it waits for GO_FILE).

  python -m bench.worker_proc turns URL OUT GO INDEX WORKERS PEOPLE
      walks the pause flow for people p<i> with i % WORKERS == INDEX, 10 events at a
      time; writes {"events", "began", "ended", "latencies"} as JSON to OUT.
  python -m bench.worker_proc dispatch URL OUT GO LEASE_SECONDS UNTIL
      runs due follow-ups until the wall clock passes UNTIL (a Unix time) or the file
      GO.stop appears, asking for more every POLL seconds when nothing is due;
      appends "user_id unix_time" to OUT for every follow-up sent, flushed at once (it
      may be killed with -9); at the end writes OUT.stats (JSON: CPU seconds of this
      process from GO, statements sent to the database, commits).
  python -m bench.worker_proc floor URL OUT GO LEASE_SECONDS UNTIL
      the same with `FloorEngine` in place of the engine: the same database work
      for each follow-up, nothing rendered.
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
from typing import cast

from sqlalchemy import event

from bench.engine_turns import WALK, _run
from bench.guide_parts import make_engine
from bot.heartbeat import Heartbeat
from bot.scheduler import DispatchScheduler
from dialogs.clock import SystemClock
from dialogs.due import DueOutcome, DueStatus
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import ConversationState, FollowUp, FollowUpStatus, UserKey
from storage import SqlStore, open_store
from storage.notify import wakeups_for

POLL = 0.1  # seconds between looks when nothing is due (no LISTEN here: see workers.py)
PLATFORM = "bench"  # bench/workers.py plants the follow-ups on it


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
        inbound = Inbound(address, f"e{user.user_id}-{i}", clock.now(), **kind)
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


# What the floor says for each follow-up: one message, as the guide's check-in.
FLOOR_TEXT = "How are you doing today?"


class FloorEngine:
    """Stands in for the engine in a `Dispatcher` (mode floor): for each due follow-up
    the store calls of the engine's turn (the owner's lock and snapshot, the
    conversation and last-seen writes, the follow-up marked sent with its outbox
    row, in the batch's savepoint) with nothing rendered. The claims, batches, sends
    and marks are the dispatcher's own, so the wave against this floor shows what
    the engine's turn adds."""

    def __init__(self, store: SqlStore, clock: SystemClock) -> None:
        self._store = store
        self._clock = clock

    async def start_due(self, followup: FollowUp) -> DueOutcome:
        async with self._store.session() as session:
            opened = await session.open_followup(followup.id)
            if opened is None or opened[0].status is not FollowUpStatus.CLAIMED:
                return DueOutcome(DueStatus.SKIPPED)
            now = self._clock.now()
            await session.load_state(followup.user, now)
            state = ConversationState(
                flow_id=followup.flow_id, node_id="floor", turn=1, chat_id=followup.chat_id
            )
            await session.save_turn(followup.user, state, opened[1], now)
            address = Address(PLATFORM, followup.user.user_id, followup.chat_id)
            said = (Outbound(FLOOR_TEXT),)
            rows = await session.queue_followup(followup.id, address, said, now, turn=1)
        return DueOutcome(DueStatus.DELIVERED, address, said, tuple(rows))


class Statements:
    """Counts what this process sends to the database: statements and commits."""

    def __init__(self, store: SqlStore) -> None:
        self.statements = 0
        self.commits = 0
        event.listen(store.engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(store.engine.sync_engine, "commit", self._commit)

    def _statement(self, *_: object) -> None:
        self.statements += 1

    def _commit(self, *_: object) -> None:
        self.commits += 1


async def dispatch(
    url: str,
    out: Path,
    go: Path,
    lease: float,
    until: float,
    *,
    mode: str = "dispatch",
    liveness: bool = True,
) -> None:
    store = await open_store(url)
    clock = SystemClock()
    engine = cast(Engine, FloorEngine(store, clock)) if mode == "floor" else make_engine(store)
    sender = FileSender(out)
    lease_time = timedelta(seconds=lease)
    dispatcher = Dispatcher(store, engine, {PLATFORM: sender}, clock, lease=lease_time)
    counted = Statements(store)
    stop = go.with_suffix(".stop")
    # Its name on the rows it claims: bench/workers.py kills it while it holds some.
    out.with_suffix(".ready").write_text(store.worker)
    await _go(go)
    cpu = time.process_time()
    counted.statements = counted.commits = 0
    if mode == "scheduled":
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
        while time.time() < until and not stop.exists():
            if not await dispatcher.run_due():
                await asyncio.sleep(POLL)
    stats = {
        "cpu": time.process_time() - cpu,
        "statements": counted.statements,
        "commits": counted.commits,
    }
    await store.close()
    out.with_suffix(".stats").write_text(json.dumps(stats))


def main(argv: list[str]) -> None:
    mode, url, out, go = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    if mode == "turns":
        asyncio.run(turns(url, out, go, int(argv[4]), int(argv[5]), int(argv[6])))
    elif mode in ("dispatch", "scheduled", "floor"):
        liveness = "without-liveness" not in argv[6:]
        lease, until = float(argv[4]), float(argv[5])
        asyncio.run(dispatch(url, out, go, lease, until, mode=mode, liveness=liveness))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

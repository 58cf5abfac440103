"""Several worker processes on one PostgreSQL database (issue 19's Benchmark), in one run:

(a) turns: events/s and reply p50/p99 of `engine.handle` with 1, 2 and 3 worker
    processes on PostgreSQL, and 1 process on SQLite (a file, WAL), the pause flow
    walked by `--people` people split among the workers, 10 events at a time each;
(b) lateness: `--rate` follow-ups due a minute for `--minutes`, dispatched by three
    workers, one killed with SIGKILL half-way: lateness p50/p99 (sent minus due), how
    many were lost and how many sent twice. The leases are `pausecheck run`'s (a
    follow-up's claim 5 minutes, an outbox row's 30 s) and each worker beats as it
    does (bot/heartbeat.py): the killed worker's claims come back once its liveness
    lease lapses (5 s). Anything not sent a sweep after the last is due counts lost;
(c) wave: `--wave` follow-ups due at once, dispatched by three workers with the caps
    off: follow-ups/s from the go to the last send, against a floor measured in the
    same run: the same three workers and dispatcher doing the same database work for
    each follow-up with the engine's turn left out (bench/worker_proc.py's
    `FloorEngine`), `--rounds` of each, alternated. Per follow-up: CPU of the workers
    and of their PostgreSQL backends (/proc, when the server runs here), statements
    and commits sent, and so the cores a rate of 1,000 a second would take.

Workers are subprocesses running the real engine and dispatcher (bench/worker_proc.py)
with a sender that only records. In (b) they are woken as `pausecheck run` is (the
scheduler at the next due time, LISTEN/NOTIFY, the 30 s sweep); in (c) each runs
rounds back to back. Each PostgreSQL figure is measured in a database of its own
(bench/pg.py).

Run: `python -m bench.workers` (or `make bench`); `--quick` for a small run. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.guide_parts import ROOT, adult_profile
from bench.pg import admin_url, database_url, plant_followups, temporary_database
from bot.app import FOLLOWUP_LEASE
from bot.heartbeat import EVERY as BEAT
from bot.heartbeat import TTL as LIVENESS
from dialogs.clock import SystemClock
from dialogs.store import UserKey
from storage import open_store
from storage.models import FollowUpRow
from storage.outbound_rows import OUTBOUND

SWEEP = 30.0  # bench/worker_proc.py's DispatchScheduler sweep, as `pausecheck run`'s default
START_TIMEOUT = 120.0  # seconds for workers to be ready (imports, content, a loaded machine)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q) - 1))] if ordered else 0.0


async def _spawn(
    mode: str, url: str, out: Path, go: Path, *args: object
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.worker_proc", mode, url, str(out), str(go),
        *(str(a) for a in args),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


async def _ready(outs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not all(o.with_suffix(".ready").exists() for o in outs):
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start in time")
        await asyncio.sleep(0.05)


async def _onboard(url: str, people: int) -> None:
    store = await open_store(url)
    now = SystemClock().now()
    async with store.session() as s:
        for n in range(people):
            await s.save_profile(UserKey("walk", f"p{n}"), adult_profile(now))
    await store.close()


async def turns(url: str, workers: int, people: int, tmp: Path) -> tuple[float, float, float]:
    """events/s, p50 and p99 seconds."""
    await _onboard(url, people)
    go = tmp / f"go-turns-{workers}-{time.monotonic_ns()}"
    outs = [tmp / f"turns-{workers}-{i}-{time.monotonic_ns()}.json" for i in range(workers)]
    procs = [await _spawn("turns", url, o, go, i, workers, people) for i, o in enumerate(outs)]
    await _ready(outs)
    go.write_text("go")
    codes = [await p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"a turns worker failed: exit codes {codes}")
    results = [json.loads(o.read_text()) for o in outs]
    events = sum(r["events"] for r in results)
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return events / elapsed, statistics.median(latencies), _pct(latencies, 0.99)


def _sent(outs: list[Path]) -> list[tuple[str, float]]:
    lines = [line.split() for o in outs if o.exists() for line in o.read_text().splitlines()]
    return [(who, float(at)) for who, at in lines if at]


async def lateness(
    url: str, rate: int, minutes: float, tmp: Path, *, liveness: bool = True
) -> dict[str, float]:
    count = int(rate * minutes)
    start_margin = 30.0  # seconds for the workers to start before the first is due
    first_due = datetime.now(UTC) + timedelta(seconds=start_margin)
    spread = timedelta(minutes=minutes)
    await plant_followups(url, "bench", count, first_due, spread, limit=timedelta(hours=1))
    step = spread / count
    due = {f"u{i}": (first_due + step * i).timestamp() for i in range(count)}
    # Until the last is due, then the liveness lease, a beat and a sweep (30 s) more:
    # the dead worker's claims come back a beat after its liveness lapses, and a round
    # is asked for at once. Whatever is unsent then counts as lost (the follow-up
    # lease, 5 minutes, would be far later).
    until = (first_due + spread).timestamp() + LIVENESS.total_seconds() + BEAT + SWEEP + 5
    lease = FOLLOWUP_LEASE.total_seconds()
    name = "late" if liveness else "late-baseline"
    go = tmp / f"go-{name}"
    outs = [tmp / f"{name}-{i}.txt" for i in range(3)]
    extra = () if liveness else ("without-liveness",)
    procs = [await _spawn("scheduled", url, o, go, lease, until, *extra) for o in outs]
    await _ready(outs)
    go.write_text("go")
    kill_at = first_due.timestamp() + spread.total_seconds() / 2
    await asyncio.sleep(max(0.0, kill_at - time.time()))
    # Killed while it holds claims (a follow-up claimed, a message owed), so the
    # figure shows them coming back; if it holds none within 10 s, killed anyway.
    held = await _holding(url, outs[0].with_suffix(".ready").read_text(), within=10.0)
    procs[0].send_signal(signal.SIGKILL)
    codes = [await p.wait() for p in procs]
    if any(codes[1:]):
        raise RuntimeError(f"a surviving dispatch worker failed: exit codes {codes}")
    sent = _sent(outs)
    times = Counter(who for who, _ in sent)
    first_sent: dict[str, float] = {}
    for who, at in sent:
        first_sent[who] = min(at, first_sent.get(who, at))
    late = [max(0.0, first_sent[who] - due[who]) for who in first_sent]
    return {
        "planned": count,
        "sent": len(first_sent),
        "lost": count - len(first_sent),
        "twice": sum(1 for n in times.values() if n > 1),
        "p50": statistics.median(late) if late else 0.0,
        "p99": _pct(late, 0.99),
        "max": max(late, default=0.0),
        # What the killed worker held when it died comes back about a liveness TTL
        # late; nothing else here is that late.
        "over_2s": sum(1 for x in late if x > 2.0),
        "held": held,
    }


async def _holding(url: str, worker: str, *, within: float) -> int:
    """Wait until `worker` holds a claim (up to `within` seconds); how many it holds."""
    store = await open_store(url)
    claims = select(func.count()).select_from(
        select(FollowUpRow.id)
        .where(FollowUpRow.status == "claimed", FollowUpRow.claimed_by == worker)
        .union_all(
            select(OUTBOUND.c.id).where(
                OUTBOUND.c.status == "pending", OUTBOUND.c.claimed_by == worker
            )
        )
        .subquery()
    )
    deadline = time.monotonic() + within
    try:
        while True:
            async with store.engine.connect() as connection:
                held = int((await connection.execute(claims)).scalar_one())
            if held or time.monotonic() > deadline:
                return held
            await asyncio.sleep(0.005)
    finally:
        await store.close()


@dataclass
class Wave:
    """One wave's figures: follow-ups/s from the go to the last send, and per follow-up
    the CPU of the workers and of their PostgreSQL backends, and what they sent it."""

    per_second: float
    sent: int
    twice: int
    worker_cpu: float  # seconds, all workers
    server_cpu: float | None  # seconds, their backends (None: not readable here)
    statements: int
    commits: int


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (Linux /proc); 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _backend_cpu(database: str) -> dict[int, float] | None:
    """CPU so far of each PostgreSQL backend connected to `database`, when the server
    runs on this machine and its processes can be read (else None)."""
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as connection:
        pids = [
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
            )
        ]
    if not pids or not Path(f"/proc/{pids[0]}/stat").exists():
        return None
    return {pid: _cpu_seconds(pid) for pid in pids}


async def wave(database: str, count: int, tmp: Path, mode: str = "dispatch") -> Wave:
    """`mode` "dispatch": the workers run `Dispatcher.run_due`; "floor": the same
    database work without the engine (bench/worker_proc.py's `FloorEngine`)."""
    url = database_url(database)
    tmp.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
    await plant_followups(
        url, "bench", count, datetime.now(UTC) - timedelta(minutes=1), timedelta(seconds=50)
    )
    go = tmp / f"go-{mode}"
    outs = [tmp / f"{mode}-{i}.txt" for i in range(3)]
    # Generous: the workers stop once the time passes; the rate counts to the last send.
    until = time.time() + START_TIMEOUT + 30 + count / 20
    procs = [await _spawn(mode, url, o, go, 300, until) for o in outs]
    await _ready(outs)
    before = _backend_cpu(database)
    began = time.time()
    go.write_text("go")
    while len({who for who, _ in _sent(outs)}) < count and time.time() < until:  # noqa: ASYNC110 - files other processes write
        await asyncio.sleep(0.2)
    after = _backend_cpu(database)
    go.with_suffix(".stop").write_text("stop")
    codes = [await p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"a {mode} worker failed: exit codes {codes}")
    sent = _sent(outs)
    times = Counter(who for who, _ in sent)
    last = max((at for _, at in sent), default=began)
    stats = [json.loads(o.with_suffix(".stats").read_text()) for o in outs]
    server = None
    if before is not None and after is not None:
        # A backend opened during the wave counts from its start.
        server = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return Wave(
        per_second=len(times) / max(last - began, 1e-9),
        sent=len(times),
        twice=sum(n > 1 for n in times.values()),
        worker_cpu=sum(s["cpu"] for s in stats),
        server_cpu=server,
        statements=sum(s["statements"] for s in stats),
        commits=sum(s["commits"] for s in stats),
    )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.only in (None, "turns"):
            await _turns_table(args, tmp)
        if args.only in (None, "lateness"):
            await _lateness_line(args, tmp)
        if args.only in (None, "wave"):
            await _wave_table(args, tmp)


async def _turns_table(args: argparse.Namespace, tmp: Path) -> None:
    print(f"(a) turns: {args.people} people x 8 events, 10 at a time per worker")
    print(f"{'where':<22}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}  load")
    sqlite = f"sqlite+aiosqlite:///{tmp / 'turns.db'}"
    rate, p50, p99 = await turns(sqlite, 1, args.people, tmp)
    print(f"{'SQLite, 1 process':<22}{rate:>10.0f}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}  {_load()}")
    for workers in (1, 2, 3):
        with temporary_database() as database:
            rate, p50, p99 = await turns(database_url(database), workers, args.people, tmp)
        where = f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{where:<22}{rate:>10.0f}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}  {_load()}")


async def _lateness_line(args: argparse.Namespace, tmp: Path) -> None:
    print(
        f"\n(b) lateness: {args.rate} due a minute for {args.minutes} min, 3 workers "
        f"on PostgreSQL, one killed with -9 half-way; production leases (follow-up "
        f"{FOLLOWUP_LEASE.total_seconds():.0f} s, outbox 30 s), liveness TTL "
        f"{LIVENESS.total_seconds():.0f} s, beat {BEAT:.0f} s; the killed worker holds "
        "claims when killed. Baseline: the same without the heartbeat (the leases alone). "
        "Not sent: by a sweep after the last was due"
    )
    print(
        f"{'':<18}{'planned':>8}{'sent':>6}{'not sent':>9}{'twice':>6}{'p50 s':>7}{'p99 s':>7}"
        f"{'max s':>7}{'held':>5}{'>2 s':>5}  load"
    )
    for liveness in (True, False):
        with temporary_database() as database:
            late = await lateness(
                database_url(database), args.rate, args.minutes, tmp, liveness=liveness
            )
        where = "with liveness" if liveness else "baseline"
        print(
            f"{where:<18}{late['planned']:>8.0f}{late['sent']:>6.0f}{late['lost']:>9.0f}"
            f"{late['twice']:>6.0f}{late['p50']:>7.2f}{late['p99']:>7.2f}{late['max']:>7.2f}"
            f"{late['held']:>5.0f}{late['over_2s']:>5.0f}  {_load()}"
        )


async def _wave_table(args: argparse.Namespace, tmp: Path) -> None:
    print(
        f"\n(c) wave: {args.wave} follow-ups due at once, 3 workers on PostgreSQL, caps off;"
        f" the floor does the same database work without the engine ({args.rounds} of each,"
        " alternated)"
    )
    print(
        f"{'':<12}{'fu/s':>7}{'worker CPU':>12}{'PG CPU':>9}{'stmts':>7}{'commits':>9}"
        f"{'cores at 1,000/s':>18}  load"
    )
    print(f"{'':<12}{'':>7}{'ms/fu':>12}{'ms/fu':>9}{'/fu':>7}{'/100 fu':>9}")
    rates: dict[str, list[float]] = {"floor": [], "dispatch": []}
    for _ in range(args.rounds):
        for mode in ("floor", "dispatch"):
            with temporary_database() as database:
                w = await wave(database, args.wave, tmp / f"{mode}-{len(rates[mode])}", mode)
            rates[mode].append(w.per_second)
            worker = w.worker_cpu / max(w.sent, 1) * 1000
            server = None if w.server_cpu is None else w.server_cpu / max(w.sent, 1) * 1000
            # CPU ms per follow-up times 1,000 a second is that many CPU-seconds a second.
            cores = worker + (server or 0.0)
            shown = "n/a" if server is None else f"{server:.2f}"
            name = "floor" if mode == "floor" else "the guide"
            print(
                f"{name:<12}{w.per_second:>7.0f}{worker:>12.2f}{shown:>9}"
                f"{w.statements / max(w.sent, 1):>7.1f}{w.commits / max(w.sent, 1) * 100:>9.1f}"
                f"{cores:>18.1f}  {_load()}"
                + (f"  ({w.sent} sent, {w.twice} twice)" if w.twice or w.sent < args.wave else "")
            )
    floor = statistics.median(rates["floor"])
    guide = statistics.median(rates["dispatch"])
    print(
        f"the guide's wave at {guide / floor:.2f} of the floor's rate (medians {guide:.0f} and"
        f" {floor:.0f} follow-ups/s; goal 1,000/s needs the cores above, this machine has"
        f" {os.cpu_count()} shared)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--rate", type=int, default=1000, help="follow-ups due a minute")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--wave", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=None, help="waves of each kind in (c)")
    parser.add_argument("--quick", action="store_true", help="a small run, about 2 minutes")
    parser.add_argument("--only", choices=("turns", "lateness", "wave"), default=None)
    args = parser.parse_args()
    if args.quick:
        args.people, args.minutes, args.wave = 30, 0.5, 1000
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

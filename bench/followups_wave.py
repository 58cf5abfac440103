"""A wave of due follow-ups through the dispatcher and the outbox: table (d) of
issue 14, and what a restart costs with the wave pending.

On a temporary SQLite file (WAL) with the real engine, content and store, 100,000
consented adults each have one `followup` due within the same minute. The sender only
records what it was given. Each figure against a floor from the same run:

(d) dispatch: follow-ups/s through `Dispatcher.run_due()` with the caps off (over at
    most `--dispatch-seconds`), against the floor of engine turns that start a flow
    one after another with nothing else running (what a follow-up costs at the
    least), and the send rate of a wave under Telegram's 30 messages/s cap during a
    `--window`, as a share of the cap;
(d) a person's reply: p50/p95/p99 of `engine.handle` of a typed message plus its
    send through `outbox.interactive`, for a separate person, while the capped wave
    runs versus idle, the two alternated every `SEGMENT` seconds of the window so
    both sides see the same machine (and p99 needs a few hundred samples to be more
    than the one or two slowest: `--window 60` gives about 240);
start: a fresh process opens the store (migrations run) and asks `next_due_at()`,
    with 100,000 pending follow-ups versus an empty store: seconds and peak RSS.

Run: `python -m bench.followups_wave` (or `make bench`), about 3 minutes; `--quick`
(2,000 follow-ups, 5 s caps off, a 20 s capped window) for a quick run. Not a test:
nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.guide_parts import adult_profile, make_engine
from bot.outbox import TELEGRAM_MESSAGES_PER_SECOND, Outbox
from dialogs.clock import SystemClock
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher, Sender
from dialogs.store import FollowUpRequest, OutboundRow, OutboundStatus, UserKey
from storage import SqlStore, open_store
from storage.models import FollowUpRow, UserRow

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "bench"
CAP = TELEGRAM_MESSAGES_PER_SECOND
PROBE_TEXT = "hello"
PROBE_INTERVAL = 0.25  # seconds between interactive messages during the wave
PROBE_IDLE_INTERVAL = 0.05
# Seconds of the capped wave between two idle spells (see capped_wave).
SEGMENT = 10.0
START_RUNS = 5  # fresh processes per database; the median is reported
CHUNK = 5000
FLOOR_TURNS = 300

# Runs in a fresh interpreter: everything a restart pays before it knows what is due.
START_CODE = """
import asyncio, json, resource, sys, time
began = time.perf_counter()
from storage import open_store

async def main(url):
    store = await open_store(url)
    due = await store.next_due_at()
    await store.close()
    return due

due = asyncio.run(main(sys.argv[1]))
print(json.dumps({
    "seconds": time.perf_counter() - began,
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "due": None if due is None else due.isoformat(),
}))
"""


# Linux carries a parent's peak RSS into a child it forks and execs (ru_maxrss would
# report this whole benchmark's peak). A small launcher in between keeps the measured
# process's ru_maxrss its own; the launcher also times it.
LAUNCHER = """
import json, subprocess, sys, time
began = time.perf_counter()
out = subprocess.run([sys.executable, "-c", *sys.argv[1:]], check=True,
                     capture_output=True, text=True).stdout
wall = time.perf_counter() - began
data = json.loads(out.strip().splitlines()[-1])
data["wall"] = wall
print(json.dumps(data))
"""


@dataclass
class RecordingSender:
    """Only records: (perf_counter time, chat, number of messages)."""

    sent: list[tuple[float, str, int]] = field(default_factory=list)

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.append((time.perf_counter(), address.chat_id, len(messages)))


@dataclass
class Stoppable:
    """Passes sends on until `stop` is set, then holds the dispatcher in its next send.

    Stopping a wave there, between transactions, lets the task be cancelled without
    cutting a database transaction in half.
    """

    lane: Sender
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    parked: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        if self.stop.is_set():
            self.parked.set()
            await asyncio.Event().wait()
        await self.lane.send(address, messages)


async def run_for(dispatcher: Dispatcher, gate: Stoppable, seconds: float) -> bool:
    """Run the dispatcher for at most `seconds`; True if it finished by itself."""
    wave = asyncio.create_task(dispatcher.run_due())
    done, _ = await asyncio.wait({wave}, timeout=seconds)
    if done:
        await wave
        return True
    gate.stop.set()
    parked = asyncio.create_task(gate.parked.wait())
    await asyncio.wait({wave, parked}, return_when=asyncio.FIRST_COMPLETED)
    parked.cancel()
    wave.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await wave
    return False


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def build_wave(path: Path, n: int) -> float:
    """n consented adults with one follow-up each, due within the last minute.

    One person goes through the store's own API; the other rows are copies of theirs
    inserted with SQLAlchemy Core, so every column the store writes is filled the same
    way (whatever the schema holds today) at a fraction of the time.
    """
    began = time.perf_counter()
    store = await open_store(_url(path))
    now = SystemClock().now()
    first_due = now - timedelta(seconds=60)
    async with store.session() as s:
        user = UserKey(PLATFORM, "u0")
        await s.save_profile(user, adult_profile(SystemClock().now()))
        await s.schedule_followup(
            user,
            FollowUpRequest(
                flow_id="followup",
                chat_id="u0",
                due_at=first_due,
                expires_at=now + timedelta(days=1),
                dedupe_key="bench:u0",
            ),
        )
    tables = UserRow.metadata.tables
    users, followups = tables[UserRow.__tablename__], tables[FollowUpRow.__tablename__]
    async with store.engine.begin() as conn:
        user_row = dict((await conn.execute(select(users))).mappings().one())
        followup_row = dict((await conn.execute(select(followups))).mappings().one())
        for start in range(1, n, CHUNK):
            stop = min(n, start + CHUNK)
            await conn.execute(
                insert(users),
                [
                    user_row | {"id": user_row["id"] + i, "platform_user_id": f"u{i}"}
                    for i in range(start, stop)
                ],
            )
            await conn.execute(
                insert(followups),
                [
                    followup_row
                    | {
                        "id": followup_row["id"] + i,
                        "user_id": user_row["id"] + i,
                        "chat_id": f"u{i}",
                        "dedupe_key": f"bench:u{i}",
                        "due_at": first_due + timedelta(seconds=i % 60),
                    }
                    for i in range(start, stop)
                ],
            )
    await store.close()
    return time.perf_counter() - began


def copy_database(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{source}{suffix}")
        if part.exists():
            shutil.copyfile(part, f"{target}{suffix}")


# (a) dispatch


@dataclass
class Dispatch:
    handled: int
    seconds: float
    finished: bool
    cpu: float  # CPU seconds of this process (its threads too) while dispatching

    @property
    def rate(self) -> float:
        return self.handled / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(self.handled, 1) * 1000


async def dispatch_unlimited(path: Path, budget: float) -> Dispatch:
    """Follow-ups/s with the limiter off, to the end or for `budget` seconds."""
    store = await open_store(_url(path))
    engine = make_engine(store)
    sender = RecordingSender()
    async with Outbox(sender, rate_per_second=None) as outbox:
        gate = Stoppable(outbox.scheduled)
        dispatcher = Dispatcher(store, engine, {PLATFORM: gate}, SystemClock())
        began, cpu = time.perf_counter(), time.process_time()
        finished = await run_for(dispatcher, gate, budget)
        # Nothing is sent after the budget, so a stopped run is counted over all of it.
        seconds = time.perf_counter() - began if finished else budget
        cpu = time.process_time() - cpu
    await store.close()
    return Dispatch(len(sender.sent), seconds, finished, cpu)


# (c) interactive probe, and the capped wave around it


async def onboard_probe(store: SqlStore) -> Address:
    async with store.session() as s:
        await s.save_profile(UserKey(PLATFORM, "probe"), adult_profile(SystemClock().now()))
    return Address(PLATFORM, "probe", "probe")


async def probe(
    engine: Engine,
    store: SqlStore,
    outbox: Outbox,
    address: Address,
    *,
    count: int | None,
    interval: float,
    stop: asyncio.Event | None = None,
    tag: str,
) -> list[tuple[float, float]]:
    """(handle seconds, handle + send seconds) per typed message."""
    latencies: list[tuple[float, float]] = []
    clock = SystemClock()
    i = 0
    while (count is None or i < count) and not (stop and stop.is_set()):
        started = time.perf_counter()
        inbound = Inbound(address, f"{tag}{i}", clock.now(), text=PROBE_TEXT)
        replies = await engine.handle(inbound)
        handled = time.perf_counter()
        await outbox.interactive.send(address, replies)
        latencies.append((handled - started, time.perf_counter() - started))
        if not replies or "went wrong" in replies[0].text:
            raise RuntimeError(f"engine failed on the probe: {replies}")
        await mark_sent(store, replies.rows)
        i += 1
        await asyncio.sleep(interval)
    return latencies


async def mark_sent(store: SqlStore, rows: Sequence[OutboundRow]) -> None:
    """Marks the rows of replies the probe sent itself, after timing them, as an
    adapter's delivery does: left pending, the resend sweep of the next dispatcher
    round would post them all again, one a second into the probe's chat, and the
    probe would time that queue."""
    if rows:
        await store.mark_outbound(
            [(row.id, OutboundStatus.SENT, None) for row in rows], SystemClock().now()
        )


async def floor_turns(
    engine: Engine, store: SqlStore, address: Address, count: int
) -> tuple[int, float, float]:
    """What a follow-up costs at the least: a turn that starts a flow (/pause: its
    first step, the state saved, its messages stored as outbox rows), `count` times
    one after another. Returns count, wall and CPU seconds per turn."""
    clock = SystemClock()
    rows: list[OutboundRow] = []
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        reply = await engine.handle(
            Inbound(address, f"floor{i}", clock.now(), command=Command("pause"))
        )
        rows += reply.rows
    wall, cpu = (time.perf_counter() - began) / count, (time.process_time() - cpu) / count
    await mark_sent(store, rows)
    return count, wall, cpu


@dataclass
class Wave:
    window: float
    wave_messages: int
    wave_followups: int
    probe_messages: int
    ended_early: bool
    idle: list[tuple[float, float]]
    busy: list[tuple[float, float]]
    turns: int  # the floor: engine turns one after another, nothing else running
    turn: float  # wall seconds per turn
    turn_cpu: float  # CPU seconds per turn
    rounds: int  # idle and wave alternated this many times


async def capped_wave(path: Path, window: float, idle_samples: int) -> Wave:
    """The floor turns, then `segments(window)` rounds of: idle probes (their share of
    `idle_samples`), then the capped wave for its share of `window` with the probe
    running beside it. Alternating keeps the two sides in the same conditions: on a
    shared machine the idle latency alone moved twofold between runs minutes apart."""
    store = await open_store(_url(path))
    engine = make_engine(store)
    address = await onboard_probe(store)
    sender = RecordingSender()
    rounds = segments(window)
    idle: list[tuple[float, float]] = []
    busy: list[tuple[float, float]] = []
    spans: list[tuple[float, float]] = []
    ended_early = False
    async with Outbox(sender, rate_per_second=CAP) as outbox:
        # Warm up (content caches, first connection), then the floor.
        await probe(engine, store, outbox, address, count=5, interval=0.0, tag="w")
        turns, turn, turn_cpu = await floor_turns(engine, store, address, FLOOR_TURNS)
        for k in range(rounds):
            idle += await probe(
                engine,
                store,
                outbox,
                address,
                count=max(1, idle_samples // rounds),
                interval=PROBE_IDLE_INTERVAL,
                tag=f"i{k}-",
            )
            gate = Stoppable(outbox.scheduled)
            # A new dispatcher each round, as after a restart: its first round takes
            # back what the last one claimed and did not render.
            dispatcher = Dispatcher(store, engine, {PLATFORM: gate}, SystemClock())
            stop = asyncio.Event()
            busy_task = asyncio.create_task(
                probe(
                    engine,
                    store,
                    outbox,
                    address,
                    count=None,
                    interval=PROBE_INTERVAL,
                    stop=stop,
                    tag=f"b{k}-",
                )
            )
            began = time.perf_counter()
            ended_early = await run_for(dispatcher, gate, window / rounds)
            spans.append((began, time.perf_counter()))
            stop.set()
            busy += await busy_task
            if ended_early:
                break
    await store.close()
    in_window = [(chat, k) for at, chat, k in sender.sent if any(a <= at <= b for a, b in spans)]
    return Wave(
        window=sum(b - a for a, b in spans),
        wave_messages=sum(k for chat, k in in_window if chat != "probe"),
        wave_followups=sum(1 for chat, _ in in_window if chat != "probe"),
        probe_messages=sum(k for chat, k in in_window if chat == "probe"),
        ended_early=ended_early,
        idle=idle,
        busy=busy,
        turns=turns,
        turn=turn,
        turn_cpu=turn_cpu,
        rounds=len(spans),
    )


def segments(window: float) -> int:
    """Rounds of idle and wave: one per about `SEGMENT` seconds of the window."""
    return max(1, round(window / SEGMENT))


# (b) start in a fresh process


@dataclass
class Start:
    wall: float
    inside: float
    maxrss_kb: int


def start_once(path: Path) -> Start:
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, START_CODE, _url(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return Start(float(data["wall"]), float(data["seconds"]), int(data["maxrss_kb"]))


def start_median(paths: dict[str, Path]) -> dict[str, Start]:
    runs: dict[str, list[Start]] = {name: [] for name in paths}
    for _ in range(START_RUNS):  # alternate, so drift hits both alike
        for name, path in paths.items():
            runs[name].append(start_once(path))
    return {
        name: Start(
            statistics.median(s.wall for s in got),
            statistics.median(s.inside for s in got),
            int(statistics.median(s.maxrss_kb for s in got)),
        )
        for name, got in runs.items()
    }


# Reporting


def _p50_p99(latencies: Sequence[float]) -> tuple[float, float]:
    if not latencies:
        return float("nan"), float("nan")
    return statistics.median(latencies), _percentile(latencies, 0.99)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report_dispatch(n: int, dispatch: Dispatch, wave: Wave) -> None:
    rate = dispatch.rate
    floor = 1 / wave.turn if wave.turn else float("nan")
    print(f"(d) a wave of {n:,} follow-ups due within one minute (SQLite file, WAL)\n")
    print(f"{'':<44}{'handled':>8}{'seconds':>9}{'per s':>9}{'CPU ms':>8}{'vs floor':>10}")
    print("-" * 88)
    print(
        f"{'floor: /pause turns, one after another':<44}{wave.turns:>8,}"
        f"{wave.turns * wave.turn:>9.1f}{floor:>9,.0f}{wave.turn_cpu * 1000:>8.2f}{1:>10.2f}"
    )
    print(
        f"{'dispatch, caps off':<44}{dispatch.handled:>8,}{dispatch.seconds:>9.1f}"
        f"{rate:>9,.0f}{dispatch.cpu_ms:>8.2f}{rate / floor:>10.2f}"
    )
    followups = wave.wave_followups / wave.window
    total = (wave.wave_messages + wave.probe_messages) / wave.window
    print(
        f"{f'dispatch, capped {CAP:.0f}/s: follow-ups':<44}{wave.wave_followups:>8,}"
        f"{wave.window:>9.1f}{followups:>9.1f}{'':>8}{'':>10}"
    )
    print(
        f"{'  messages, both lanes (share of the cap)':<44}"
        f"{wave.wave_messages + wave.probe_messages:>8,}{wave.window:>9.1f}{total:>9.1f}"
        f"{'':>8}{total / CAP:>10.1%}"
    )
    if not dispatch.finished and rate:
        print(
            f"\n  caps off: stopped after {dispatch.seconds:.0f} s (--dispatch-seconds) with "
            f"{dispatch.handled:,} of {n:,} handled; all {n:,} would take about "
            f"{n / rate / 60:.1f} min at this rate"
        )
    print(
        f"  goal >= 1,000 follow-ups/s with the caps off: {rate:,.0f}/s, "
        f"{'met' if rate >= 1000 else 'NOT met'}. A follow-up is a turn of the engine "
        f"(its flow run, the person's state saved, its message stored), so one core's "
        f"floor is {floor:,.0f} turns/s: corrected goal >= 0.8 of that floor: "
        f"{rate / floor:.2f}, {'met' if rate >= 0.8 * floor else 'NOT met'}. In CPU, which "
        f"the load moves less (a turn also waits for its own synced commit, a batch "
        f"shares one): a turn's CPU / a follow-up's = "
        f"{wave.turn_cpu * 1000 / dispatch.cpu_ms:.2f}\n"
    )


def report_start(n: int, starts: dict[str, Start]) -> None:
    empty, pending = starts["empty"], starts["pending"]
    print(
        f"start: a fresh process runs open_store + next_due_at(), median of {START_RUNS}\n"
        f"\n{'store':<22}{'process s':>10}{'in-proc s':>10}{'ru_maxrss MB':>13}"
    )
    print("-" * 55)
    for name, s in (("empty", empty), (f"{n:,} pending", pending)):
        print(f"{name:<22}{s.wall:>10.2f}{s.inside:>10.2f}{s.maxrss_kb / 1024:>13.1f}")
    print(
        f"\n  {n:,} pending vs empty: start {_ratio(pending.wall, empty.wall)} "
        f"(in-process {_ratio(pending.inside, empty.inside)}), "
        f"RSS {_ratio(pending.maxrss_kb, empty.maxrss_kb)}\n"
    )


def report_latency(wave: Wave) -> None:
    print(
        "(d) a person's reply (engine.handle of a typed message + outbox.interactive.send) "
        f"while the capped wave runs; idle and wave alternated {wave.rounds} times\n"
        f"\n{'while':<22}{'samples':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'handle p50':>12}{'send p50':>10}"
    )
    print("-" * 79)
    rows = {}
    for name, samples in (("idle (floor)", wave.idle), ("capped wave running", wave.busy)):
        totals = [total for _, total in samples]
        p50, p99 = _p50_p99(totals)
        p95 = _percentile(totals, 0.95)
        handle50, _ = _p50_p99([handle for handle, _ in samples])
        send50, _ = _p50_p99([total - handle for handle, total in samples])
        rows[name] = (p50, p95, p99)
        print(
            f"{name:<22}{len(samples):>8}{p50 * 1000:>9.1f}{p95 * 1000:>9.1f}{p99 * 1000:>9.1f}"
            f"{handle50 * 1000:>12.1f}{send50 * 1000:>10.1f}"
        )
    (idle50, idle95, idle99) = rows["idle (floor)"]
    (busy50, busy95, busy99) = rows["capped wave running"]
    print(
        f"\n  during the wave vs idle: p50 {_ratio(busy50, idle50)}, p95 {_ratio(busy95, idle95)},"
        f" p99 {_ratio(busy99, idle99)} (goal p99 <= 2x: "
        f"{'met' if busy99 <= 2 * idle99 else 'NOT met'}; a p99 of {len(wave.busy)} samples is "
        f"its {_rank(len(wave.busy))} largest)"
    )


def _percentile(latencies: Sequence[float], q: float) -> float:
    ordered = sorted(latencies)
    if not ordered:
        return float("nan")
    return ordered[max(0, int(len(ordered) * q) - 1)]


def _rank(n: int) -> str:
    k = n - max(0, int(n * 0.99) - 1)
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


async def measure(n: int, window: float, idle_samples: int, dispatch_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pristine, empty, drained = tmp / "wave.db", tmp / "empty.db", tmp / "drained.db"
        built = await build_wave(pristine, n)
        await (await open_store(_url(empty))).close()
        copy_database(pristine, drained)
        print(f"built {n:,} people with a due follow-up in {built:.1f} s\n")
        # (b) first, with nothing else running; then (a) with the limiter off; then the
        # capped wave of (a) with (c) measured around it.
        starts = start_median({"empty": empty, "pending": pristine})
        dispatch = await dispatch_unlimited(drained, dispatch_seconds)
        wave = await capped_wave(pristine, window, idle_samples)
    report_dispatch(n, dispatch, wave)
    report_latency(wave)
    print()
    report_start(n, starts)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this run: {rss_mb:.0f} MB (python {sys.version.split()[0]})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.followups_wave",
        description="Dispatch rate, start cost and reply latency under a follow-up wave.",
    )
    parser.add_argument("--n", type=int, default=100_000, help="follow-ups in the wave")
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds of the capped wave to measure"
    )
    parser.add_argument(
        "--dispatch-seconds",
        type=float,
        default=30.0,
        help="at most this long for the unlimited dispatch (the rate is taken over it)",
    )
    parser.add_argument(
        "--idle-samples", type=int, default=200, help="interactive messages for the idle baseline"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--n 2000 --window 20 --dispatch-seconds 5 --idle-samples 80",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.window, args.dispatch_seconds, args.idle_samples = 2000, 20.0, 5.0, 80
    if min(args.n, args.window, args.dispatch_seconds, args.idle_samples) <= 0:
        parser.error("--n, --window, --dispatch-seconds and --idle-samples must be positive")
    began = time.perf_counter()
    asyncio.run(measure(args.n, args.window, args.idle_samples, args.dispatch_seconds))
    print(f"whole run: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

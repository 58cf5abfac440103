"""One soak run: start the fake and the guide, let the people loose, kill the guide
with SIGKILL at random moments (some while Telegram holds a message it took, the
crash window) and start it again on the same database, under random network trouble;
then let it drain, stop it as an operator would, and check everything.

Two shapes: one process polling on an SQLite file (the default), or `workers` webhook
workers on a fresh PostgreSQL schema (`postgres`): the fake posts each update to the
next worker in turn and to the next again while one does not take it (a load
balancer, and Telegram retrying a webhook), a random live worker is killed at each
kill moment and started again in the background while the others serve, and a wave
of follow-ups comes due mid-run for people who only receive, so the overall cap is
checked at the fake across all workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from dialogs.content import Content, load_content
from dialogs.store import FollowUpRequest, Profile, UserKey
from soak.checks import (
    Kill,
    Verdict,
    cap,
    check,
    crash_window,
    markers_in_files,
    markers_in_rows,
)
from soak.deadline import Deadline
from soak.guide import ROOT, WEBHOOK_SECRET, GuideProcess
from soak.people import Activity, Person
from soak.postgres import drop_schema, new_schema
from soak.priority import LoopAhead
from soak.records import Database, pending_texts, posts
from soak.stalls import LoopLag
from storage import open_store
from storage.models import Base
from tests.telegram.conftest import free_port
from tests.telegram.fake_bot_api import Chaos, FakeBotAPI

log = logging.getLogger("soak")

# The least time the guide runs between a restart and the next kill.
MIN_UPTIME = 6.0
# Kills come after some activity, and the last one well before the end.
FIRST_KILL_AFTER = 5.0
LAST_KILL_BEFORE_END = 10.0
# Left out of what people type: /reflect needs a group (the soak's chats are private).
NOT_TYPED = frozenset({"reflect", "export", "forget"})
# The wave's people: Telegram users who only receive (never onboarded as people).
WAVE_FIRST_ID = 9000
# The overall cap the guide is configured with (Telegram's default, bot/config.py).
TELEGRAM_RATE = 30
# A garbage collector threshold never reached.
NEVER = 2**31 - 1


@dataclass
class Options:
    minutes: float = 10.0
    kills: int | None = None  # default: two a minute, at least 3
    people: int = 16
    seed: int = 1
    clock_scale: float = 600.0
    workdir: Path | None = None
    # The PostgreSQL server to run on (a fresh schema in it); None: an SQLite file.
    postgres: str | None = None
    # Webhook workers, with `postgres` (one polling process on SQLite).
    workers: int = 1
    # Follow-ups planted to come due mid-run (default: 300 with workers): the first at
    # `wave_at` seconds after the start (default: half the run), the rest spread evenly
    # over the next `wave_over` seconds (0: all at once).
    wave: int | None = None
    wave_at: float | None = None
    wave_over: float = 0.0
    # Keep the run's PostgreSQL schema after it (the CLI does with --workdir).
    keep_schema: bool = False
    # The weather: each call the guide makes draws once.
    chaos: Chaos = field(
        default_factory=lambda: Chaos(
            rate_limited=0.03,
            retry_after=1.0,
            server_error=0.03,
            slow=0.03,
            slow_seconds=1.5,
            dropped=0.02,
            lost_answer=0.01,
        )
    )
    drain_seconds: float = 75.0

    @property
    def kill_count(self) -> int:
        if self.kills is not None:
            return self.kills
        # Several workers: one killed every ten seconds or so, the others serving.
        return max(3, round(self.minutes * (6.0 if self.webhook else 2.2)))

    @property
    def webhook(self) -> bool:
        return self.postgres is not None

    @property
    def wave_size(self) -> int:
        return self.wave if self.wave is not None else (300 if self.webhook else 0)


@dataclass
class Result:
    verdict: Verdict
    workdir: Path

    @property
    def ok(self) -> bool:
        return not self.verdict.violations


def daytime_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about noon now, so follow-ups are not all moved
    past quiet hours (some people set their own)."""
    offset = (12 - now.hour + 12) % 24 - 12  # -12..11 hours east of UTC
    # Etc/GMT zones have the sign the other way round.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


class Soak:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="pausecheck-soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.schema: str | None = None
        if options.postgres is not None:
            self.schema, self.url = new_schema(options.postgres, options.seed)
            (self.workdir / "schema.txt").write_text(self.schema + "\n")
        else:
            self.url = f"sqlite+aiosqlite:///{self.workdir / 'soak.db'}"
        self.db = Database(self.url)
        self.fake = FakeBotAPI()
        # The harness's loop (Telegram, the people) ahead of the machine's other work.
        self.priority = LoopAhead()
        # The harness's loop, which the fake shares, watched for stalls while it serves.
        self.lag = LoopLag()
        self.activity = Activity()
        self.fake.on_call = self.activity.on_call
        # Which workers held each client port the fake's calls came from (calls.jsonl).
        self.peer_worker: dict[int, set[str]] = {}
        self.content: Content = load_content(ROOT / "content")
        self.zone = daytime_zone(datetime.now(UTC))
        count = options.workers if options.webhook else 1
        self.guides = [
            GuideProcess(
                self.fake,
                self.url,
                self.workdir / ("guide.log" if count == 1 else f"worker{n}.log"),
                clock_scale=options.clock_scale,
                zone=self.zone,
                webhook_port=free_port() if options.webhook else None,
                priority=self.priority,
            )
            for n in range(count)
        ]
        self.restarts: set[asyncio.Task[None]] = set()
        self.watching: asyncio.Task[None] | None = None
        # The wave: chat -> when its follow-up was due.
        self.wave_due: dict[int, datetime] = {}
        self.people: list[Person] = []
        self.kills: list[Kill] = []
        self.stop_status: list[int | None] = []
        self.not_yet_due: set[int] = set()
        # time.time() - time.monotonic(): the fake stamps calls with the latter.
        self.clock_offset = time.time() - time.monotonic()

    # ------------------------------------------------------------------ the run

    async def run(self) -> Result:
        # No full garbage collection during the run: the harness's heap only grows (the
        # fake keeps every call), and collecting all of it held the loop, the fake's,
        # for 100 ms and more each time (soak/stalls.py). The young generations are
        # still collected; the rest waits for the end.
        collecting = gc.get_threshold()
        gc.set_threshold(collecting[0], collecting[1], NEVER)
        self.priority.raise_()
        try:
            await self.fake.start()
            self.lag.start()
            try:
                await self._run()
            finally:
                watching = [self.watching] if self.watching is not None else []
                for task in [*self.restarts, *watching]:
                    task.cancel()
                await asyncio.gather(*self.restarts, *watching, return_exceptions=True)
                for guide in self.guides:
                    if guide.running:
                        await guide.kill()
                await self.fake.stop()
                await self.lag.stop()
                self._save_calls()
            verdict = self._verdict()
        finally:
            gc.set_threshold(*collecting)
            self.priority.restore()
            # Also when the run itself failed: no schema left behind unasked.
            self.db.close()
            if self.schema is not None and not self.o.keep_schema:
                assert self.o.postgres is not None
                drop_schema(self.o.postgres, self.schema)
        return Result(verdict, self.workdir)

    def _save_calls(self) -> None:
        """The fake's record, one call a line, for looking into a violation."""
        lost = {id(c) for c in (self.o.chaos.lost if self.o.chaos else [])}
        with (self.workdir / "calls.jsonl").open("w") as out:
            for n, call in enumerate(self.fake.calls):
                markup = call.params.get("reply_markup") or {}
                data = [
                    b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row
                ]
                record = {
                    "n": n,
                    "at": round(call.at, 3),
                    "method": call.method,
                    "chat": call.chat_id,
                    "status": call.status,
                    "lost": id(call) in lost,
                    "worker": " or ".join(sorted(self.peer_worker.get(call.peer or 0, ()))),
                    "text": str(call.params.get("text", ""))[:60],
                    "data": data or call.params.get("callback_query_id"),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        with (self.workdir / "events.jsonl").open("w") as out:
            for person in self.people:
                for at, update_id, what in person.events:
                    record = {
                        "at": round(at, 3),
                        "chat": person.chat_id,
                        "update": update_id,
                        "handed out": self.fake.handed_out[update_id],
                        "what": what,
                    }
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        with (self.workdir / "kills.jsonl").open("w") as out:
            for kill in self.kills:
                record = {
                    "at": round(kill.at, 3),
                    "worker": kill.worker,
                    "in window": kill.in_window,
                    "window": kill.window,
                }
                out.write(json.dumps(record) + "\n")
        with (self.workdir / "stalls.jsonl").open("w") as out:
            for stall in self.lag.stalls:
                record = {
                    "start": round(stall.start, 3),
                    "end": round(stall.end, 3),
                    "ms": round(stall.length * 1000),
                    "loop cpu ms": round(stall.loop_cpu * 1000),
                    "waiting for a cpu ms": round(stall.waiting * 1000),
                    "process cpu ms": round(stall.process_cpu * 1000),
                    "gc ms": round(stall.gc * 1000),
                    "where": stall.where,
                }
                out.write(json.dumps(record) + "\n")

    async def _run(self) -> None:
        await self._onboard()
        if self.o.webhook:
            self.fake.deliver_by_webhook([g.hook for g in self.guides], WEBHOOK_SECRET)
        await asyncio.gather(*(guide.start() for guide in self.guides))
        self.watching = asyncio.get_running_loop().create_task(self._watch_sockets())
        await self._plant_wave()
        self.fake.chaos = self.o.chaos
        began = time.monotonic()
        until = Deadline(began + self.o.minutes * 60)
        lives = [
            asyncio.create_task(p.live(until, self.people), name=f"person {p.user_id}")
            for p in self.people
        ]
        await self._kill_until(until)
        await asyncio.gather(*lives)
        # Fair weather for the drain: what is owed goes out, what is due comes.
        self.fake.chaos = None
        self.fake.faults.clear()
        self.fake.release()
        await asyncio.gather(*self.restarts)
        await asyncio.gather(*(g.start() for g in self.guides if not g.running))
        await self._drain()
        # /stop below cancels what is planned for later: remember what that was.
        self.not_yet_due = {
            r["id"]
            for r in self.db.rows(
                "select id from followups where status = 'pending' and due_at >= :now",
                now=datetime.now(UTC),
            )
        }
        await self._stop_everyone()
        self.ended = datetime.now(UTC)
        self.stop_status = list(await asyncio.gather(*(g.stop() for g in self.guides)))

    async def _onboard(self) -> None:
        commands = tuple(c.name for c in self.content.commands.commands if c.name not in NOT_TYPED)
        store = await open_store(self.url)
        now = datetime.now(UTC)
        try:
            for n in range(self.o.people):
                user_id = 5000 + n
                # A quarter meet the guide from nothing (consent, age, screen, zone);
                # one in eight exports and forgets.
                onboarded = n % 4 != 0
                person = Person(
                    user_id,
                    self.fake,
                    self.activity,
                    commands,
                    random.Random(self.o.seed * 1000 + n),
                    onboarded=onboarded,
                    forgetter=n % 8 == 5,
                )
                self.people.append(person)
                if onboarded:
                    async with store.session() as s:
                        await s.save_profile(
                            UserKey("telegram", str(user_id)),
                            Profile(
                                consent_at=now,
                                adult=True,
                                country="GB",
                                zone=self.zone,
                                screened=True,
                                session_started_at=now,
                                last_active_at=now,
                                reminded_at=now,
                            ),
                        )
        finally:
            await store.close()

    async def _plant_wave(self) -> None:
        """Follow-ups for `wave_size` people who only receive, due from `wave_at` on
        (all at once, or spread over `wave_over` seconds): a wave the overall cap
        governs, whichever workers dispatch it."""
        if not self.o.wave_size:
            return
        store = await open_store(self.url)
        now = datetime.now(UTC)
        first = now + timedelta(
            seconds=self.o.minutes * 30 if self.o.wave_at is None else self.o.wave_at
        )
        step = timedelta(seconds=self.o.wave_over / self.o.wave_size)
        try:
            async with store.session() as s:
                for n in range(self.o.wave_size):
                    due = first + n * step
                    user_id = str(WAVE_FIRST_ID + n)
                    user = UserKey("telegram", user_id)
                    # No quiet hours: the wave comes due at any hour of the run.
                    profile = Profile(
                        consent_at=now, adult=True, screened=True, zone=self.zone,
                        quiet_start="00:00", quiet_end="00:00",
                    )  # fmt: skip
                    await s.save_profile(user, profile)
                    request = FollowUpRequest(
                        "followup", user_id, due, due + timedelta(hours=1), f"soak-wave-{n}"
                    )
                    await s.schedule_followup(user, request)
                    self.wave_due[int(user_id)] = due
        finally:
            await store.close()

    async def _kill_until(self, until: Deadline) -> None:
        """Kill at random moments spread over the run. A polling guide is down while it
        restarts: each kill's restart, and any wait for the guide to have run
        MIN_UPTIME (or this would test a crash loop), moves the moments after it and
        the end later by as much. Several workers restart in the background while the
        others serve."""
        start = time.monotonic() + FIRST_KILL_AFTER
        span = max(0.0, until.at - LAST_KILL_BEFORE_END - start)
        moments = sorted(start + self.rng.uniform(0, span) for _ in range(self.o.kill_count))
        up_since = time.monotonic()
        asked_end = until.at
        for planned in moments:
            # How far restarts have moved the end is how far each moment moves.
            late = until.at - asked_end
            moment = max(planned + late, up_since + MIN_UPTIME)
            await asyncio.sleep(max(0.0, moment - time.monotonic()))
            if self.o.webhook:
                # Others serve meanwhile, so the end stays; a kill it leaves no room for
                # is not made (the test asks for most of them).
                if time.monotonic() >= until.at - 5:
                    break
                victim = await self._victim(until.at)
                if victim is None:
                    break
            await self._kill_once(in_window=self.rng.random() < 0.35)
            if not self.o.webhook:
                up_since = time.monotonic()
                until.later_by(up_since - (planned + late))
        await asyncio.sleep(until.left())

    async def _victim(self, until: float) -> GuideProcess | None:
        """A worker serving for at least MIN_UPTIME, while another serves too (the
        service stays up); waits for one (restarts take seconds), None at the end.
        A worker still starting does not count as another: on a loaded machine a
        restart takes half a minute, and killing the last serving worker meanwhile
        left none (a run saw all three down for 30 s, the wave waiting)."""
        while time.monotonic() < until - 5:
            serving = [g for g in self.guides if g.serving]
            ready = [g for g in serving if time.monotonic() - g.started_at >= MIN_UPTIME]
            if ready and len(serving) > 1:
                return self.rng.choice(ready)
            await asyncio.sleep(0.5)
        return None

    def _another_serves(self, victim: GuideProcess) -> bool:
        return any(g.serving for g in self.guides if g is not victim)

    async def _kill_once(self, *, in_window: bool) -> None:
        victim: GuideProcess | None = None
        if in_window:
            # Telegram takes the next message and never answers: the process dies
            # between the platform accepting a row and its mark being written.
            held = len(self.fake.held)
            self.fake.hold("sendMessage", accept=True)
            try:
                await self.fake.wait_for(lambda: len(self.fake.held) > held, within=10)
            except TimeoutError:
                self.fake.faults.clear()
                in_window = False
            else:
                victim = self._holder(self.fake.held[-1])
                if victim is not None and self.o.webhook and not self._another_serves(victim):
                    # The holder is the last worker serving: the service stays up. The
                    # call is answered now, not at the next kill (a wave would wait
                    # behind it meanwhile): its answer is lost, as below.
                    self.o.chaos.lost.append(self.fake.held[-1])
                    self.fake.faults.clear()
                    self.fake.release()
                    self.fake.holding = 0
                    victim, in_window = None, False
                elif victim is None:
                    # Not an outbox row's send, or no live worker's: its answer is
                    # lost when released, which is what a lost answer is.
                    self.o.chaos.lost.append(self.fake.held[-1])
                    in_window = False
        if victim is None:
            victim = await self._victim(float("inf")) if self.o.webhook else self.guides[0]
        assert victim is not None
        await victim.kill()
        kill = Kill(time.monotonic(), in_window, self.guides.index(victim))
        # What it still owed, read at once: a live worker takes its rows over when its
        # liveness lease lapses, up to 5 s after its last renewal, which on a loaded
        # machine can come before the wait below ends.
        owed = pending_texts(self.db, claimed_by=victim.worker_id if self.o.webhook else None)
        # A request already on its way may still arrive (a slow answer): the window
        # is what the chat holds once those have landed.
        await asyncio.sleep(self.o.chaos.slow_seconds + 0.5)
        kill.window = crash_window(owed, posts(self.fake), self.wall_to_monotonic)
        self.kills.append(kill)
        self.fake.faults.clear()
        self.fake.release()
        self.fake.holding = 0
        if self.o.webhook:
            # The others serve meanwhile; the next kill picks among the live.
            task = asyncio.get_running_loop().create_task(self._restart(victim))
            self.restarts.add(task)
            task.add_done_callback(self.restarts.discard)
        else:
            await victim.start()

    async def _restart(self, guide: GuideProcess) -> None:
        """Start a killed worker again; one that exits while starting is started again
        (the drain starts any still down), and the log says why."""
        for _ in range(3):
            try:
                await guide.start()
                return
            except RuntimeError as exc:
                log.warning("worker restart failed: %s", exc)

    async def _watch_sockets(self) -> None:
        """Every second, which live worker holds which client port: calls.jsonl then
        says who made each call (a connection open under a second may go unseen), so
        a duplicate shows whose sends it came from. Read from /proc off the loop."""
        while True:
            live = [
                (f"{n}:{g.worker_id}", g.process.pid)
                for n, g in enumerate(self.guides)
                if g.running and g.process is not None
            ]
            for port, worker in await asyncio.to_thread(ports_of, live):
                self.peer_worker.setdefault(port, set()).add(worker)
            await asyncio.sleep(1.0)

    def _holder(self, call: Any) -> GuideProcess | None:
        """The live process whose outbox row the held call is sending."""
        if not self.o.webhook:
            return self.guides[0]
        text = str(call.params.get("text", "")).strip()
        for row in self.db.rows(
            "select claimed_by, message from outbound where status = 'pending' and chat_id = :chat",
            chat=str(call.chat_id),
        ):
            message = row["message"]
            data = json.loads(message) if isinstance(message, str) else message
            if isinstance(data, dict) and str(data.get("text", "")).strip() == text:
                for guide in self.guides:
                    if guide.running and guide.worker_id == row["claimed_by"]:
                        return guide
        return None

    def wall_to_monotonic(self, wall: float) -> float:
        return wall - self.clock_offset

    async def _drain(self) -> None:
        """Until nothing is owed and nothing overdue is left, or the drain time is up."""
        deadline = time.monotonic() + self.o.drain_seconds
        while time.monotonic() < deadline:
            # Read off the loop: the wave may still be going out to the fake, which a
            # query waiting on a busy server would hold up (a stall, soak/stalls.py).
            owed, stuck, inbox = await asyncio.to_thread(self._still_owed)
            if self.o.webhook:
                # Every update people sent was taken by a worker and handled.
                fetched = not self.fake.webhook_waiting and not inbox
            else:
                # Every update people queued was fetched and confirmed.
                fetched = not self.fake._updates
            if not owed and not stuck and fetched:
                return
            await asyncio.sleep(1.0)

    def _still_owed(self) -> tuple[int, int, int]:
        """Rows pending, follow-ups held or overdue, updates in the inbox (webhook)."""
        owed = self.db.count("select count(*) from outbound where status = 'pending'")
        stuck = self.db.count(
            "select count(*) from followups where status in ('claimed', 'delivering') "
            "or (status = 'pending' and due_at < :now)",
            now=datetime.now(UTC),
        )
        inbox = self.db.count("select count(*) from inbox") if self.o.webhook else 0
        return owed, stuck, inbox

    async def _stop_everyone(self) -> None:
        """Everyone ends what they were doing, so no typed word may remain stored."""
        for person in self.people:
            await person.say("/stop")
        await asyncio.sleep(3.0)

    # ------------------------------------------------------------------ the verdict

    def _verdict(self) -> Verdict:
        logs = "".join(g.log.read_text(errors="replace") for g in self.guides if g.log.exists())
        verdict = check(
            self.db,
            self.fake,
            self.people,
            self.kills,
            self.content,
            self.o.chaos,
            ended=getattr(self, "ended", datetime.now(UTC)),
            grace=timedelta(seconds=5),
            logs=logs,
            not_yet_due=self.not_yet_due,
            receivers=set(self.wave_due),
        )
        if self.db.sqlite:
            files = [Path(self.db.file), Path(self.db.file + "-wal")]
            verdict.violations.extend(markers_in_files(self.people, files))
        else:
            tables = [t.name for t in Base.metadata.sorted_tables]
            verdict.violations.extend(markers_in_rows(self.people, self.db, tables))
        for n, status in enumerate(self.stop_status):
            if status not in (0, None):
                verdict.add("shutdown", f"worker {n} exited {status} on SIGTERM")
        if "Traceback" in logs:
            verdict.add("logs", "a traceback in the guide's log")
        if self.wave_due:
            cap(
                verdict,
                self.fake,
                self.wave_due,
                TELEGRAM_RATE,
                self.clock_offset,
                self.lag.stalls,
            )
        chaos = self.o.chaos
        f = verdict.figures
        f["kills"] = len(self.kills)
        f["kills in the window"] = sum(k.in_window for k in self.kills)
        f["faults"] = sum(chaos.injected.values())
        f["fault kinds"] = ", ".join(f"{n} {k}" for k, n in sorted(chaos.injected.items()))
        f["events"] = sum(sum(p.actions.values()) for p in self.people)
        f["restarts"] = sum(g.starts for g in self.guides) - len(self.guides)
        f["loop stalls"] = self.lag.figures()
        f["violations"] = len(verdict.violations)
        return verdict


def ports_of(processes: list[tuple[str, int]]) -> list[tuple[int, str]]:
    """(local TCP port, name) of each socket the named processes hold (Linux /proc)."""
    inodes: dict[str, str] = {}
    for name, pid in processes:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = name
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    found.append((int(fields[1].rsplit(":", 1)[1], 16), inodes[fields[9]]))
    return found


def config_yaml(options: Options) -> str:
    return yaml.safe_dump(
        {"minutes": options.minutes, "people": options.people, "seed": options.seed}
    )

"""One soak run: start the fake and the guide, let the people loose, kill the guide
with SIGKILL at random moments (some while Telegram holds a message it took, the
crash window) and start it again on the same database, under random network trouble;
then let it drain, stop it as an operator would, and check everything."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from dialogs.content import Content, load_content
from dialogs.store import Profile, UserKey
from soak.checks import Kill, Verdict, check, markers_in_files
from soak.guide import ROOT, GuideProcess
from soak.people import Activity, Person
from soak.records import pending_texts, posts, rows
from storage import open_store
from tests.telegram.fake_bot_api import Chaos, FakeBotAPI

log = logging.getLogger("soak")

# The least time the guide runs between a restart and the next kill.
MIN_UPTIME = 6.0
# Left out of what people type: /reflect needs a group (the soak's chats are private).
NOT_TYPED = frozenset({"reflect", "export", "forget"})


@dataclass
class Options:
    minutes: float = 10.0
    kills: int | None = None  # default: two a minute, at least 3
    people: int = 16
    seed: int = 1
    clock_scale: float = 600.0
    workdir: Path | None = None
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
        return self.kills if self.kills is not None else max(3, round(self.minutes * 2.2))


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
        self.db = self.workdir / "soak.db"
        self.url = f"sqlite+aiosqlite:///{self.db}"
        self.log = self.workdir / "guide.log"
        self.fake = FakeBotAPI()
        self.activity = Activity()
        self.fake.on_call = self.activity.on_call
        self.content: Content = load_content(ROOT / "content")
        self.zone = daytime_zone(datetime.now(UTC))
        self.guide = GuideProcess(
            self.fake, self.url, self.log, clock_scale=options.clock_scale, zone=self.zone
        )
        self.people: list[Person] = []
        self.kills: list[Kill] = []
        self.stop_status: int | None = None
        self.not_yet_due: set[int] = set()
        # time.time() - time.monotonic(): the fake stamps calls with the latter.
        self.clock_offset = time.time() - time.monotonic()

    # ------------------------------------------------------------------ the run

    async def run(self) -> Result:
        await self.fake.start()
        try:
            await self._run()
        finally:
            if self.guide.running:
                await self.guide.kill()
            await self.fake.stop()
            self._save_calls()
        return Result(self._verdict(), self.workdir)

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
                out.write(json.dumps({"at": round(kill.at, 3), "window": kill.window}) + "\n")

    async def _run(self) -> None:
        await self._onboard()
        await self.guide.start()
        self.fake.chaos = self.o.chaos
        began = time.monotonic()
        until = began + self.o.minutes * 60
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
        if not self.guide.running:
            await self.guide.start()
        await self._drain()
        # /stop below cancels what is planned for later: remember what that was.
        now = datetime.now(UTC).isoformat(sep=" ")[:26]
        self.not_yet_due = {
            r[0]
            for r in rows(
                self.db, "select id from followups where status = 'pending' and due_at >= ?", now
            )
        }
        await self._stop_everyone()
        self.ended = datetime.now(UTC)
        self.stop_status = await self.guide.stop()

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

    async def _kill_until(self, until: float) -> None:
        """Kill at random moments spread over the run (each restart takes a few
        seconds of it), the first after some activity, the last well before the end."""
        start = time.monotonic() + 5
        span = max(0.0, until - 10 - start)
        moments = sorted(start + self.rng.uniform(0, span) for _ in range(self.o.kill_count))
        up_since = time.monotonic()
        for moment in moments:
            # A restart takes seconds: a kill moment that passed meanwhile still
            # leaves the new process some time up, or this would test a crash loop.
            moment = max(moment, up_since + MIN_UPTIME)
            await asyncio.sleep(max(0.0, moment - time.monotonic()))
            if time.monotonic() >= until - 5:
                break
            await self._kill_once(in_window=self.rng.random() < 0.35)
            up_since = time.monotonic()
        await asyncio.sleep(max(0.0, until - time.monotonic()))

    async def _kill_once(self, *, in_window: bool) -> None:
        if in_window:
            # Telegram takes the next message and never answers: the process dies
            # between the platform accepting a row and its mark being written.
            self.fake.hold("sendMessage", accept=True)
            try:
                await self.fake.wait_for(lambda: self.fake.holding, within=10)
            except TimeoutError:
                self.fake.faults.clear()
                in_window = False
        await self.guide.kill()
        kill = Kill(time.monotonic(), in_window)
        # A request already on its way may still arrive (a slow answer): the window
        # is what the chat holds once those have landed.
        await asyncio.sleep(self.o.chaos.slow_seconds + 0.5)
        kill.window = self._window()
        self.kills.append(kill)
        self.fake.faults.clear()
        self.fake.release()
        self.fake.holding = 0
        await self.guide.start()

    def _window(self) -> dict[int, list[str]]:
        """Rows pending at the kill that the chat already received: each may come
        twice. A row matches a post with its text that arrived after the row was
        written, each post at most one row."""
        shown = posts(self.fake)
        window: dict[int, list[str]] = {}
        for chat, pending in pending_texts(self.db).items():
            taken = [p for p in shown.get(chat, [])]
            for created, text in pending:
                after = self.wall_to_monotonic(created.timestamp()) - 1.0
                match = next(
                    (p for p in taken if p.text.strip() == text.strip() and p.at >= after),
                    None,
                )
                if match is not None:
                    taken.remove(match)
                    window.setdefault(chat, []).append(text)
        return window

    def wall_to_monotonic(self, wall: float) -> float:
        return wall - self.clock_offset

    async def _drain(self) -> None:
        """Until nothing is owed and nothing overdue is left, or the drain time is up."""
        deadline = time.monotonic() + self.o.drain_seconds
        while time.monotonic() < deadline:
            now = datetime.now(UTC).isoformat(sep=" ")
            owed = rows(self.db, "select count(*) from outbound where status = 'pending'")[0][0]
            stuck = rows(
                self.db,
                "select count(*) from followups where status in ('claimed', 'delivering') "
                "or (status = 'pending' and due_at < ?)",
                now[:26],
            )[0][0]
            # Every update people queued was fetched and confirmed.
            fetched = not self.fake._updates
            if not owed and not stuck and fetched:
                return
            await asyncio.sleep(1.0)

    async def _stop_everyone(self) -> None:
        """Everyone ends what they were doing, so no typed word may remain stored."""
        for person in self.people:
            await person.say("/stop")
        await asyncio.sleep(3.0)

    # ------------------------------------------------------------------ the verdict

    def _verdict(self) -> Verdict:
        logs = self.log.read_text(errors="replace") if self.log.exists() else ""
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
        )
        files = [self.db, self.db.with_name(self.db.name + "-wal")]
        verdict.violations.extend(markers_in_files(self.people, files))
        if self.stop_status not in (0, None):
            verdict.add("shutdown", f"the guide exited {self.stop_status} on SIGTERM")
        if "Traceback" in logs:
            verdict.add("logs", "a traceback in the guide's log")
        chaos = self.o.chaos
        f = verdict.figures
        f["kills"] = len(self.kills)
        f["kills in the window"] = sum(k.in_window for k in self.kills)
        f["faults"] = sum(chaos.injected.values())
        f["fault kinds"] = ", ".join(f"{n} {k}" for k, n in sorted(chaos.injected.items()))
        f["events"] = sum(sum(p.actions.values()) for p in self.people)
        f["violations"] = len(verdict.violations)
        return verdict


def config_yaml(options: Options) -> str:
    return yaml.safe_dump(
        {"minutes": options.minutes, "people": options.people, "seed": options.seed}
    )

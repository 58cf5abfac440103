"""The whole guide on Telegram, against floors measured in the same run: tables
(a), (b) and (c) of issue 14, and Bot API calls per action by kind.

Simulated people walk the pause flow (/pause, then seven button presses) through the
fake Bot API (`tests/telegram/fake_bot_api.py`), which runs in a process of its own,
so its work is not charged to the bot. The bot side is the full stack:
python-telegram-bot polling, `TelegramAdapter`, the real engine and content, SQLite
on a file (WAL), the outbox rows and the outbox's pacing.

The floor, "same Bot API calls, no engine", is a bot on the same python-telegram-bot
and rate limiter that answers each action with the calls the full stack makes for it
(answer the press, edit its message, then the same messages with the same keyboards,
taken from the engine's replies rendered once before the run), with no engine,
database or outbox, one update at a time as PTB does by default (the least CPU per
call). "typing" is left out: the full stack sends it only when an answer is not ready
within a second, and the calls-by-kind table shows how often it did.

(a) throughput, caps off: `--users` people, `--concurrency` at a time, each acting as
    soon as the answer to their last action arrived; also a bare echo bot on the same
    PTB and the engine alone (no Telegram), to split the full stack's CPU.
(b) `--people` send /pause at the same moment, with the default caps, then tap through
    the flow, each tap `--think` seconds after the reply arrived.
(c) one person at a time taps through /pause (`--walks` walks), the default caps on;
    `--hurried` walks more that tap the moment a reply arrives.

Latency is from the update being queued in the fake to the last message of its reply
arriving there: what a person waits for. Actions/s is all actions over the run's wall
time. Numbers move with whatever else the machine runs; each table's floor ran
minutes apart from it in the same process, so compare within a table.

Run: `python -m bench.telegram_throughput` (about 4 minutes), `--quick` (about 1).
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

PAUSE_WALK: list[tuple[str, str, str]] = [
    # (action, text or button label, a piece of the answer's last message)
    ("say", "/pause", "Breathe in"),
    ("press", "Done", "How loud"),
    ("press", "7", "What set it off?"),
    ("press", "Silence", "What does it want to do?"),
    ("press", "Reach out more", "Does that fit"),
    ("press", "It fits", "What would help most"),
    ("press", "Settle and wait a set time", "check on you later"),
    ("press", "No thanks", "it counts"),
]
ECHO_WALK = [("say", f"echo number {n}", f"echo number {n}") for n in range(len(PAUSE_WALK))]
ECHO_USER_BASE = 10_000_000
SAME_CALLS_USER_BASE = 30_000_000
SAME_CALLS = "same Bot API calls, no engine"
FULL_STACK = "pausecheck (full stack)"


# ---------------------------------------------------------------------- the fake's side


@dataclass
class Walker:
    """Plays every simulated person inside the fake's process: reacts to the bot's
    messages as they arrive and queues each person's next update."""

    fake: Any
    walk: list[tuple[str, str, str]]
    users: list[int]
    concurrency: int
    # Seconds a person takes to read a reply before the next tap (0: at once).
    think: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    latencies: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)  # of each walk's first action
    step: dict[int, int] = field(default_factory=dict)
    sent_at: dict[int, float] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    failures: int = 0
    _next_user: int = 0
    _active: int = 0

    def begin(self) -> None:
        self.started = time.perf_counter()
        for _ in range(min(self.concurrency, len(self.users))):
            self._start_next()

    def _start_next(self) -> None:
        if self._next_user >= len(self.users):
            return
        user = self.users[self._next_user]
        self._next_user += 1
        self._active += 1
        self.step[user] = 0
        self._act(user, None)

    def _act(self, user: int, last_message: dict[str, Any] | None) -> None:
        action, what, _ = self.walk[self.step[user]]
        self.sent_at[user] = time.perf_counter()
        if action == "say":
            self.fake.push_message(user, what)
            return
        assert last_message is not None
        for row in last_message.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == what:
                    self.fake.push_callback(
                        user, last_message["message_id"], button["callback_data"]
                    )
                    return
        self.failures += 1
        self._finish(user)

    def on_call(self, call: Any, result: Any) -> None:
        if call.method != "sendMessage" or call.chat_id not in self.step:
            return
        user = call.chat_id
        _, _, until = self.walk[self.step[user]]
        if until not in call.params.get("text", ""):
            if "went wrong" in call.params.get("text", ""):
                self.failures += 1
                self._finish(user)
            return
        self.latencies.append(time.perf_counter() - self.sent_at[user])
        if self.step[user] == 0:
            self.first.append(self.latencies[-1])
        self.step[user] += 1
        if self.step[user] == len(self.walk):
            self._finish(user)
        elif self.think:
            asyncio.get_running_loop().call_later(self.think, self._act, user, result)
        else:
            self._act(user, result)

    def _finish(self, user: int) -> None:
        del self.step[user]
        self._active -= 1
        self._start_next()
        if self._active == 0:
            self.finished = time.perf_counter()
            self.done.set()


def serve_fake(conn: Connection) -> None:
    """The fake's process: serve the Bot API, run walks when asked, report results."""
    asyncio.run(_serve_fake(conn))


async def _serve_fake(conn: Connection) -> None:
    from tests.telegram.fake_bot_api import FakeBotAPI

    fake = FakeBotAPI()
    await fake.start()
    conn.send(("ready", fake.base_url))
    while True:
        command, args = await asyncio.to_thread(conn.recv)
        if command == "stop":
            await fake.stop()
            return
        walk = PAUSE_WALK if args["kind"] == "guide" else ECHO_WALK
        walker = Walker(fake, walk, args["users"], args["concurrency"], args["think"])
        fake.calls.clear()
        fake.on_call = walker.on_call
        cpu = time.process_time()
        walker.begin()
        with contextlib.suppress(TimeoutError):
            # A walk that stalls (a reply never came) is reported, not waited for.
            await asyncio.wait_for(walker.done.wait(), args["timeout"])
        if not walker.finished:
            walker.finished = time.perf_counter()
        cpu = time.process_time() - cpu
        fake.on_call = None
        calls = Counter(c.method for c in fake.calls if c.method != "getUpdates")
        fake.messages.clear()
        conn.send(
            (
                "result",
                {
                    "updates": len(walker.latencies),
                    "expected": len(args["users"]) * len(walk),
                    "seconds": walker.finished - walker.started,
                    "latencies": walker.latencies,
                    "first": walker.first,
                    "failures": walker.failures,
                    "calls": dict(calls),
                    "fake_cpu": cpu,
                },
            )
        )


# ---------------------------------------------------------------------- the bot's side


@dataclass
class Result:
    name: str
    updates: int
    seconds: float
    p50: float
    p99: float
    failures: int
    calls: dict[str, int]
    cpu: float = 0.0  # CPU seconds of the bot's process (all its threads) during the run
    latencies: list[float] = field(default_factory=list)
    expected: int = 0  # actions the walks would make in all
    first: list[float] = field(default_factory=list)  # latencies of each walk's first action
    # CPU seconds of the fake's process (the Bot API and every simulated person).
    fake_cpu: float = 0.0
    # The bot's event loop thread: seconds it ran, and seconds it was ready to run but
    # waited for a CPU (Linux's schedstat; 0 elsewhere).
    loop_ran: float = 0.0
    loop_waited: float = 0.0

    @property
    def loop_busy(self) -> float:
        """The share of the round the bot's loop ran or waited for a CPU to run: near
        1, it always had work (bound by CPU); well below, it idled between awaits."""
        return (self.loop_ran + self.loop_waited) / self.seconds

    def without_reply_within(self, seconds: float) -> int:
        """Actions whose reply's last message took longer, or never came."""
        late = sum(1 for latency in self.latencies if latency > seconds)
        return late + max(0, self.expected - len(self.latencies))

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms_per_update(self) -> float:
        return self.cpu / max(self.updates, 1) * 1000


class FakeInProcess:
    """The fake Bot API and its people in a process of their own (`serve`: the
    process's body, which answers "run" with a walk's figures and "stop")."""

    def __init__(self, serve: Callable[[Connection], None]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child,), daemon=True)
        self._process.start()
        kind, self.base_url = self._conn.recv()
        assert kind == "ready"

    async def _run(self, args: dict[str, Any]) -> dict[str, Any]:
        self._conn.send(("run", args))
        _, data = await asyncio.to_thread(self._conn.recv)
        return cast(dict[str, Any], data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop", None))
        self._process.join(5)


class FakeProcess(FakeInProcess):
    def __init__(self) -> None:
        super().__init__(serve_fake)

    async def walk(
        self,
        name: str,
        kind: str,
        users: list[int],
        concurrency: int,
        *,
        think: float = 0.0,
        give_up_after: float = 600,
    ) -> Result:
        args = {
            "kind": kind,
            "users": users,
            "concurrency": concurrency,
            "think": think,
            "timeout": give_up_after,
        }
        cpu = time.process_time()
        ran, waited = _loop_schedstat()
        data = await self._run(args)
        cpu = time.process_time() - cpu
        ran_after, waited_after = _loop_schedstat()
        p50, p99 = _p50_p99(data["latencies"])
        return Result(
            name,
            data["updates"],
            data["seconds"],
            p50,
            p99,
            data["failures"],
            data["calls"],
            cpu,
            data["latencies"],
            data["expected"],
            data["first"],
            data["fake_cpu"],
            ran_after - ran,
            waited_after - waited,
        )


TOKEN = "123456:TEST-token-for-the-fake"


def _loop_schedstat() -> tuple[float, float]:
    """Seconds the calling thread (the event loop's) has run, and has waited to run
    while ready; zeros where Linux's /proc schedstat is not there."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stats:
            ran, waited, _ = stats.read().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(ran) / 1e9, int(waited) / 1e9


def _p50_p99(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    if not ordered:
        return float("nan"), float("nan")
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]


async def run_echo(
    fake: FakeProcess, users: list[int], concurrency: int, *, concurrent: bool
) -> Result:
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)

    builder = ApplicationBuilder().token(TOKEN).base_url(fake.base_url).job_queue(None)
    if concurrent:
        builder = builder.concurrent_updates(256)
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10)
        name = "echo bot, concurrent" if concurrent else "echo bot (PTB defaults)"
        result = await fake.walk(name, "echo", users, concurrency)
        await app.updater.stop()
        await app.stop()
    return result


async def open_bench_guide(
    database: Path, users: list[int], base_url: str, *, caps: bool = False
) -> tuple[Any, Any]:
    """The real guide on a SQLite file (WAL), with `users` consented and screened;
    with Telegram's caps as configured by default (`caps`), else none."""
    import os

    from bot.app import open_guide
    from bot.config import Settings
    from dialogs.clock import SystemClock
    from dialogs.store import Profile, UserKey

    os.environ["TELEGRAM_BOT_TOKEN"] = TOKEN
    os.environ["TELEGRAM_API_BASE_URL"] = base_url
    os.environ["PAUSECHECK_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    settings = Settings(_env_file=None)
    if not caps:
        # The fake has no flood control, and (a) measures the stack, not the caps.
        settings = settings.model_copy(
            update={
                "telegram_rate": None,
                "telegram_rate_per_chat": None,
                "telegram_reply_rate": None,
                "telegram_group_messages_per_minute": None,
            }
        )
    clock = SystemClock()
    guide = await open_guide(settings, clock)
    now = clock.now()
    profile = Profile(
        consent_at=now,
        adult=True,
        screened=True,
        last_active_at=now,
        session_started_at=now,
        reminded_at=now,
    )
    async with guide.store.session() as s:
        for user in users:
            await s.save_profile(UserKey("telegram", str(user)), profile)
    return guide, settings


async def run_guide(
    fake: FakeProcess,
    users: list[int],
    concurrency: int,
    database: Path,
    *,
    caps: bool = False,
    name: str = FULL_STACK,
    think: float = 0.0,
    adapter_options: dict[str, Any] | None = None,
) -> Result:
    from bot.telegram.adapter import TelegramAdapter

    guide, settings = await open_bench_guide(database, users, fake.base_url, caps=caps)
    adapter = TelegramAdapter(guide, settings, **(adapter_options or {}))
    await guide.add_platform("telegram", adapter)
    await adapter.start()
    try:
        return await fake.walk(name, "guide", users, concurrency, think=think)
    finally:
        await adapter.stop()
        await guide.close()


async def script_of_walk(database: Path) -> list[list[Any]]:
    """What the full stack posts for each update of PAUSE_WALK: the engine's replies
    for one person, rendered as `send` renders them (`bot.telegram.render.Post`s)."""
    from bot.telegram.render import render
    from dialogs.clock import SystemClock
    from dialogs.events import Address, Choice, Command, Inbound

    guide, _ = await open_bench_guide(database, [1], "http://127.0.0.1:9/bot")
    clock = SystemClock()
    address = Address("telegram", "1", "1", True)
    choices: Sequence[Choice] = ()
    script: list[list[Any]] = []
    try:
        for n, (action, what, _) in enumerate(PAUSE_WALK):
            if action == "say":
                inbound = Inbound(address, f"script-{n}", clock.now(), command=Command(what[1:]))
            else:
                choice = next(c for c in choices if c.label == what)
                inbound = Inbound(address, f"script-{n}", clock.now(), choice=choice.id)
            replies = await guide.engine.handle(inbound)
            script.append(render(replies, private=True, bot_username=None))
            choices = replies[-1].choices
    finally:
        await guide.close()
    return script


async def run_same_calls(
    fake: FakeProcess,
    users: list[int],
    concurrency: int,
    script: list[list[Any]],
    *,
    name: str = SAME_CALLS,
    think: float = 0.0,
) -> Result:
    """The floor: a bot on python-telegram-bot with the adapter's rate limiter that
    answers each update with the Bot API calls the full stack makes for it, read from
    `script`: a press is answered and its message edited, then the same messages,
    keyboards included ("typing" only goes where the engine is slow, and there is no
    engine here; the calls-by-kind table shows what the full stack sent). No engine, no
    database, no outbox, and one update at a time (PTB's default): with concurrent
    updates the same calls cost more CPU (more connections in httpx's pool, more
    tasks), and this row is meant as the least those calls cost."""
    from telegram import Message, Update
    from telegram.ext import AIORateLimiter, ApplicationBuilder, TypeHandler

    from bot.telegram.text import with_choice

    step: dict[int, int] = {}

    async def reply(update: Update, context: object) -> None:
        user = update.effective_user
        assert user is not None
        n = step.get(user.id, 0)
        step[user.id] = n + 1
        posts = script[n]
        bot = update.get_bot()
        query = update.callback_query
        if query is not None:
            message = query.message
            assert isinstance(message, Message) and message.text is not None
            assert message.reply_markup is not None
            label = next(
                b.text
                for row in message.reply_markup.inline_keyboard
                for b in row
                if b.callback_data == query.data
            )
            shown = with_choice(message.text, label)
            assert shown is not None
            await query.answer()
            await bot.edit_message_text(shown, message.chat_id, message.message_id)
        for post in posts:
            await bot.send_message(user.id, post.text, reply_markup=post.keyboard)

    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(fake.base_url)
        .rate_limiter(AIORateLimiter(overall_max_rate=0, group_max_rate=20))
        .job_queue(None)
        .build()
    )
    app.add_handler(TypeHandler(Update, reply))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10)
        result = await fake.walk(name, "guide", users, concurrency, think=think)
        await app.updater.stop()
        await app.stop()
    return result


async def run_engine_alone(users: list[int], concurrency: int, database: Path) -> Result:
    """The same walks straight into `engine.handle`: no Telegram, no HTTP. The full
    stack can never beat this; the gap to it is what Telegram costs."""
    from dialogs.clock import SystemClock
    from dialogs.events import Address, Choice, Command, Inbound

    guide, _ = await open_bench_guide(database, users, "http://127.0.0.1:9/bot")
    clock = SystemClock()
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def walk(user: int) -> None:
        nonlocal failures
        address = Address("telegram", str(user), str(user), True)
        choices: Sequence[Choice] = ()
        async with gate:
            for n, (action, what, until) in enumerate(PAUSE_WALK):
                event = f"alone-{user}-{n}"
                began = time.perf_counter()
                if action == "say":
                    inbound = Inbound(address, event, clock.now(), command=Command(what[1:]))
                else:
                    choice = next(c for c in choices if c.label == what)
                    inbound = Inbound(address, event, clock.now(), choice=choice.id)
                replies = await guide.engine.handle(inbound)
                latencies.append(time.perf_counter() - began)
                if not replies or until not in replies[-1].text:
                    failures += 1
                    return
                choices = replies[-1].choices

    cpu, began = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(walk(u) for u in users))
    finally:
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        await guide.close()
    p50, p99 = _p50_p99(latencies)
    return Result(
        "engine alone (no Telegram)", len(latencies), seconds, p50, p99, failures, {}, cpu
    )


# ---------------------------------------------------------------------- the tables

METHODS = ("sendMessage", "editMessageText", "answerCallbackQuery", "sendChatAction")
GOAL_PASS = {True: "met", False: "NOT met"}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds == seconds else "-"


def print_throughput(results: Sequence[Result], users: int, concurrency: int) -> None:
    """(a): every bot with the caps off; the ratio that matters is full stack / floor."""
    echo = results[0].rate
    floor = next(r for r in results if r.name == SAME_CALLS)
    guide = next(r for r in results if r.name == FULL_STACK)
    print(
        f"\n(a) throughput, caps off: {users} people x {len(PAUSE_WALK)} actions, "
        f"{concurrency} at a time\n"
    )
    print(
        f"{'bot':<31}{'actions/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/act':>11}"
        f"{'vs echo':>9}{'vs floor':>9}{'failed':>7}"
    )
    print("-" * 95)
    for r in results:
        # Only bots that make the same Bot API calls compare with the floor.
        vs_floor = f"{r.rate / floor.rate:>9.2f}" if r.name in (SAME_CALLS, FULL_STACK) else ""
        print(
            f"{r.name:<31}{r.rate:>10,.0f}{_ms(r.p50):>9}{_ms(r.p99):>9}"
            f"{r.cpu_ms_per_update:>11.2f}{r.rate / echo:>9.2f}{vs_floor:>9}{r.failures:>7}"
        )
    alone = next(r for r in results if r.name.startswith("engine alone"))
    both = floor.cpu_ms_per_update + alone.cpu_ms_per_update
    rest = guide.cpu_ms_per_update - both
    print(
        f"\n  goal full stack >= 0.8 of the floor: {guide.rate / floor.rate:.2f}, "
        f"{GOAL_PASS[guide.rate >= 0.8 * floor.rate]}"
    )
    print(
        f"  CPU per action: the calls (floor) {floor.cpu_ms_per_update:.2f} ms + engine and "
        f"SQLite (engine alone) {alone.cpu_ms_per_update:.2f} ms + the rest (adapter, outbox, "
        f"marks, concurrency) {rest:.2f} ms = {guide.cpu_ms_per_update:.2f} ms"
    )
    print(
        "  The bot's process is bound to one core, so actions/s is about 1000 / CPU ms: "
        "the full stack makes the floor's calls AND runs the engine, so its ceiling is "
        f"{floor.cpu_ms_per_update / both:.2f} of the floor. Corrected goal: the full stack "
        "adds at most 25% to floor + engine alone: "
        f"{guide.cpu_ms_per_update / both:.2f}x, "
        f"{GOAL_PASS[guide.cpu_ms_per_update <= 1.25 * both]}"
    )


def print_burst(rounds: Sequence[tuple[Result, Result]], people: int, think: float) -> None:
    """(b): everyone starts at once, the default caps on; floor and full stack in
    alternating rounds."""
    print(
        f"\n(b) {people} people send /pause at the same moment, then tap through it "
        f"({len(PAUSE_WALK)} actions each, a tap {think:g} s after the reply arrived); "
        f"{len(rounds)} round(s), floor and full stack alternating\n"
    )
    print(
        f"{'bot':<42}{'actions':>8}{'act/s':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'/pause p99':>11}{'>10 s':>6}{'CPU ms/act':>11}{'cores':>6}"
        f"{'loop busy':>10}{'fake ms/act':>12}"
    )
    print("-" * 137)
    for n, pair in enumerate(rounds, 1):
        for r in pair:
            _, first99 = _p50_p99(r.first)
            acts = max(len(r.latencies), 1)
            name = f"{r.name} #{n}" if len(rounds) > 1 else r.name
            print(
                f"{name:<42}{len(r.latencies):>8}{r.rate:>7,.0f}{_ms(r.p50):>8}"
                f"{_ms(r.p99):>8}{_ms(max(r.latencies, default=float('nan'))):>8}"
                f"{_ms(first99):>11}{r.without_reply_within(10.0):>6}"
                f"{r.cpu_ms_per_update:>11.1f}{r.cpu / r.seconds:>6.2f}"
                f"{r.loop_busy:>10.2f}{r.fake_cpu / acts * 1000:>12.1f}"
            )
    ratios = [guide.p99 / floor.p99 for floor, guide in rounds]
    p99 = statistics.median(guide.p99 for _, guide in rounds)
    floor99 = statistics.median(floor.p99 for floor, _ in rounds)
    late = sum(guide.without_reply_within(10.0) for _, guide in rounds)
    print(
        f"\n  time to a reply's last message, full stack: p99 {p99:.2f} s (median of rounds; "
        f"goal < 2 s: {GOAL_PASS[p99 < 2.0]}, the floor's {floor99:.2f} s); actions without "
        f"a full reply in 10 s: {late} (goal 0: {GOAL_PASS[late == 0]}); p99 vs the floor "
        f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"corrected goal <= 1.25x: {GOAL_PASS[statistics.median(ratios) <= 1.25]})"
    )
    print(
        "  cores: the bot's CPU seconds (all its threads) per second of the round; loop "
        "busy: the share of the round its event loop ran or was ready and waited for a "
        "CPU (near 1: bound by CPU, and then Little's law sets the wait: people x CPU per "
        "action / cores - think); the fake (the Bot API and all the people) runs in its "
        "own process"
    )


def print_one_person(results: Sequence[Result], think: float) -> None:
    """(c): one person at a time, nothing else running, the default caps on."""
    print(
        "\n(c) one person taps through /pause, walks one after another "
        f"(a tap {think:g} s after the reply arrived, unless the row says otherwise)\n"
    )
    print(f"{'bot':<52}{'actions':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print("-" * 87)
    for r in results:
        print(
            f"{r.name:<52}{len(r.latencies):>8}{r.p50 * 1000:>9.1f}{r.p99 * 1000:>9.1f}"
            f"{max(r.latencies, default=float('nan')) * 1000:>9.1f}"
        )
    floor, guide = results[0], results[1]
    print(
        f"\n  press to a reply's last message, full stack: p99 {guide.p99 * 1000:.0f} ms "
        f"(goal < 300 ms: {GOAL_PASS[guide.p99 < 0.3]}); p50 vs the floor "
        f"{guide.p50 / floor.p50:.2f}x"
    )
    if len(results) > 2:
        print(
            "  Tapping without reading meets Telegram's per-chat pace: a burst of "
            "5 messages, then about 1 a second (TELEGRAM_CHAT_BURST, _PER_CHAT_PER_SECOND)"
        )


def print_calls(results: Sequence[Result]) -> None:
    print("\nBot API calls per action, by kind (counted at the fake)\n")
    print(f"{'run':<44}" + "".join(f"{m:>20}" for m in METHODS) + f"{'other':>7}{'all':>7}")
    print("-" * (44 + 20 * len(METHODS) + 14))
    for r in results:
        n = max(len(r.latencies), 1)
        other = sum(v for k, v in r.calls.items() if k not in METHODS)
        print(
            f"{r.name:<44}"
            + "".join(f"{r.calls.get(m, 0) / n:>20.2f}" for m in METHODS)
            + f"{other / n:>7.2f}{sum(r.calls.values()) / n:>7.2f}"
        )
    print(
        "  a press: answerCallbackQuery + editMessageText (the choice shown in the question)"
        " + the reply's messages; /pause: its messages; sendChatAction ('typing') only when"
        " the engine has not answered within 1 s and at most 8 answers are in the works"
    )


async def measure(
    users: int,
    concurrency: int,
    people: int,
    walks: int,
    think: float,
    hurried: int,
    burst_rounds: int = 1,
) -> None:
    fake = FakeProcess()
    bases = iter(range(40_000_000, 90_000_000, 1_000_000))

    def ids(n: int) -> list[int]:
        base = next(bases)
        return [base + k for k in range(n)]

    capped = f"{FULL_STACK}, default caps"
    try:
        echo = await run_echo(fake, ids(users), concurrency, concurrent=False)
        echo_concurrent = await run_echo(fake, ids(users), concurrency, concurrent=True)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp)
            script = await script_of_walk(db / "script.db")
            # (a)
            floor = await run_same_calls(fake, ids(users), concurrency, script)
            alone = await run_engine_alone(ids(users), concurrency, db / "alone.db")
            guide = await run_guide(fake, ids(users), concurrency, db / "guide.db")
            # (b), floor and full stack in turn, so both meet the same machine
            bursts: list[tuple[Result, Result]] = []
            for n in range(burst_rounds):
                burst_floor = await run_same_calls(fake, ids(people), people, script, think=think)
                burst = await run_guide(
                    fake, ids(people), people, db / f"b{n}.db", caps=True, name=capped, think=think
                )
                bursts.append((burst_floor, burst))
            burst_floor, burst = bursts[0]
            # (c)
            one_floor = await run_same_calls(fake, ids(walks), 1, script, think=think)
            one = await run_guide(
                fake, ids(walks), 1, db / "c.db", caps=True, name=capped, think=think
            )
            ones = [one_floor, one]
            if hurried:
                ones.append(
                    await run_guide(
                        fake,
                        ids(hurried),
                        1,
                        db / "c0.db",
                        caps=True,
                        name=f"{capped}, tapping at once",
                    )
                )
    finally:
        fake.close()
    print(f"fake Bot API in its own process; python {sys.version.split()[0]}")
    print_throughput([echo, echo_concurrent, floor, alone, guide], users, concurrency)
    print_burst(bursts, people, think)
    print_one_person(ones, think)
    for label, group in (("(a)", [floor, guide]), ("(b)", [burst_floor, burst]), ("(c)", ones)):
        for r in group:
            r.name = f"{label} {r.name}"
    print_calls([floor, guide, burst_floor, burst, *ones])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400, help="(a): people in all")
    parser.add_argument("--concurrency", type=int, default=100, help="(a): people at once")
    parser.add_argument("--people", type=int, default=200, help="(b): people starting at once")
    parser.add_argument("--walks", type=int, default=5, help="(c): one person's walks")
    parser.add_argument(
        "--think", type=float, default=1.0, help="(b), (c): seconds from a reply to the next tap"
    )
    parser.add_argument(
        "--hurried", type=int, default=1, help="(c): walks tapping at once (0: none)"
    )
    parser.add_argument(
        "--burst-rounds", type=int, default=1, help="(b): rounds, floor and full stack in turn"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small runs: --users 100 --people 50 --walks 2"
    )
    args = parser.parse_args()
    if args.quick:
        args.users, args.people, args.walks = 100, 50, 2
    counts = (args.users, args.concurrency, args.people, args.walks, args.burst_rounds)
    if min(counts) <= 0 or args.think < 0:
        parser.error("every count must be positive")
    asyncio.run(
        measure(
            args.users,
            min(args.concurrency, args.users),
            args.people,
            args.walks,
            args.think,
            args.hurried,
            args.burst_rounds,
        )
    )


if __name__ == "__main__":
    main()

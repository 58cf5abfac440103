"""The whole guide on Telegram under load, against a bare echo bot.

Simulated people walk the pause flow (a command, then seven button presses) through
the fake Bot API (`tests/telegram/fake_bot_api.py`), which runs in a process of its
own, so its work is not charged to the bot. The bot side is the full stack:
python-telegram-bot polling, `TelegramAdapter`, the real engine and content, SQLite
on a file (WAL), and the outbox with its limits off (so this measures the stack, not
Telegram's 30 messages/s cap). The baseline, in the same run against the same fake, is
a bare echo bot on the same python-telegram-bot: one handler, one `reply_text`;
measured twice, with PTB's defaults (one update at a time) and with concurrent updates.

The floor, "same Bot API calls, no engine", is a bot on the same python-telegram-bot
and rate limiter that answers each update with exactly the calls the full stack makes
for it (answer the press, edit its message, "typing" before several messages, the same
messages with the same keyboards, taken from the engine's replies rendered once before
the run), with no engine, database or outbox, one update at a time as PTB does by
default (that costs the least CPU per call). The full stack cannot beat it: it makes
the same calls and runs the engine besides, and the bot's process has one core.

Each simulated person acts only after the bot's answer to their last action arrived
(a closed loop, `--concurrency` people at a time, `--users` in all). Latency is from
the update being queued in the fake to the answer's last message arriving there;
updates/s is all updates over the wall time of the run.

Run: `python -m bench.telegram_throughput` (about 2 minutes; `--users 100` for a quick
run). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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
    done: asyncio.Event = field(default_factory=asyncio.Event)
    latencies: list[float] = field(default_factory=list)
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
        self.step[user] += 1
        if self.step[user] == len(self.walk):
            self._finish(user)
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
        walker = Walker(fake, walk, args["users"], args["concurrency"])
        fake.calls.clear()
        fake.on_call = walker.on_call
        walker.begin()
        await asyncio.wait_for(walker.done.wait(), args["timeout"])
        fake.on_call = None
        calls = Counter(c.method for c in fake.calls if c.method != "getUpdates")
        fake.messages.clear()
        conn.send(
            (
                "result",
                {
                    "updates": len(walker.latencies),
                    "seconds": walker.finished - walker.started,
                    "latencies": walker.latencies,
                    "failures": walker.failures,
                    "calls": dict(calls),
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

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms_per_update(self) -> float:
        return self.cpu / max(self.updates, 1) * 1000


class FakeProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_fake, args=(child,), daemon=True)
        self._process.start()
        kind, self.base_url = self._conn.recv()
        assert kind == "ready"

    async def walk(self, name: str, kind: str, users: list[int], concurrency: int) -> Result:
        args = {"kind": kind, "users": users, "concurrency": concurrency, "timeout": 600}
        cpu = time.process_time()
        self._conn.send(("run", args))
        _, data = await asyncio.to_thread(self._conn.recv)
        cpu = time.process_time() - cpu
        p50, p99 = _p50_p99(data["latencies"])
        return Result(
            name, data["updates"], data["seconds"], p50, p99, data["failures"], data["calls"], cpu
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop", None))
        self._process.join(5)


TOKEN = "123456:TEST-token-for-the-fake"


def _p50_p99(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
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


async def open_bench_guide(database: Path, users: list[int], base_url: str) -> tuple[Any, Any]:
    """The real guide on a SQLite file (WAL), with `users` consented and screened."""
    import os

    from bot.app import open_guide
    from bot.config import Settings
    from dialogs.clock import SystemClock
    from dialogs.store import Profile, UserKey

    os.environ["TELEGRAM_BOT_TOKEN"] = TOKEN
    os.environ["TELEGRAM_API_BASE_URL"] = base_url
    os.environ["PAUSECHECK_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    # No rate limits: the fake has no flood control, and the cap is not what we measure.
    settings = Settings(_env_file=None).model_copy(
        update={"telegram_rate": None, "telegram_rate_per_chat": None}
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
    fake: FakeProcess, users: list[int], concurrency: int, database: Path
) -> Result:
    from bot.telegram.adapter import TelegramAdapter

    guide, settings = await open_bench_guide(database, users, fake.base_url)
    adapter = TelegramAdapter(guide, settings)
    await guide.add_platform("telegram", adapter)
    await adapter.start()
    try:
        return await fake.walk(FULL_STACK, "guide", users, concurrency)
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
    fake: FakeProcess, users: list[int], concurrency: int, script: list[list[Any]]
) -> Result:
    """The floor: a bot on python-telegram-bot with the adapter's rate limiter that
    answers each update with the Bot API calls the full stack makes for it, read from
    `script`: a press is answered and its message edited, "typing" goes before a reply
    of several messages, then the same messages, keyboards included. No engine, no
    database, no outbox, and one update at a time (PTB's default): with concurrent
    updates the same calls cost more CPU (more connections in httpx's pool, more
    tasks), and this row is meant as the least those calls cost."""
    from telegram import Message, Update
    from telegram.constants import ChatAction
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
        if len(posts) > 1:
            await bot.send_chat_action(user.id, ChatAction.TYPING)
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
        result = await fake.walk(SAME_CALLS, "guide", users, concurrency)
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


def print_table(results: Sequence[Result], users: int, concurrency: int) -> None:
    base = results[0].rate
    floor = next(r.rate for r in results if r.name == SAME_CALLS)
    print(
        f"\n{users} people x {len(PAUSE_WALK)} updates, {concurrency} at a time, "
        f"fake Bot API in its own process (python {sys.version.split()[0]})\n"
    )
    print(
        f"{'bot':<31}{'updates/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/upd':>11}"
        f"{'vs echo':>9}{'vs floor':>9}{'failed':>7}"
    )
    print("-" * 95)
    for r in results:
        # Only bots that make the same Bot API calls compare with the floor.
        vs_floor = f"{r.rate / floor:>9.2f}" if r.name in (SAME_CALLS, FULL_STACK) else " " * 9
        print(
            f"{r.name:<31}{r.rate:>10,.0f}{r.p50 * 1000:>9.1f}{r.p99 * 1000:>9.1f}"
            f"{r.cpu_ms_per_update:>11.2f}{r.rate / base:>9.2f}{vs_floor}{r.failures:>7}"
        )


def _calls_per_update(result: Result) -> str:
    calls = sum(result.calls.values()) / max(result.updates, 1)
    per = ", ".join(f"{m} {n / result.updates:.2f}" for m, n in sorted(result.calls.items()))
    return f"{calls:.2f} ({per})"


def print_notes(echo: Result, floor: Result, alone: Result, guide: Result) -> None:
    rest = guide.cpu_ms_per_update - floor.cpu_ms_per_update - alone.cpu_ms_per_update
    print(
        f"\nBot API calls per update: full stack {_calls_per_update(guide)}; "
        f"same calls, no engine {_calls_per_update(floor)}; echo bot 1.00"
    )
    print("Where the full stack's CPU goes, per update (from the rows above):")
    print(
        f"  the Bot API calls, as in 'same Bot API calls':      {floor.cpu_ms_per_update:6.2f} ms"
        " (PTB, httpx, JSON)"
    )
    print(f"  engine and SQLite, as in 'engine alone':           {alone.cpu_ms_per_update:6.2f} ms")
    print(
        f"  the rest (adapter, outbox, concurrent updates):    {rest:6.2f} ms"
        f"  = {guide.cpu_ms_per_update:.2f} ms in all"
    )
    print(
        "The bot's process is CPU-bound here (one core), so updates/s is about 1000 / CPU ms. "
        f"The full stack reaches {guide.rate / echo.rate:.2f} of the echo bot and "
        f"{guide.rate / floor.rate:.2f} of the same-calls floor, which itself reaches "
        f"{floor.rate / echo.rate:.2f} of the echo bot: it makes those calls and runs the "
        "engine too, so it can beat neither the floor nor the engine alone."
    )


async def measure(users: int, concurrency: int) -> None:
    fake = FakeProcess()
    try:
        guide_users = list(range(1, users + 1))
        echo_users = [ECHO_USER_BASE + n for n in range(users)]
        echo = await run_echo(fake, echo_users, concurrency, concurrent=False)
        echo_concurrent = await run_echo(
            fake, [u + users for u in echo_users], concurrency, concurrent=True
        )
        with tempfile.TemporaryDirectory() as tmp:
            script = await script_of_walk(Path(tmp) / "script.db")
            floor = await run_same_calls(
                fake, [SAME_CALLS_USER_BASE + n for n in range(users)], concurrency, script
            )
            alone = await run_engine_alone(guide_users, concurrency, Path(tmp) / "alone.db")
            guide = await run_guide(fake, guide_users, concurrency, Path(tmp) / "guide.db")
    finally:
        fake.close()
    results = [echo, echo_concurrent, floor, alone, guide]
    print_table(results, users, concurrency)
    print_notes(echo, floor, alone, guide)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="people in all (default 1000)")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="people mid-walk at once (default 100)"
    )
    args = parser.parse_args()
    asyncio.run(measure(args.users, min(args.concurrency, args.users)))


if __name__ == "__main__":
    main()

"""The whole guide on Telegram under load, against a bare echo bot.

Simulated people walk the pause flow (a command, then seven button presses) through
the fake Bot API (`tests/telegram/fake_bot_api.py`), which runs in a process of its
own, so its work is not charged to the bot. The bot side is the full stack:
python-telegram-bot polling, `TelegramAdapter`, the real engine and content, SQLite
on a file (WAL), and the outbox with its limits off (so this measures the stack, not
Telegram's 30 messages/s cap). The baseline, in the same run against the same fake, is
a bare echo bot on the same python-telegram-bot: one handler, one `reply_text`;
measured twice, with PTB's defaults (one update at a time) and with concurrent updates.

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
    from bot.telegram_adapter import TelegramAdapter

    guide, settings = await open_bench_guide(database, users, fake.base_url)
    adapter = TelegramAdapter(guide, settings)
    await guide.add_platform("telegram", adapter)
    await adapter.start()
    try:
        return await fake.walk("pausecheck (full stack)", "guide", users, concurrency)
    finally:
        await adapter.stop()
        await guide.close()


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
    print(
        f"\n{users} people x {len(PAUSE_WALK)} updates, {concurrency} at a time, "
        f"fake Bot API in its own process (python {sys.version.split()[0]})\n"
    )
    print(
        f"{'bot':<28}{'updates/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/upd':>11}"
        f"{'vs echo':>9}{'failed':>7}"
    )
    print("-" * 83)
    for r in results:
        print(
            f"{r.name:<28}{r.rate:>10,.0f}{r.p50 * 1000:>9.1f}{r.p99 * 1000:>9.1f}"
            f"{r.cpu_ms_per_update:>11.2f}{r.rate / base:>9.2f}{r.failures:>7}"
        )


def print_notes(echo: Result, alone: Result, guide: Result) -> None:
    calls = sum(guide.calls.values()) / max(guide.updates, 1)
    per = ", ".join(f"{m} {n / guide.updates:.2f}" for m, n in sorted(guide.calls.items()))
    http = calls * echo.cpu_ms_per_update
    rest = guide.cpu_ms_per_update - alone.cpu_ms_per_update - http
    print(f"\nBot API calls per update: full stack {calls:.2f} ({per}); echo bot 1.00")
    print("Where the full stack's CPU goes, per update (estimated from the rows above):")
    print(f"  engine and SQLite, as in 'engine alone':           {alone.cpu_ms_per_update:6.2f} ms")
    print(
        f"  {calls:.2f} Bot API calls at the echo bot's cost of one: {http:6.2f} ms"
        " (PTB, httpx, JSON)"
    )
    print(
        f"  the rest (parsing callback updates, outbox, tasks): {rest:6.2f} ms"
        f"  = {guide.cpu_ms_per_update:.2f} ms in all"
    )
    print(
        f"The bot's process is CPU-bound here (one core), so updates/s is about 1000 / CPU ms. "
        f"The engine alone reaches {alone.rate / echo.rate:.2f} of the echo bot: no adapter "
        "can do better than that."
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
            alone = await run_engine_alone(guide_users, concurrency, Path(tmp) / "alone.db")
            guide = await run_guide(fake, guide_users, concurrency, Path(tmp) / "guide.db")
    finally:
        fake.close()
    results = [echo, echo_concurrent, alone, guide]
    print_table(results, users, concurrency)
    print_notes(echo, alone, guide)


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

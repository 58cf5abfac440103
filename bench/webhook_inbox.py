"""What the webhook inbox costs (issue 19): the same updates handled with and without
the inbox row, in one run, on SQLite and on PostgreSQL.

In webhook mode every update is stored in the `inbox` table before Telegram is
answered, then claimed, handled and deleted (`bot/telegram/inbox.py`,
`storage/inbox_rows.py`): one transaction before the 200 and two more around the
handling. The baseline is the same webhook server, the same adapter, engine,
database and outbox, with the update put straight on python-telegram-bot's update
queue once it is read (`WebhookServer` without `accept`, as before the inbox): what
the inbox adds is the difference.

Simulated people walk the pause flow (/pause, then seven button presses), each
acting as soon as the last message of the reply to their last action arrived, through
the fake Bot API in a process of its own (`bench/telegram_throughput.py`'s walker),
which POSTs each update to the worker's webhook either at once ("concurrent": Telegram
keeps up to `max_connections`, 40 by default, requests open to a webhook; each person
has one update in flight here) or one at a time (a webhook with one connection: each
update waits for the 200 to the one before, so the time the inbox's write holds the
answer back adds up). Latency is from the update being queued at the fake to
the last message of its reply arriving there; CPU is the bot process's (all its
threads) per update. PostgreSQL's own server processes are not counted. Baseline and
inbox rounds alternate, each on a fresh database, so both meet the same machine.

Run: `python -m bench.webhook_inbox` (about 3 minutes); `--quick` (about 1.5).
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.telegram_throughput import PAUSE_WALK, TOKEN, FakeInProcess, Walker, _p50_p99

SECRET = "bench-webhook-secret"
HOOK_URL = "https://bench.invalid/telegram/hook"


# ---------------------------------------------------------------------- the fake's side


def serve_fake(conn: Connection) -> None:
    """The fake's process: the Bot API, delivering updates by webhook; runs walks."""
    asyncio.run(_serve_fake(conn))


async def _serve_fake(conn: Connection) -> None:
    from tests.telegram.fake_bot_api import FakeBotAPI

    http = aiohttp.ClientSession()
    turns = itertools.count()
    posts: set[asyncio.Task[None]] = set()

    class Fake(FakeBotAPI):
        concurrent = False

        def _deliver_soon(self, update: dict[str, Any]) -> None:
            if not self.concurrent:
                super()._deliver_soon(update)  # the fake's own: one at a time
                return
            # Telegram keeps up to max_connections (40 by default) requests open to a
            # webhook; a person has one update in flight at a time here anyway.
            task = asyncio.get_running_loop().create_task(
                self._post_until_taken(http, update, next(turns))
            )
            posts.add(task)
            task.add_done_callback(posts.discard)

    fake = Fake()
    await fake.start()
    conn.send(("ready", fake.base_url))

    while True:
        command, args = await asyncio.to_thread(conn.recv)
        if command == "stop":
            await http.close()
            await fake.stop()
            return
        fake.deliver_by_webhook([args["target"]], SECRET)
        fake.concurrent = args["concurrent"]
        walker = Walker(fake, PAUSE_WALK, args["users"], args["concurrency"])
        fake.calls.clear()
        fake.on_call = walker.on_call
        walker.begin()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(walker.done.wait(), args["timeout"])
        if not walker.finished:
            walker.finished = time.perf_counter()
        fake.on_call = None
        fake.messages.clear()
        conn.send(
            (
                "result",
                {
                    "latencies": walker.latencies,
                    "expected": len(args["users"]) * len(PAUSE_WALK),
                    "seconds": walker.finished - walker.started,
                    "failures": walker.failures,
                },
            )
        )


class FakeProcess(FakeInProcess):
    def __init__(self) -> None:
        super().__init__(serve_fake)

    async def walk(
        self, target: str, users: list[int], concurrency: int, *, concurrent: bool
    ) -> tuple[dict[str, Any], float]:
        """The fake's figures, and the CPU seconds this (the bot's) process used."""
        cpu = time.process_time()
        args = {"target": target, "users": users, "concurrency": concurrency,
                "timeout": 300, "concurrent": concurrent}  # fmt: skip
        data = await self._run(args)
        return data, time.process_time() - cpu


# ---------------------------------------------------------------------- the bot's side


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _adapter_class(inbox: bool) -> Any:
    from telegram.ext import Application

    from bot.telegram.adapter import ALLOWED_UPDATES, TelegramAdapter
    from bot.telegram.webhook import WebhookServer

    if inbox:
        return TelegramAdapter

    class WithoutInbox(TelegramAdapter):
        """The adapter's own webhook start, but each update goes on PTB's queue as
        soon as it is read: no inbox row."""

        async def _start_webhook(
            self, application: Application[Any, Any, Any, Any, Any, Any], url: str
        ) -> None:
            settings = self._settings
            server = WebhookServer(
                application,
                listen=settings.telegram_webhook_listen,
                port=settings.telegram_webhook_port,
                path=urlsplit(url).path,
                secret=SECRET,
                max_bytes=settings.telegram_webhook_max_bytes,
            )
            await server.start()
            self._webhook_server = server
            await application.bot.set_webhook(
                url, secret_token=SECRET, allowed_updates=list(ALLOWED_UPDATES)
            )

    return WithoutInbox


@contextlib.contextmanager
def _database(kind: str, folder: Path, round_: int) -> Iterator[str]:
    if kind == "SQLite":
        yield f"sqlite+aiosqlite:///{folder / f'r{round_}.db'}"
        return
    from bench.pg import database_url, temporary_database

    with temporary_database() as name:
        yield database_url(name)


@contextlib.asynccontextmanager
async def _worker(url: str, users: list[int], inbox: bool) -> AsyncIterator[str]:
    """A guide in webhook mode on `url`, caps off, `users` consented; yields the
    webhook's URL."""
    from bot.app import open_guide
    from bot.config import Settings
    from dialogs.clock import SystemClock
    from dialogs.store import Profile, UserKey

    port = _free_port()
    settings = Settings(
        _env_file=None,
        database_url=url,
        timezone="Europe/London",
        telegram_bot_token=TOKEN,
        telegram_api_base_url=os.environ["BENCH_FAKE_URL"],
        telegram_webhook_url=HOOK_URL,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
        telegram_webhook_secret=SECRET,
        # The fake has no flood control; this measures the stack, not the caps.
        telegram_rate=None,
        telegram_rate_per_chat=None,
        telegram_reply_rate=None,
        telegram_group_messages_per_minute=None,
    )
    clock = SystemClock()
    guide = await open_guide(settings, clock)
    now = clock.now()
    profile = Profile(consent_at=now, adult=True, screened=True, last_active_at=now,
                      session_started_at=now, reminded_at=now)  # fmt: skip
    async with guide.store.session() as s:
        for user in users:
            await s.save_profile(UserKey("telegram", str(user)), profile)
    adapter = _adapter_class(inbox)(guide, settings)
    await guide.add_platform("telegram", adapter)
    await adapter.start()
    try:
        yield f"http://127.0.0.1:{port}{urlsplit(HOOK_URL).path}"
    finally:
        await adapter.stop()
        await guide.close()


@dataclass
class Row:
    database: str
    delivery: str
    inbox: bool
    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    failures: int = 0

    @property
    def updates(self) -> int:
        return len(self.latencies)

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(self.updates, 1) * 1000


DELIVERIES = {"concurrent": True, "one at a time": False}


async def measure(
    databases: list[str], users: int, concurrency: int, rounds: int
) -> list[tuple[Row, Row]]:
    fake = FakeProcess()
    os.environ["BENCH_FAKE_URL"] = fake.base_url
    bases = iter(range(40_000_000, 90_000_000, 100_000))
    pairs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind, delivery in itertools.product(databases, DELIVERIES):
                concurrent = DELIVERIES[delivery]
                rows = {False: Row(kind, delivery, False), True: Row(kind, delivery, True)}
                for round_ in range(rounds):
                    # Baseline first in even rounds, inbox first in odd ones.
                    for inbox in (False, True) if round_ % 2 == 0 else (True, False):
                        base = next(bases)
                        people = [base + k for k in range(users)]
                        with _database(kind, Path(tmp), 2 * round_ + inbox) as url:
                            async with _worker(url, people, inbox) as target:
                                data, cpu = await fake.walk(
                                    target, people, concurrency, concurrent=concurrent
                                )
                        row = rows[inbox]
                        row.latencies += data["latencies"]
                        row.expected += data["expected"]
                        row.seconds += data["seconds"]
                        row.cpu += cpu
                        row.failures += data["failures"]
                pairs.append((rows[False], rows[True]))
    finally:
        fake.close()
    return pairs


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def report(pairs: list[tuple[Row, Row]], users: int, concurrency: int, rounds: int) -> None:
    print(
        f"== Webhook inbox: the pause flow (8 actions), {users} people x {rounds} rounds "
        f"per row, {concurrency} at a time; python {sys.version.split()[0]} =="
    )
    print(
        "| database | webhook posts | path | actions | p50 ms | p99 ms | CPU ms/update "
        "| actions/s | p50 ratio | p99 ratio | CPU ratio |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for base, inbox in pairs:
        for row in (base, inbox):
            p50, p99 = _p50_p99(row.latencies)
            b50, b99 = _p50_p99(base.latencies)
            path = "inbox row (as shipped)" if row.inbox else "baseline: no inbox row"
            rate = row.updates / row.seconds if row.seconds else 0.0
            missing = row.expected - row.updates + row.failures
            actions = f"{row.updates}" + (f" ({missing} missing)" if missing else "")
            print(
                f"| {row.database} | {row.delivery} | {path} | {actions} | {_ms(p50)} | {_ms(p99)} "
                f"| {row.cpu_ms:.2f} | {rate:.0f} | {_ratio(p50, b50)} | {_ratio(p99, b99)} "
                f"| {_ratio(row.cpu_ms, base.cpu_ms)} |"
            )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _postgres_reachable() -> bool:
    try:
        from bench.pg import temporary_database

        with temporary_database():
            return True
    except Exception as exc:
        print(f"PostgreSQL rows skipped: {type(exc).__name__}: {exc}")
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40, help="people per round")
    parser.add_argument("--concurrency", type=int, default=8, help="people at once")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per row, alternating")
    parser.add_argument("--quick", action="store_true", help="--users 12 --rounds 2")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.users = 12
    databases = ["SQLite"]
    if not args.sqlite_only and _postgres_reachable():
        databases.append("PostgreSQL")
    pairs = asyncio.run(
        measure(databases, args.users, min(args.concurrency, args.users), args.rounds)
    )
    report(pairs, args.users, min(args.concurrency, args.users), args.rounds)


if __name__ == "__main__":
    main()

"""Three real `pausecheck run` workers in webhook mode on one PostgreSQL schema, behind a
load balancer played by the test: any worker takes any update (round robin, and the
next one when a worker does not answer, as Telegram retries), yet each person's
updates are handled one at a time and in update order, a redelivered update changes
state once, and an update in hand when its worker is killed with -9 is finished by
another worker (bot.telegram.inbox).

The people are onboarded, so every probe command has a fixed first message; what a
person sees is what the fake Bot API recorded in their chat.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from dialogs.store import Profile, UserKey
from storage import open_store
from storage.engine import create_engine_for
from tests.postgres import postgres_schema_url
from tests.telegram.conftest import free_port
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI, Fault

ROOT = Path(__file__).resolve().parents[2]
SECRET = "webhook-workers-secret"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
# The first words of each probe's answer, whatever the person was doing.
PROBES = {
    "/about": "I'm Pausecheck, an automated guide for",
    "/privacy": "What I keep:",
    "/help": "When it's hard",
}
PEOPLE = list(range(5101, 5107))
EACH = 9  # probes per person in the first phase
HELD = 5201  # the person whose update is in hand when its worker is killed
LEASE_SECONDS = 2
START_WITHIN = 90.0


@dataclass
class Worker:
    fake: FakeBotAPI
    url: str
    logs: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/hook"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
            "TELEGRAM_API_BASE_URL": self.fake.base_url,
            "PAUSECHECK_DATABASE_URL": self.url,
            "PAUSECHECK_TIMEZONE": "Europe/London",
            "PAUSECHECK_LOG_LEVEL": "INFO",
            "PAUSECHECK_TELEGRAM_WEBHOOK_URL": "https://guide.example/telegram/hook",
            "PAUSECHECK_TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
            "PAUSECHECK_TELEGRAM_WEBHOOK_PORT": str(self.port),
            "PAUSECHECK_TELEGRAM_WEBHOOK_SECRET": SECRET,
            "PAUSECHECK_TELEGRAM_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
            "PAUSECHECK_TELEGRAM_RATE": "1000",
            "PAUSECHECK_TELEGRAM_RATE_PER_CHAT": "1000",
            "PAUSECHECK_FLOOD_MESSAGES": "1000",
        }
        env.pop("DISCORD_BOT_TOKEN", None)
        with self.logs.open("ab") as log:
            # --clock-scale 10: the outbox's lease (30 s) is 3 s, so a dead worker's
            # unsent replies are sent by another within the test.
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bot", "run", "--clock-scale", "10"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )

    def inbox_id(self) -> str | None:
        """The id this worker claims inbox rows by (logged at start)."""
        found = re.search(r"webhook inbox worker=(\w+)", self.logs.read_text(errors="replace"))
        return found.group(1) if found else None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL

    async def stop(self) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


class Balancer:
    """Telegram behind a load balancer: each update to the next worker in turn, and
    to the next again until one answers 200."""

    def __init__(self, workers: list[Worker], http: aiohttp.ClientSession) -> None:
        self.workers = workers
        self.http = http
        self.ids: Iterator[int] = itertools.count(1)

    async def deliver(self, update: dict[str, Any], turn: int) -> int:
        """POST until accepted; the index of the worker that took it."""
        for attempt in itertools.count():
            index = (turn + attempt) % len(self.workers)
            worker = self.workers[index]
            try:
                async with self.http.post(
                    worker.hook,
                    json=update,
                    headers={HEADER: SECRET},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    if response.status == 200:
                        return index
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt and attempt % len(self.workers) == 0:
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    def message(self, fake: FakeBotAPI, person: int, words: str) -> dict[str, Any]:
        return {"update_id": next(self.ids), **fake.message_update(person, words)}


def answered(fake: FakeBotAPI, person: int) -> list[str]:
    """The probes whose answer reached the person, in the order they arrived."""
    seen = []
    for message in fake.bot_messages(person):
        for probe, first_words in PROBES.items():
            if message.get("text", "").startswith(first_words):
                seen.append(probe)
    return seen


async def scalar(url: str, query: str) -> Any:
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(query))).scalar()
    finally:
        await engine.dispose()


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
async def workers(
    fake: FakeBotAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[list[Worker]]:
    store = await open_store(database_url)  # migrates; the workers start on it
    now = datetime.now(UTC)
    async with store.session() as session:
        for person in [*PEOPLE, HELD]:
            await session.save_profile(
                UserKey("telegram", str(person)),
                Profile(
                    consent_at=now,
                    adult=True,
                    country="GB",
                    zone="Europe/London",
                    screened=True,
                    session_started_at=now,
                    last_active_at=now,
                    reminded_at=now,
                ),
            )
    await store.close()
    started = [Worker(fake, database_url, tmp_path / f"worker{n}.log") for n in range(3)]
    try:
        await asyncio.gather(*(worker.start() for worker in started))
        await fake.wait_for(lambda: len(fake.ok_calls("setWebhook")) >= 3, within=START_WITHIN)
        yield started
    finally:
        fake.release()
        await asyncio.gather(*(worker.stop() for worker in started))


async def test_three_workers_keep_each_persons_order_and_lose_nothing_to_a_kill(
    fake: FakeBotAPI, workers: list[Worker], database_url: str
) -> None:
    rng = random.Random(19)
    scripts = {person: [rng.choice(list(PROBES)) for _ in range(EACH)] for person in PEOPLE}
    async with aiohttp.ClientSession() as http:
        balancer = Balancer(workers, http)

        # Phase 1: each person's next update goes to the next worker, sent as soon as
        # the last was taken (not handled), so their updates are in flight at two or
        # three workers at once. Every third is delivered twice, to another worker.
        # Each person's first reply is slow to send: it must not be overtaken by the
        # answer to their next update, which reaches another worker meanwhile.
        for person in PEOPLE:
            fake.faults.append(
                Fault("delay", 1, frozenset({"sendMessage"}), chat_id=person, delay=1.5)
            )

        async def person_says(person: int, script: list[str]) -> None:
            for n, words in enumerate(script):
                update = balancer.message(fake, person, words)
                took = await balancer.deliver(update, person + n)
                if n % 3 == 2:
                    await balancer.deliver(update, took + 1)

        await asyncio.gather(*(person_says(p, s) for p, s in scripts.items()))
        await fake.wait_for(lambda: all(len(answered(fake, p)) >= EACH for p in PEOPLE), within=45)
        await asyncio.sleep(1.0)  # a second answer to a redelivery would be here by now
        for person, script in scripts.items():
            assert answered(fake, person) == script, f"person {person}"
        sent_once = len(PEOPLE) * EACH
        assert await scalar(database_url, "select count(*) from processed_events") == sent_once
        assert await scalar(database_url, "select count(*) from inbox") == 0

        # Phase 2: an update in hand when its worker dies. The worker handling HELD's
        # /help committed the turn and is stuck sending the reply; HELD's next updates
        # reach the other workers, which leave them to the claim's holder.
        fake.hold("sendMessage", chat_id=HELD, accept=False)
        first = balancer.message(fake, HELD, "/help")
        await balancer.deliver(first, 0)
        await fake.wait_for(lambda: fake.holding, within=20)
        later = ["/about", "/help", "/privacy"]  # the last one only once
        for n, words in enumerate(later):
            await balancer.deliver(balancer.message(fake, HELD, words), n + 1)
        holder = await scalar(
            database_url,
            f"select min(claimed_by) from inbox where person = '{HELD}'",
        )
        [victim] = [w for w in workers if w.inbox_id() == holder]
        await victim.kill()
        fake.release()
        # Others keep talking meanwhile; updates sent to the dead worker go elsewhere.
        more = {person: [rng.choice(list(PROBES)) for _ in range(3)] for person in PEOPLE}

        async def more_says(person: int, script: list[str]) -> None:
            for n, words in enumerate(script):
                await balancer.deliver(balancer.message(fake, person, words), person + n)

        await asyncio.gather(*(more_says(p, s) for p, s in more.items()))
        await fake.wait_for(
            lambda: (
                answered(fake, HELD)[-1:] == later[-1:]
                and all(len(answered(fake, p)) >= EACH + 3 for p in PEOPLE)
            ),
            within=30,
        )
        await asyncio.sleep(1.0)
        # The answer to the held /help is the dead worker's: once its lease runs out it
        # is sent before the later answers, which wait for it, or, as the later
        # updates were handled meanwhile, recorded superseded ("the conversation moved
        # on"), and so may the answers held back behind it: what arrives is in order,
        # never twice, ends with the newest, and every answer missing is accounted for.
        expected = ["/help", *later]
        got = answered(fake, HELD)
        remaining = iter(expected)
        assert all(probe in remaining for probe in got), got
        assert got[-1] == expected[-1]
        superseded = await scalar(
            database_url,
            "select count(*) from outbound where status = 'superseded' "
            f"and reason = 'conversation moved on' and chat_id = '{HELD}'",
        )
        assert superseded == 2 * (len(expected) - len(got))  # each answer is two messages
        for person, script in scripts.items():
            assert answered(fake, person) == script + more[person], f"person {person}"
        total = sent_once + 1 + len(later) + 3 * len(PEOPLE)
        assert await scalar(database_url, "select count(*) from processed_events") == total
        assert await scalar(database_url, "select count(*) from inbox") == 0

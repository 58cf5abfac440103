"""The overall cap held across workers (bot/shared_cap.py, storage/send_budget.py):
three outboxes, each with its own engine on one PostgreSQL schema, send a wave into
one fake at once. Each alone would send 30 a second; together they must never put
more than 30 in any one second at the fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import open_guide
from bot.config import Settings
from bot.outbox import Outbox, Priority
from dialogs.clock import ManualClock
from dialogs.events import Address, Outbound
from storage import upgrade_database
from storage.engine import create_engine_for
from storage.send_budget import _RESERVE, PostgresSendBudget
from tests.postgres import postgres_schema_url

WORKERS = 3
CAP = 30.0
WAVE = 30  # per worker: three seconds' worth together


class Fake:
    """The platform: when each message arrived."""

    def __init__(self) -> None:
        self.arrived: list[float] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.arrived.extend(time.monotonic() for _ in messages)


@pytest.fixture
async def engines() -> AsyncIterator[list[AsyncEngine]]:
    with postgres_schema_url() as url:
        made = [create_engine_for(url) for _ in range(WORKERS)]
        try:
            await upgrade_database(made[0])
            yield made
        finally:
            for engine in made:
                await engine.dispose()


def most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    most = 0
    end = 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] < t + 1.0:
            end += 1
        most = max(most, end - start)
    return most


async def test_a_wave_from_three_workers_keeps_the_cap_at_the_platform(
    engines: list[AsyncEngine],
) -> None:
    fake = Fake()
    outboxes = []
    for engine in engines:
        outbox = Outbox(fake, rate_per_second=CAP)
        outbox.share_cap(PostgresSendBudget(engine, "telegram"))
        await outbox.start()
        outboxes.append(outbox)
    try:
        await asyncio.gather(
            *(
                outbox.send(Address("telegram", f"u{w}-{n}", f"c{w}-{n}"), [Outbound("hi")], p)
                for w, outbox in enumerate(outboxes)
                for n in range(WAVE)
                for p in [Priority.SCHEDULED]
            )
        )
    finally:
        for outbox in outboxes:
            await outbox.close()
    assert len(fake.arrived) == WORKERS * WAVE
    assert most_in_any_second(fake.arrived) <= CAP


def test_the_count_of_the_busiest_second_is_right() -> None:
    assert most_in_any_second([0.0, 0.5, 0.99, 1.0, 1.2, 3.0]) == 4
    assert most_in_any_second([]) == 0


async def test_discord_waves_from_two_workers_keep_discords_global_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord's scheduled lane (DMs for check-ins) as `pausecheck run` builds it:
    two guides on one database, each with Discord's default limit (50 requests a
    second per bot), take their moments from one `discord` line, so together they
    never put more than 50 in a second at Discord. Each alone would send 50 a second,
    so without the shared line the busiest second would hold about 100. (The line is
    the database's clock: real time, two seconds of it.)"""
    with postgres_schema_url() as url:
        monkeypatch.setenv("PAUSECHECK_DATABASE_URL", url)
        monkeypatch.setenv("PAUSECHECK_TIMEZONE", "Europe/London")
        settings = Settings(_env_file=None)
        cap = settings.discord_rate
        assert cap == 50.0
        wave = int(cap)  # per worker: two seconds' worth together
        fake = Fake()
        guides = [await open_guide(settings, ManualClock()) for _ in range(2)]
        try:
            outboxes = [await guide.add_platform("discord", fake) for guide in guides]
            await asyncio.gather(
                *(
                    outbox.scheduled.send(
                        Address("discord", f"{w}{n}", f"{w}{n}", is_private=True),
                        [Outbound("check-in")],
                    )
                    for w, outbox in enumerate(outboxes)
                    for n in range(wave)
                )
            )
            async with guides[0].store.engine.connect() as connection:
                lines = (await connection.execute(text("select platform from send_budgets"))).all()
        finally:
            for guide in guides:
                await guide.close()
    assert len(fake.arrived) == 2 * wave
    assert most_in_any_second(fake.arrived) <= cap
    assert [line[0] for line in lines] == ["discord"]


async def test_a_moment_is_committed_without_waiting_for_the_disk(
    engines: list[AsyncEngine],
) -> None:
    """The reservation's transaction alone commits without the WAL flush, so a slow
    disk does not answer every worker late at once; nothing else does."""
    async with engines[0].connect() as connection:
        async with connection.begin():
            await connection.execute(_RESERVE, {"platform": "telegram", "seconds": 0.01})
            inside = await connection.scalar(text("show synchronous_commit"))
        async with connection.begin():
            after = await connection.scalar(text("show synchronous_commit"))
    assert (inside, after) == ("off", "on")

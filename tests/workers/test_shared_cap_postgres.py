"""The overall cap held across workers (bot/shared_cap.py, storage/send_budget.py):
three outboxes, each with its own engine on one PostgreSQL schema, send a wave into
one fake at once. Each alone would send 30 a second; together they must never put
more than 30 in any one second at the fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.outbox import Outbox, Priority
from dialogs.events import Address, Outbound
from storage import upgrade_database
from storage.engine import create_engine_for
from storage.send_budget import PostgresSendBudget
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

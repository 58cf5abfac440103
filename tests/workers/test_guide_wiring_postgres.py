"""The guide as `pausecheck run` builds it (bot/app.py) on PostgreSQL: its scheduler
listens for other workers' wake-ups, and its outboxes keep to the shared cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.app import Guide, open_guide
from bot.config import Settings
from dialogs.clock import ManualClock
from dialogs.events import Address, Outbound
from tests.postgres import postgres_schema_url, test_postgres_url
from tests.test_engine import RecordingSender


@pytest.fixture
async def guide(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Guide, str]]:
    with postgres_schema_url() as url:
        monkeypatch.setenv("PAUSECHECK_DATABASE_URL", url)
        monkeypatch.setenv("PAUSECHECK_TIMEZONE", "Europe/London")
        schema = str(make_url(url).query["options"]).removeprefix("-csearch_path=")
        opened = await open_guide(Settings(), ManualClock())
        try:
            yield opened, schema
        finally:
            await opened.close()


async def test_a_guide_on_postgresql_listens_and_shares_its_cap(guide: tuple[Guide, str]) -> None:
    opened, schema = guide
    await opened.scheduler.start()
    conninfo = test_postgres_url().replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
        cursor = await admin.execute(
            "select count(*) from pg_stat_activity where query like %s",
            (f'LISTEN "pausecheck_%{schema}"',),
        )
        row = await cursor.fetchone()
    assert row is not None and row[0] == 1

    outbox = await opened.add_platform("telegram", RecordingSender())
    await outbox.scheduled.send(Address("telegram", "u1", "c1"), [Outbound("wave")])
    async with opened.store.engine.connect() as connection:
        lines = (await connection.execute(text("select platform from send_budgets"))).all()
    assert [line[0] for line in lines] == ["telegram"]

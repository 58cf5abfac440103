from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialogs.clock import ManualClock
from storage import SqlStore, upgrade_database
from storage.engine import create_engine_for


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for("sqlite+aiosqlite:///:memory:")
    await upgrade_database(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine, clock: ManualClock) -> SqlStore:
    return SqlStore(engine, clock=clock)
